"""afx.lock (what each job's outputs were built from) and the run lock (one run at a time).

afx.lock is JSON, written by afx run and meant for git: keys sorted and one value per line,
so a change to one job is a small diff inside that job's block. (JSON rather than YAML: it
is read and written on every run, and JSON's C parser keeps a 200-job no-op run fast.)

    {
      "afx.lock": "written by afx run; commit it; afx verify checks out/ against it",
      "jobs": {
        "cs2-weekly": {
          "files": {"video.mp4": "<sha256>", ...},      # what out/cs2-weekly/ holds
          "spec": "<sha256 of the resolved job>",
          "stages": {"ingest": {"key": "<stage key>", "outputs": {"source.mp4": "<sha256>"}}, ...},
          "published": {"tiktok": {"remoteId": "...", "url": "...", "publishedAt": "...",
                                   "content": "<sha256>", "video": "<sha256>"}},
          "superseded": ["<remoteId of a post `afx publish --again` replaced>"],
          "clips": ["cs2-weekly-01", ...],                # a job with clips: the jobs it became
          "remote": {"https://api.auraflux.co/v1": {"jobId": "job_...", "spec": "<sha256>", ...}}
        }
      },
      "remote": {"https://api.auraflux.co/v1": {"uploads": {"<file sha256>": "file_..."}}},
      "retired": [{"job": "old-name", "platform": "tiktok", "content": "<sha256>", ...}],
      "version": 1
    }

The `remote` blocks are afx push's (per API: the job it submitted, the files it uploaded);
afx run keeps them when it rewrites a job's block. `published` is the publish stage's: where
the job went; with afx.lock in git, a clone without .afx/ (a CI runner, a new machine) knows
not to publish it again. When a job leaves the specs (a full `afx run`), its publish records
move to `retired`: a job with the same content (a renamed job) finds them and does not
publish again; a new job that takes the old name is new. `content` is what a post was made
from (the job's fields, without its name and publish settings, and its local files), `video`
the sha256 of the file that went out. `superseded` lists posts `afx publish --again`
replaced, so that a clone whose ledger still has one does not write it back.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx.errors import AfxError, ExitStatus
from afx.fsutil import atomic_write

if TYPE_CHECKING:  # a type only: reading afx.lock imports no stage code
    from afx.stages.base import LockChange

LOCK_NAME = "afx.lock"
LOCK_VERSION = 1
_NOTE = "written by afx run; commit it; afx verify checks out/ against it"
RUN_KEYS = frozenset({"spec", "stages", "files", "clips"})  # a job block's keys that afx run writes
_OWN_KEYS = frozenset({"afx.lock", "version", "jobs"})


class LockFileError(AfxError):
    exit_status = ExitStatus.INVALID


def read_lock(root: Path) -> dict[str, Any]:
    path = root / LOCK_NAME
    if not path.exists():
        return {"version": LOCK_VERSION, "jobs": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LockFileError(f"{path}: cannot be read ({exc})",
                            hint="restore it from git, or delete it and run again") from None
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(data.get("jobs"), dict):
        raise LockFileError(f"{path}: not an afx.lock of version {LOCK_VERSION}",
                            hint="restore it from git, or delete it and run again")
    return data


def write_lock(root: Path, data: Mapping[str, Any]) -> bool:
    """Write afx.lock if its content changed. Returns whether it was written.

    What afx run does not own is kept from the lock on disk when `data` leaves it out: keys
    of a job's block other than RUN_KEYS (afx push's `remote`), and top-level keys other
    than the jobs (afx push's `remote`). A job left out of `data` is still dropped.
    """
    path = root / LOCK_NAME
    try:
        current: str | None = path.read_text(encoding="utf-8")
    except OSError:
        current = None
    old = _loads(current)
    jobs_on_disk = old.get("jobs")
    old_jobs: dict[str, Any] = jobs_on_disk if isinstance(jobs_on_disk, dict) else {}
    jobs = {}
    for name, block in dict(data.get("jobs", {})).items():
        prev = old_jobs.get(name)
        if isinstance(block, Mapping) and isinstance(prev, dict):
            kept = {k: v for k, v in prev.items() if k not in RUN_KEYS and k not in block}
            block = {**block, **kept} if kept else block
        jobs[name] = block
    doc = {k: v for k, v in old.items() if k not in _OWN_KEYS}
    doc.update({k: v for k, v in data.items() if k not in _OWN_KEYS})
    doc.update({"afx.lock": _NOTE, "version": LOCK_VERSION, "jobs": jobs})
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if current == text:
        return False
    atomic_write(path, text)
    return True


_READ: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def read_lock_cached(root: Path) -> dict[str, Any]:
    """read_lock, again only when afx.lock changed (a 200-job afx.lock is half a megabyte:
    200 publish stages must not parse it 200 times). Not to be modified."""
    path = Path(root) / LOCK_NAME
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return read_lock(root)
    hit = _READ.get(Path(root))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = read_lock(root)
    _READ[Path(root)] = (stamp, data)
    return data


def update_lock(root: Path, change: Callable[[dict[str, Any]], None]) -> bool:
    """Read afx.lock, let `change` edit it in place, write it if it changed. Every
    read-modify-write of afx.lock goes through here, one at a time (an flock beside it):
    the publish stage records publishes from several workers at once."""
    with _writing(root):
        data = read_lock(root)
        change(data)
        return write_lock(root, data)


@contextmanager
def _writing(root: Path) -> Iterator[None]:
    # The flock is on the repo's folder itself (afx.lock is replaced, not rewritten, so a
    # lock on it would not hold; and a lock file would be one more file in the repo).
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _set_published(data: dict[str, Any], job: str, platform: str, record: Mapping[str, Any]) -> None:
    """Remember that `job` went out on `platform` (the publish stage)."""
    block = data["jobs"].setdefault(job, {})
    if not isinstance(block, dict):
        block = data["jobs"][job] = {}
    published = block.get("published")
    if not isinstance(published, dict):
        published = block["published"] = {}
    published[platform] = dict(record)


def _forget_published(data: dict[str, Any], job: str, platform: str) -> None:
    """`afx publish --again` is about to replace the post: afx.lock must not bring it back."""
    block = data["jobs"].get(job)
    published = block.get("published") if isinstance(block, dict) else None
    if isinstance(published, dict):  # (emptied, not removed: write_lock keeps a key left out)
        old = published.pop(platform, None)
        remote = old.get("remoteId") if isinstance(old, dict) else None
        if remote:  # a clone whose ledger still has it must not write it back
            listed = block.get("superseded")
            superseded: list[Any] = listed if isinstance(listed, list) else []
            if remote not in superseded:
                block["superseded"] = [*superseded, remote]


def _retire_published(data: dict[str, Any], job: str, platform: str) -> None:
    """A post recorded under `job` that is another job's (renamed away, the name reused):
    into `retired`, where the job with its content finds it."""
    block = data["jobs"].get(job)
    published = block.get("published") if isinstance(block, dict) else None
    record = published.pop(platform, None) if isinstance(published, dict) else None
    _retire(data, job, platform, record)


def apply_changes(root: Path, job: str, changes: Sequence[LockChange]) -> bool:
    """A job's stages' afx.lock changes, in order, at once."""
    def change(data: dict[str, Any]) -> None:
        for c in changes:
            if c.op == "published":
                _set_published(data, job, c.platform, c.record or {})
            elif c.op == "forget":
                _forget_published(data, job, c.platform)
            elif c.op == "retire":
                _retire_published(data, job, c.platform)
            else:
                raise ValueError(f"unknown afx.lock change {c.op!r}")
    return update_lock(root, change)


def retire_jobs(data: dict[str, Any], keep: set[str]) -> None:
    """Jobs gone from the specs leave `jobs`; where they were published moves to `retired`
    (a list of records with their job's old name), which only a job with the same content
    reads: a renamed job does not publish again, a new job of an old name does."""
    jobs = data.get("jobs", {})
    for name in [n for n in jobs if n not in keep]:
        block = jobs.pop(name)
        published = block.get("published") if isinstance(block, dict) else None
        for platform, record in (published.items() if isinstance(published, dict) else ()):
            _retire(data, name, platform, record)


def _retire(data: dict[str, Any], job: str, platform: str, record: Any) -> None:
    """One publish record into `retired`, with its job's name (once)."""
    if not isinstance(record, dict):
        return
    listed = data.get("retired")
    retired: list[Any] = listed if isinstance(listed, list) else []
    entry = {**record, "job": job, "platform": platform}
    if entry not in retired:
        data["retired"] = [*retired, entry]


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Busy(AfxError):
    exit_status = ExitStatus.STAGE_FAILED


class RunLock:
    """An exclusive flock on <store>/run.lock for the length of a run."""

    def __init__(self, store_root: Path) -> None:
        self.path = Path(store_root) / "run.lock"
        self.fd: int | None = None

    def acquire(self, *, wait: bool = True, on_wait: Callable[[str], None] = lambda msg: None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            if not wait:
                os.close(fd)
                raise Busy(f"another afx run is using {self.path.parent}{holder}",
                           hint="wait for it, or run without --no-wait to queue behind it") from None
            on_wait(f"waiting for another afx run in {self.path.parent}{holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 64, 0).decode().split()[0]
        return f" (pid {pid})"
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
