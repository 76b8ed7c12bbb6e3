"""The no-op fast path: a job that is up to date is known so by one dict lookup and a few
stats, not by walking its stages (issue 15: a 10,000-job no-op run in under a second).

When `afx run` (or `afx status`) has walked a job through every stage and found it cached,
with out/<job>/ current, it records in `<store>/noop.pickle`, per job:

    a key                               sha256 of the resolved job (digest, local paths,
                                        root, spec file) and its stages' outside state (the
                                        publish ledger's decision, asked again every run)
    the stat of its out/ files          size, mtime, inode and ctime (result.json included)
    the stat of its stored objects      size, mtime and inode (Store.check_object checks
                                        size and mtime)
    the stat of its input files         size, mtime and inode (its media, read in place)
    which objects an out/ file is a     such an object is not stat'ed while the out/ file's
    hard link of                        ctime stands still (no link to the inode was made
                                        or removed, nothing in it changed) and its folder
                                        objects/<xx>/ is the one it was (one stat a run)
    its stage names
    its afx.lock block and stage keys   compressed apart: unpacked only when read (when
                                        afx.lock must be written: a no-op run never does)

The header holds afx's version, the store's index and every stage's name, version and
afx.yaml settings. With those, the key and the stats, the job's signature (what its stage
keys are a function of: `signature`) is what it was, so its keys and manifests are: which
stages a job has and which files they read are functions of the resolved job. The
signature itself is made only for a job that takes the ordinary path (before its walk:
what it read is what is recorded). A record is a few plain values (the paths joined in one
string, relative to out/<job>/ and the store; the stats packed in one bytes object), so
that 10,000 of them load in milliseconds.

Anything that differs (an edited spec or template, a touched media file, a corrupted or
deleted object, a hand-edited out/ file, a publish that fell due, a new stage version,
--force, --until, a job with clips) sends the job down the ordinary path, which says why it
reruns, and whose outcome is recorded again. A job that ran in a worker loses its record.
A stat taken within RACY_NS of now is not recorded (a change in the same clock tick would
not show in it). The file is written atomically with a checksum; one that cannot be read
is ignored and rebuilt; `afx cache gc` removes it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from afx.bulk import paused_gc
from afx.engine.outputs import RESULT
from afx.engine.store import Store
from afx.fsutil import read_sealed, write_sealed
from afx.spec.job import Job
from afx.stages.base import Pipeline

FILE = "noop.pickle"
FORMAT = 5
RACY_NS = 2_000_000_000
_SEP = "\0"  # between the paths of a record (no path holds a NUL)

Stat = tuple[str, int, int, int]  # path, size, mtime_ns, inode
# (sha256 of the signature; the out/ files' names (in out/<job>/) then the objects' paths
# (in the store), joined; their stats packed: size, mtime_ns, inode and, for an out/ file,
# ctime_ns; the stage names; the pickled afx.lock block, compressed; packed: the number of
# out/ files, then for each object an out/ file is a hard link of: its index, the out/
# file's, and the inode of the object's folder)
Record = tuple[bytes, str, bytes, tuple[str, ...], bytes, bytes]


def _stat(path: str) -> Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def _full_stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def forget(store_root: Path) -> None:
    """Drop every record (after `afx cache gc`: what the store holds has changed)."""
    (Path(store_root) / FILE).unlink(missing_ok=True)


class FastPath:
    def __init__(self, store_root: Path, pipeline: Pipeline, config: Mapping[str, Any],
                 out_root: Path | None = None) -> None:
        self.path = Path(store_root) / FILE
        # A record's paths are kept relative to these (a third of the file's size)
        self._store = os.path.join(str(store_root), "")
        self._out = os.path.join(str(out_root if out_root is not None else Path(store_root).parent / "out"), "")
        self.pipeline = pipeline
        self.config = config
        # stage name -> (its version, afx.yaml settings, state(), files()): once per run (a
        # version may be a property that reads the environment)
        self._stages: dict[str, tuple[str, Any, Any, Any]] = {}
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple for all records
        self._folders: dict[str, int | None] = {}
        self.header = self._header()
        # afx.lock's stat and job names when the records were saved: equal now, it holds
        # every record's block (a run that rewrites it saves the records after it).
        self.lock_state: tuple[Any, frozenset[str]] | None = None
        with paused_gc():
            self.records: dict[str, Record] = self._load()
        self.changed = False

    def _header(self) -> tuple[Any, ...]:
        from afx import __version__

        index = _stat(str(self.path.parent / "index" / "cache.db"))  # a new index is a new store
        # Every stage's name, version and afx.yaml settings: what a job's signature holds of
        # the pipeline, asked once (any change: every job takes the ordinary path once).
        stages = tuple((stage.name, *self._stage(stage)[:2]) for stage in self.pipeline.stages)
        return (FORMAT, __version__, index[3] if index else None, stages)

    def _load(self) -> dict[str, Record]:
        payload = read_sealed(self.path)
        if payload is None:
            return {}
        try:
            header, records, lock_state = pickle.loads(payload)
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

    def _stage(self, stage: Any) -> tuple[str, Any, Any, Any]:
        known = self._stages.get(stage.name)
        if known is None:
            settings: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = getattr(stage, "settings", None)
            known = self._stages[stage.name] = (
                str(stage.version), dict(settings(self.config)) if settings is not None else None,
                getattr(stage, "state", None), stage.files)
        return known

    def signature(self, job: Job) -> tuple[Any, ...] | None:
        """What the job's stage keys are a function of; None if the fast path cannot tell."""
        stages = self.pipeline.stages_for(job)
        # (stages_for ends at a stage that fans out; no Protocol isinstance: it costs 25 us)
        if not stages or getattr(stages[-1], "children", None) is not None:
            return None
        parts: list[Any] = [job.digest, str(job.root), str(job.file)]
        seen: dict[str, Stat | None] = {}
        known = self._stages
        for stage in stages:
            version, settings, state, files = known[stage.name] if stage.name in known else self._stage(stage)
            named = files(job)
            stats: tuple[Any, ...] = ()
            if named:  # (most stages of most jobs read no local file)
                found = []
                for name, path in sorted(named.items()):
                    key = str(path)
                    stat = seen[key] if key in seen else seen.setdefault(key, _stat(key))
                    if stat is None:
                        return None
                    found.append((name, stat))
                stats = tuple(found)
            parts.append((stage.name, version, settings, dict(state(job)) if state is not None else None, stats))
        return tuple(parts)

    def check(self, job: Job) -> Record | None:
        """The job's record if it is up to date, else None.

        Its signature is not made again: what it holds of the job (stages, input files) is a
        function of the resolved job (digest, local paths, root, spec file) and the pipeline
        (the header); what else it holds is asked again: the stages' outside state (the
        record's stages that have one) and the input files' stats."""
        record = self.records.get(job.name)
        if record is None:
            return None
        known = self._stages
        states = tuple((name, dict(known[name][2](job))) for name in record[3]
                       if name in known and known[name][2] is not None)
        if _key(job, states) != record[0]:
            return None
        cover = struct.unpack(f"{len(record[5]) // 8}q", record[5])
        outs, inputs = cover[0], cover[1]
        folder = f"{self._out}{job.name}{os.sep}"
        store = self._store
        names = record[1].split(_SEP)
        last = len(names) - inputs  # (the input files' paths are whole)
        paths = [folder + name for name in names[:outs]] + [store + name for name in names[outs:last]] + names[last:]
        want = struct.unpack(f"{len(record[2]) // 8}q", record[2])
        try:
            out_found = found = list(map(os.stat, paths[:outs]))
        except OSError:
            return None
        now = [n for st in found for n in (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)]
        touched: list[int] = []  # out files whose inode's ctime moved: they vouch for no object
        if now != list(want[:4 * outs]):
            for i in range(outs):
                if now[4 * i:4 * i + 3] != list(want[4 * i:4 * i + 3]):
                    return None
                if now[4 * i + 3] != want[4 * i + 3]:
                    touched.append(i)
        folders = self._folders
        vouched = set()
        for c in range(2, len(cover), 3):
            if cover[c + 1] not in touched:
                folder = paths[cover[c]].rpartition(os.sep)[0]
                ino = folders[folder] if folder in folders else self._folder(folder)
                if ino == cover[c + 2]:
                    vouched.add(cover[c])
        rest = [j for j in range(outs, len(paths)) if j not in vouched]
        try:
            found = [os.stat(paths[j]) for j in rest]
        except OSError:
            return None
        if [n for st in found for n in (st.st_size, st.st_mtime_ns, st.st_ino)] != [
                n for j in rest for n in want[4 * outs + 3 * (j - outs):4 * outs + 3 * (j - outs) + 3]]:
            return None
        inodes = {st.st_ino for st in out_found} if rest else set()
        if touched or any(st.st_ino in inodes for j, st in zip(rest, found) if j < last):
            record = self._vouch(job.name, record, paths, out_found, dict(zip(rest, found)), last, bool(touched))
        return record

    def _vouch(self, name: str, record: Record, paths: list[str], outs: list[os.stat_result],
               objects: dict[int, os.stat_result], last: int, touched: bool) -> Record:
        """An up-to-date job's record, with the out/ files' ctimes as they are now and every
        object an out/ file is a hard link of vouched for, when its ctime has settled (what
        remember() would record now: the record was made when some had not)."""
        limit = time.time_ns() - RACY_NS
        if any(st.st_ctime_ns > limit for st in outs):
            return record  # (a ctime that may still move unseen vouches for nothing)
        cover = list(struct.unpack(f"{len(record[5]) // 8}q", record[5]))
        by_inode = {(st.st_dev, st.st_ino): i for i, st in enumerate(outs)}
        added = False
        for j, st in objects.items():
            i = by_inode.get((st.st_dev, st.st_ino)) if j < last else None
            if i is not None and (where := _stat(paths[j].rpartition(os.sep)[0])):
                cover += (j, i, where[3])  # (its ctime is the out/ file's: settled, above)
                added = True
        if not added and not touched:
            return record
        stats = list(struct.unpack(f"{len(record[2]) // 8}q", record[2]))
        for i, st in enumerate(outs):
            stats[4 * i + 3] = st.st_ctime_ns
        record = (record[0], record[1], struct.pack(f"{len(stats)}q", *stats), record[3], record[4],
                  struct.pack(f"{len(cover)}q", *cover))
        self.records[name] = record
        self.changed = True
        return record

    def _folder(self, folder: str) -> int | None:
        """The inode of an object's folder (objects/<2 hex>/), stat'ed once per run."""
        st = _stat(folder)
        self._folders[folder] = st[3] if st is not None else None
        return self._folders[folder]

    def remember(self, job: Job, sig: Any, store: Store, block: Mapping[str, Any], out_root: Path) -> None:
        """Record a job the ordinary path just found up to date, out/ current; `sig`: its
        signature as it was before the walk (the input files' stats, the stages' state)."""
        if sig is None:
            return
        limit = time.time_ns() - RACY_NS
        objects: list[str] = []
        for stage in block["stages"].values():
            manifest = store.manifest(stage["key"]) if stage.get("key") else None
            if manifest is None:
                return
            objects += (str(store.object_path(entry["digest"])) for entry in manifest.files.values())
        folder = out_root / job.name
        outs = [str(folder / name) for name in [*block["files"], *([RESULT] if os.path.exists(folder / RESULT)
                                                                  else [])]]
        out_stats, object_stats = [_full_stat(p) for p in outs], [_full_stat(p) for p in objects]
        inputs = list({f[1][0]: f[1] for part in sig[3:] for f in part[4]}.values())
        if any(st is None or st.st_mtime_ns > limit for st in [*out_stats, *object_stats]) \
                or any(i[2] > limit for i in inputs):
            return
        if str(folder) != f"{self._out}{job.name}" or not all(o.startswith(self._store) for o in objects):
            return  # (not where check() looks)
        if list(block["stages"]) != [part[0] for part in sig[3:]]:
            return  # (check() asks the states of the block's stages)
        stats = [n for st in out_stats if st is not None for n in (st.st_size, st.st_mtime_ns, st.st_ino,
                                                                   st.st_ctime_ns)]
        stats += [n for st in object_stats if st is not None for n in (st.st_size, st.st_mtime_ns, st.st_ino)]
        stats += [n for i in inputs for n in i[1:]]
        # An out/ file that is a hard link of an object vouches for it while the inode's
        # ctime stands still: no link to it was made or removed (the object's name was not
        # deleted or replaced), no byte or mode of it changed. Its folder's inode is kept
        # too: a folder moved away takes the name along without touching the inode.
        cover: list[int] = [len(outs), len(inputs)]
        by_inode = {(st.st_dev, st.st_ino): i for i, st in enumerate(out_stats) if st is not None}
        for j, st in enumerate(object_stats):
            i = by_inode.get((st.st_dev, st.st_ino)) if st is not None else None
            # (a ctime of the last RACY_NS may move again unseen: then the object is stat'ed;
            # a shared object's moves whenever a job that has it is exported)
            if i is None or st is None or st.st_ctime_ns > limit:
                continue
            where = _stat(objects[j].rpartition(os.sep)[0])
            if where is not None:
                cover += (len(outs) + j, i, where[3])
        names = tuple(block["stages"])
        names = self._names.setdefault(names, names)
        states = tuple((part[0], part[3]) for part in sig[3:] if part[3] is not None)
        relative = [os.path.basename(o) for o in outs] + [o[len(self._store):] for o in objects] + [
            i[0] for i in inputs]
        self.records[job.name] = (_key(job, states), _SEP.join(relative), struct.pack(f"{len(stats)}q", *stats),
                                  names, zlib.compress(pickle.dumps(dict(block), protocol=5), 1),
                                  struct.pack(f"{len(cover)}q", *cover))
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
            write_sealed(self.path, pickle.dumps((self.header, self.records, state), protocol=5))
        except OSError:
            return


def block_of(record: Record) -> dict[str, Any]:
    """A record's afx.lock block."""
    block: dict[str, Any] = pickle.loads(zlib.decompress(record[4]))
    return block


def _key(job: Job, states: tuple[Any, ...]) -> bytes:
    """What a record is found by, besides stats: the resolved job and its stages' state.
    By repr, not pickle: a pickle tells apart equal strings that are one object from two
    (its memo), a repr does not. (A value whose repr names its address never matches: that
    job takes the ordinary path.)"""
    paths = tuple((key, str(path)) for key, path in job.paths.items()) if job.paths else ()
    return hashlib.sha256(repr((job.digest, str(job.root), str(job.file), paths, states)).encode()).digest()
