"""The no-op fast path: a job that is up to date is known so by one dict lookup and a few
stats, not by walking its stages (issue 15: a 10,000-job no-op run in under a second).

When `afx run` (or `afx status`) has walked a job through every stage and found it cached,
with out/<job>/ current, it records in `<store>/noop.pickle`, per job:

    the signature of what its stage keys hash   afx's version, the stages (names, versions),
                                                the resolved job's digest, its root and spec
                                                file, the stages' afx.yaml settings and
                                                outside state (the publish ledger's decision,
                                                asked again on every run), and the stat of
                                                every local input file
    the stat of its stored objects              size and mtime, as Store.check_object checks
    the stat of its out/ files                  size, mtime and inode (result.json included)
    its afx.lock block and stage keys

The next run finds a job with an equal signature and equal stats up to date without
opening the index: a stage key is a function of the signature, and a manifest of its key.
Anything that differs (an edited spec or template, a touched media file, a corrupted or
deleted object, a hand-edited out/ file, a publish that fell due, --force, --until, a
job with clips) sends the job down the ordinary path, which says why it reruns, and
whose outcome is recorded again. A job that ran in a worker loses its record. A stat
taken within RACY_NS of now is not recorded (a change in the same clock tick would not
show in it). The file is written atomically with a checksum; one that cannot be read is
ignored and rebuilt; `afx cache gc` removes it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from afx.engine.outputs import RESULT
from afx.engine.store import Store
from afx.spec.job import Job
from afx.stages.base import Pipeline

FILE = "noop.pickle"
FORMAT = 1
RACY_NS = 2_000_000_000
_CHECK = 32

Stat = tuple[str, int, int, int]  # path, size, mtime_ns, inode (-1: not compared)
Record = tuple[Any, tuple[Stat, ...], tuple[Stat, ...], dict[str, Any]]


def _stat(path: str, inode: bool = True) -> Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_size, st.st_mtime_ns, st.st_ino if inode else -1)


def forget(store_root: Path) -> None:
    """Drop every record (after `afx cache gc`: what the store holds has changed)."""
    (Path(store_root) / FILE).unlink(missing_ok=True)


class FastPath:
    def __init__(self, store_root: Path, pipeline: Pipeline, config: Mapping[str, Any]) -> None:
        self.path = Path(store_root) / FILE
        self.pipeline = pipeline
        self.config = config
        self._settings: dict[str, Any] = {}  # stage -> its afx.yaml settings (once per run)
        self.header = self._header()
        # afx.lock's stat and job names when the records were saved: equal now, it holds
        # every record's block (a run that rewrites it saves the records after it).
        self.lock_state: tuple[Any, frozenset[str]] | None = None
        self.records: dict[str, Record] = self._load()
        self.changed = False

    def _header(self) -> tuple[Any, ...]:
        from afx import __version__

        index = _stat(str(self.path.parent / "index" / "cache.db"))  # a new index is a new store
        return (FORMAT, __version__, index[3] if index else None)

    def _load(self) -> dict[str, Record]:
        try:
            raw = self.path.read_bytes()
            if hashlib.sha256(raw[_CHECK:]).digest() != raw[:_CHECK]:
                return {}
            header, records, lock_state = pickle.loads(raw[_CHECK:])
        except Exception:  # noqa: BLE001 - an unreadable file is no records
            return {}
        if header != self.header or not isinstance(records, dict):
            return {}
        self.lock_state = lock_state
        return records

    def lock_unchanged(self, lock: Path, names: set[str] | None) -> bool:
        """afx.lock is as the records' run left it (and lists no job but `names`)."""
        return (self.lock_state is not None and self.lock_state[0] == _stat(str(lock))
                and (names is None or self.lock_state[1] <= names))

    def signature(self, job: Job) -> Any | None:
        """What the job's stage keys are a function of; None if the fast path cannot tell."""
        stages = self.pipeline.stages_for(job)
        # (stages_for ends at a stage that fans out; no Protocol isinstance: it costs 25 us)
        if not stages or getattr(stages[-1], "children", None) is not None:
            return None
        parts: list[Any] = [job.digest, str(job.root), str(job.file)]
        for stage in stages:
            settings: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = getattr(stage, "settings", None)
            state: Callable[[Job], Mapping[str, Any]] | None = getattr(stage, "state", None)
            if stage.name not in self._settings:
                self._settings[stage.name] = dict(settings(self.config)) if settings is not None else None
            files = []
            for name, path in sorted(stage.files(job).items()):
                stat = _stat(str(path))
                if stat is None:
                    return None
                files.append((name, stat))
            parts.append((stage.name, str(stage.version), self._settings[stage.name],
                          dict(state(job)) if state is not None else None, tuple(files)))
        return tuple(parts)

    def check(self, job: Job) -> tuple[Any, dict[str, Any] | None]:
        """(signature, the job's afx.lock block if it is up to date, else None)."""
        sig = self.signature(job)
        record = self.records.get(job.name) if sig is not None else None
        if record is None or record[0] != sig:
            return sig, None
        for path, size, mtime, ino in record[1]:
            st = _stat(path, inode=ino >= 0)
            if st is None or st[1:] != (size, mtime, ino):
                return sig, None
        for path, size, mtime, ino in record[2]:
            st = _stat(path)
            if st is None or st[1:] != (size, mtime, ino):
                return sig, None
        return sig, record[3]

    def remember(self, job: Job, sig: Any, store: Store, block: Mapping[str, Any], out_root: Path) -> None:
        """Record a job the ordinary path just found up to date, out/ current."""
        if sig is None:
            return
        limit = time.time_ns() - RACY_NS
        objects: list[Stat] = []
        for stage in block["stages"].values():
            manifest = store.manifest(stage["key"]) if stage.get("key") else None
            if manifest is None:
                return
            for entry in manifest.files.values():
                path = str(store.object_path(entry["digest"]))
                objects.append((path, entry["size"], entry["mtime_ns"], -1))
        folder = out_root / job.name
        names = [*block["files"], *([RESULT] if os.path.exists(folder / RESULT) else [])]
        outs = [_stat(str(folder / name)) for name in names]
        inputs = [f[1] for part in sig[3:] for f in part[4]]
        if any(s is None or s[2] > limit for s in outs) or any(o[2] > limit for o in [*objects, *inputs]):
            return
        self.records[job.name] = (sig, tuple(objects), tuple(s for s in outs if s is not None), dict(block))
        self.changed = True

    def drop(self, names: Iterable[str]) -> None:
        for name in names:
            if self.records.pop(name, None) is not None:
                self.changed = True

    def save(self, lock: Path, names: Callable[[], Iterable[str]]) -> None:
        """Write the records, with afx.lock's stat as it is now (after the run wrote it) and
        its job names (read only when its stat changed)."""
        stat = _stat(str(lock))
        if self.lock_state is not None and self.lock_state[0] == stat:
            state = self.lock_state
        else:
            try:
                state = (stat, frozenset(names()))
            except Exception:  # noqa: BLE001 - an unreadable afx.lock: the run reports it, not this
                return
        if not self.changed and state == self.lock_state:
            return
        try:
            payload = pickle.dumps((self.header, self.records, state), protocol=5)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
            tmp.write_bytes(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, self.path)
        except OSError:
            return
