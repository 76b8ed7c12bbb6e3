"""The artifact store: content-addressed objects plus a diskcache index (issue 3).

Layout of the store directory (`.afx/` in the spec repo, or AFX_CACHE_DIR):

    FORMAT          store format version; another version is set aside and rebuilt
    objects/ab/cd…  artifact files named by their sha256, read-only
    index/          diskcache (SQLite): stage key -> manifest, job -> {stage: last run},
                    file path -> (size, mtime, inode, digest) so unchanged inputs are not rehashed
    tmp/            stage work directories, named after the process that owns them; one
                    whose process is gone is left from a killed run
    resume/<key>/   what a long stage has finished of its work (a download's part file,
                    analysed chunks), kept across an interrupted run so the next run of
                    the same key goes on from there; removed once that stage is indexed

Everything reaches its final name by os.replace, and a manifest is indexed only after all
its objects are in place, so a run killed at any instant leaves nothing that looks done.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

# engine.store has always offered them (re-exported: `x as x`)
from afx.digest import canonical as canonical
from afx.digest import digest_of as digest_of
from afx.digest import sha256_file as sha256_file

STORE_FORMAT = 1
PICKLE_PROTOCOL = 5  # pinned: the index must read the same on every Python >= 3.8

log = logging.getLogger("afx.store")


class StoredFile(TypedDict):
    """One file of a manifest: an object in the store."""

    digest: str  # sha256 of the content: the object's name under objects/
    size: int
    mtime_ns: int  # the object's mtime when stored: a changed one costs a rehash (check_object)


class _Index(Protocol):
    """What the store uses of a diskcache.Cache (diskcache has no type hints)."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def iterkeys(self) -> Iterator[Any]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Manifest:
    """What one stage run produced. Its digest ignores timing, so equal outputs cut off reruns."""

    stage: str
    key: str
    files: Mapping[str, StoredFile]  # artifact name -> its object
    exports: Mapping[str, str]  # name -> file name under out/<job>/
    meta: Mapping[str, Any]
    seconds: float = 0.0
    created: float = field(default_factory=time.time)

    @functools.cached_property
    def digest(self) -> str:
        return digest_of({"files": {n: f["digest"] for n, f in self.files.items()},
                          "exports": dict(self.exports), "meta": self.meta})

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "files": {k: dict(v) for k, v in self.files.items()},
                "exports": dict(self.exports), "meta": self.meta, "seconds": self.seconds,
                "created": self.created}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(data["stage"], data["key"], data["files"], data["exports"], data["meta"],
                   data.get("seconds", 0.0), data.get("created", 0.0))


class Remote(Protocol):
    """What the runner uses of a shared remote cache (afx.engine.remote.RemoteCache)."""

    def record(self, key: str, stage: str, store: Store) -> Manifest | None: ...
    def fetch(self, key: str, stage: str, store: Store) -> Manifest | None: ...
    def push(self, m: Manifest, store: Store) -> bool: ...


class StoreProblem(Exception):
    """A cached entry that cannot be used; the message names it."""


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._index: _Index | None = None
        self.warnings: list[str] = []
        self._manifests: dict[str, Manifest] = {}  # read this run (keys are content hashes)
        # A shared remote cache (afx.engine.remote), which the runner reads on a local miss
        # and publishes each stored stage to; None for a store of its own.
        self.remote: Remote | None = None

    # -- index ----------------------------------------------------------------------------
    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = self._open_index()
        return self._index

    def _open_index(self) -> _Index:
        import diskcache

        self.root.mkdir(parents=True, exist_ok=True)
        fmt = self.root / "FORMAT"
        found = fmt.read_text().strip() if fmt.exists() else None
        if found is not None and found != str(STORE_FORMAT):
            self._set_aside("index", f"store format {found!r} is not {STORE_FORMAT}")
        if found != str(STORE_FORMAT):
            from afx.fsutil import atomic_write

            atomic_write(fmt, f"{STORE_FORMAT}\n")
        settings = dict(disk_pickle_protocol=PICKLE_PROTOCOL, eviction_policy="none", size_limit=2**62)
        try:
            cache: _Index = diskcache.Cache(str(self.root / "index"), **settings)
            cache.get("probe")
        except (sqlite3.DatabaseError, OSError) as exc:
            self._set_aside("index", f"index is unreadable ({exc})")
            cache = diskcache.Cache(str(self.root / "index"), **settings)
        return cache

    def _set_aside(self, name: str, why: str) -> None:
        src = self.root / name
        if src.exists():
            dst = self.root / f"{name}.broken-{int(time.time())}"
            os.replace(src, dst)
            self.warn(f"cache {src} set aside as {dst.name}: {why}; rebuilding")

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # Index keys are plain strings: diskcache stores them as they are, where a tuple key
    # would be pickled (and optimised) on every lookup.
    def _get(self, key: str) -> Any:
        try:
            return self.index.get(key)
        except Exception as exc:  # noqa: BLE001 - any unreadable entry (bad pickle, bad page) is a miss
            # An unreadable entry (truncated pickle, damaged page) is a miss, not a crash.
            self.warn(f"cache entry {key!r} is unreadable ({type(exc).__name__}); rebuilding it")
            try:
                self.index.delete(key)
            except sqlite3.DatabaseError:
                pass
            return None

    def _set(self, key: str, value: Any) -> None:
        self.index.set(key, value)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- file digests ---------------------------------------------------------------------
    def file_digest(self, path: Path) -> str:
        """sha256 of a local input file, rehashed only when its size, mtime or inode change."""
        path = Path(path)
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._get(f"file:{path}")
        if isinstance(cached, tuple) and cached[:3] == stamp and isinstance(cached[3], str):
            return cached[3]
        digest = sha256_file(path)
        self._set(f"file:{path}", (*stamp, digest))
        return digest

    # -- objects --------------------------------------------------------------------------
    def object_path(self, digest: str) -> Path:
        return Path(self._object_str(digest))

    def _object_str(self, digest: str) -> str:
        return f"{self.objects}{os.sep}{digest[:2]}{os.sep}{digest[2:]}"

    def put_object(self, src: Path, digest: str | None = None) -> StoredFile:
        """Move a finished file into the store (or drop it if the store has it already).
        `digest`: its sha256, when the caller has just checked it (a fetched object)."""
        digest = digest or sha256_file(src)
        dst = self.object_path(digest)
        if dst.exists() and dst.stat().st_size == src.stat().st_size:
            src.unlink()
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(src, 0o444)
            os.replace(src, dst)
        st = dst.stat()
        return {"digest": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def check_object(self, name: str, entry: StoredFile) -> None:
        """Nothing if the object is present and unchanged; StoreProblem otherwise.

        Size and mtime are compared on every use; only a changed mtime costs a rehash.
        """
        path = self._object_str(entry["digest"])  # a str: this runs for every output of every job
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise StoreProblem(f"output missing: {name} ({path}) is gone from the store") from None
        if st.st_size != entry["size"] or (st.st_mtime_ns != entry.get("mtime_ns")
                                           and sha256_file(path) != entry["digest"]):
            # The object no longer holds what its name promises: remove it, so the rerun
            # stores a good copy instead of keeping this one.
            Path(path).unlink(missing_ok=True)
            what = "size" if st.st_size != entry["size"] else "content"
            raise StoreProblem(f"output corrupt: {name} ({path}) changed {what}")

    # -- manifests ------------------------------------------------------------------------
    def manifest(self, key: str) -> Manifest | None:
        if key in self._manifests:
            return self._manifests[key]
        raw = self._get(f"stage:{key}")
        if raw is None:
            return None
        try:
            m = self._manifests[key] = Manifest.from_dict(raw)
            return m
        except (KeyError, TypeError, AttributeError):
            self.warn(f"cache entry for stage key {key[:12]} is malformed; rebuilding it")
            return None

    def checked_manifest(self, key: str) -> tuple[Manifest | None, str]:
        """(manifest, "") if usable; (None, why) if absent ("") or damaged (a message)."""
        m = self.manifest(key)
        if m is None:
            return None, ""
        try:
            for name, entry in m.files.items():
                self.check_object(name, entry)
        except StoreProblem as exc:
            self.warn(f"{m.stage}: {exc}; the stage reruns")
            return None, str(exc)
        return m, ""

    def put_manifest(self, m: Manifest) -> None:
        self._set(f"stage:{m.key}", m.to_dict())
        self._manifests[m.key] = m

    # One record per job ({stage: last run}): a fully cached job costs one lookup, not one per stage.
    def lasts(self, job: str) -> dict[str, dict[str, Any]]:
        value = self._get(f"last:{job}")
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, dict)}

    def last(self, job: str, stage: str) -> dict[str, Any] | None:
        return self.lasts(job).get(stage)

    def set_lasts(self, job: str, records: Mapping[str, Mapping[str, Any]]) -> None:
        self._set(f"last:{job}", {k: dict(v) for k, v in records.items()})

    def stage_keys(self) -> Iterator[str]:
        for key in self.index.iterkeys():
            if isinstance(key, str) and key.startswith("stage:"):
                yield key[len("stage:"):]

    def delete_stage(self, key: str) -> None:
        self.index.delete(f"stage:{key}")
        self._manifests.pop(key, None)

    # -- work directories -----------------------------------------------------------------
    def workdir(self, job: str, stage: str) -> Path:
        import tempfile

        from afx import procs

        self.tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{job}.{stage}.{procs.tag()}.", dir=self.tmp))

    def resume_dir(self, key: str) -> Path:
        """The folder a stage with this key keeps its finished chunks in (StageContext.resume):
        it outlives an interrupted run (kill -9 included), unlike the work folder. Not made
        here: a stage that keeps something makes it."""
        return self.root / "resume" / key

    def drop_resume(self, key: str) -> None:
        """The stage with this key is stored: its resume folder goes, unless another job with
        the same key is working in it now (it holds the folder's `.lock`): that one removes it
        when it is done."""
        import fcntl

        path = self.root / "resume" / key
        if not path.exists():
            return
        try:
            with open(path / ".lock", "a") as held:
                fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(path, ignore_errors=True)  # (the lock goes with its file)
        except BlockingIOError:
            return
        except OSError:  # removed meanwhile
            return

    def resume_folders(self) -> dict[str, tuple[float, int]]:
        """The resume folders there are, by stage key: (when it or a file in it last changed,
        bytes in it), for `afx cache gc`."""
        out: dict[str, tuple[float, int]] = {}
        base = self.root / "resume"
        for child in (base.iterdir() if base.is_dir() else ()):
            try:
                stats = [child.stat(), *(e.stat() for e in os.scandir(child) if e.is_file())]
            except OSError:  # gone meanwhile, or not a folder
                continue
            out[child.name] = (max(st.st_mtime for st in stats), sum(st.st_size for st in stats[1:]))
        return out

    def clean_tmp(self) -> int:
        """Remove work dirs whose process is gone. A live process's (another run, a server's
        job sharing this store) are left alone."""
        from afx import procs

        if not self.tmp.exists():
            return 0
        count = 0
        for child in self.tmp.iterdir():
            if procs.tag_alive(child.name):
                continue
            shutil.rmtree(child, ignore_errors=True)
            count += 1
        return count
