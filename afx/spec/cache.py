"""The resolve cache: a spec file that has not changed is not parsed, merged, rendered or
validated again (issue 15, big repos on one machine).

One file per repo and working directory, `<store>/resolve/<hash>.pickle` (the store is
`.afx/`, or AFX_CACHE_DIR), holding for each job file that resolved without a problem:

    its stat (size, mtime_ns, inode)    a changed file is resolved again
    the digests of its templates        (the whole chain of each of its jobs): an edited
                                        template re-resolves only the jobs that use it
    its jobs                            plain values, turned back into Jobs on a hit

The header holds what every resolution reads: the cache format, afx's version, the stat of
the schema files and today's date (the `afx.today` variable). A file whose stat is within
RACY_NS of the moment the cache was written may have changed again in the same clock tick
without its stat showing it (git's "racily clean" problem): such an entry also holds the
file's sha256 and is trusted only if the content still has it.

Only successes are cached: a file with an error or a warning is resolved on every run, so
its diagnostics are always said. A cache that cannot be read (truncated, another format,
a bad checksum) is ignored and rebuilt; it is written atomically (temp file + os.replace),
so two runs at once leave one whole cache or the other, never a mix.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from afx.fsutil import read_sealed, write_sealed
from afx.spec.job import Job, freeze, thaw
from afx.spec.load import Mark
from afx.spec.merge import Origins

FORMAT = 1
RACY_NS = 2_000_000_000

Stamp = tuple[int, int, int]
Entry = tuple[Stamp, bytes | None, tuple[tuple[str, str], ...], list[tuple[Any, ...]]]


def cache_dir(root: Path) -> Path:
    """The store folder afx.engine uses (afx.engine.runner.store_dir: the spec layer does
    not import the engine)."""
    env = os.environ.get("AFX_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else root / ".afx"


def stamp_of(path: Path | str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _header(today: str) -> tuple[Any, ...]:
    from afx import __version__
    from afx.spec.schema import schema_dir

    folder = schema_dir()
    schemas = tuple(sorted((p.name, stamp_of(p)) for p in folder.glob("*.schema.json")))
    return (FORMAT, __version__, schemas, today)


class ResolveCache:
    def __init__(self, root: Path, cwd: Path, missing_ok: bool, today: str, whole: bool = True) -> None:
        name = hashlib.sha256(f"{root}\0{cwd}\0{missing_ok}".encode()).hexdigest()[:24]
        self.path = cache_dir(root) / "resolve" / f"{name}.pickle"
        self.root = root
        self.whole = whole  # all of the repo's job files are resolved (else a few: keep the others)
        self.header = _header(today)
        self.entries: dict[str, Entry] = self._load()
        self.fresh: dict[str, Entry] = {}  # what this resolution found, written by save()
        self.tried: set[str] = set()  # the job files this resolution read
        self.changed = False
        self.hits = 0
        self.misses = 0

    def _load(self) -> dict[str, Entry]:
        payload = read_sealed(self.path)
        if payload is None:
            return {}
        try:
            header, entries = pickle.loads(payload)
            if header != self.header or not isinstance(entries, dict):
                return {}
            return entries
        except Exception:  # noqa: BLE001 - any unreadable cache is no cache
            return {}

    def jobs(self, path: Path, deps: Mapping[str, str]) -> list[Job] | None:
        """The jobs of an unchanged job file, or None (resolve it)."""
        key = str(path)
        self.tried.add(key)
        entry = self.entries.get(key)
        stamp = stamp_of(path)
        if entry is None or stamp is None or entry[0] != stamp:
            self.misses += 1
            return None
        _, content, used, rows = entry
        try:
            if content is not None and hashlib.sha256(path.read_bytes()).digest() != content:
                self.misses += 1
                return None
            if any(deps.get(tid) != digest for tid, digest in used):
                self.misses += 1
                return None
            jobs = [self._job(row, path) for row in rows]
            # A local file it names must still be a file (the resolver checks that too).
            if not all(os.path.isfile(p) for job in jobs for p in job.paths.values()):
                self.misses += 1
                return None
        except Exception:  # noqa: BLE001 - a malformed entry is a miss
            self.misses += 1
            return None
        self.hits += 1
        self.fresh[key] = entry
        return jobs

    def put(self, path: Path, jobs: Iterable[Job], deps: Mapping[str, str]) -> None:
        stamp = stamp_of(path)
        if stamp is None:
            return
        try:
            content = hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            return
        used = tuple(sorted({(tid, deps[tid]) for job in jobs for tid in job.template_chain if tid in deps}))
        if any(tid not in deps for job in jobs for tid in job.template_chain):
            return
        self.fresh[str(path)] = (stamp, content, used, [_row(job) for job in jobs])
        self.changed = True

    def save(self) -> None:
        """Write what this resolution found (files gone from the repo are dropped), if it
        differs from what was read. Never raises: the cache is only ever a shortcut."""
        now = time.time_ns()
        out: dict[str, Entry] = {} if self.whole else {k: v for k, v in self.entries.items() if k not in self.tried}
        for key, (stamp, content, used, rows) in self.fresh.items():
            racy = stamp[1] + RACY_NS > now
            if not racy and content is not None:
                content = None
                self.changed = True  # settled: no longer needs its content checked
            out[key] = (stamp, content, used, rows)
        if not self.changed and out.keys() == self.entries.keys():
            return
        try:
            write_sealed(self.path, pickle.dumps((self.header, out), protocol=5))
        except OSError:
            return

    def _job(self, row: tuple[Any, ...], path: Path) -> Job:
        (name, fields, file, display, line, chain, matrix, variables, base, paths, digest, marks,
         fallback) = row
        table = {tuple(p): (f, Mark(*k), Mark(*v)) for p, f, k, v in marks}
        # Set as a Job's own __init__ would (the same fields, all of them), without its frozen
        # dataclass's setattr per field: 10,000 cached jobs are made on every run.
        job = object.__new__(Job)
        job.__dict__.update(
            name=name, fields=freeze(fields), file=path if str(path) == file else Path(file), display=display,
            line=line, root=self.root, template_chain=tuple(chain), matrix=freeze(matrix) if matrix else _EMPTY,
            vars=freeze(variables) if variables else _EMPTY, base_name=base,
            paths=MappingProxyType({tuple(p): Path(t) for p, t in paths}) if paths else _EMPTY,
            origins=Origins(table, (fallback[0], Mark(*fallback[1]))), parent="",
            digest=digest)  # (Job.digest is a cached property of these very fields)
        return job


_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_FIELDS = frozenset({"name", "fields", "file", "display", "line", "root", "template_chain", "matrix", "vars",
                     "base_name", "paths", "origins", "parent"})


# The marks a cached job keeps: those the checks run over all jobs read (a duplicate name).
_MARKED = (("name",), ("matrix",))


def _row(job: Job) -> tuple[Any, ...]:
    marks = [(p, *_flat(job.origins.table[p])) for p in _MARKED if p in job.origins.table]
    file, mark = job.origins.fallback
    return (job.name, thaw(job.fields), str(job.file), job.display, job.line, list(job.template_chain),
            thaw(job.matrix), thaw(job.vars), job.base_name, [(list(p), str(t)) for p, t in job.paths.items()],
            job.digest, marks, (file, (mark.line, mark.column)))


def _flat(origin: tuple[str, Mark, Mark]) -> tuple[str, tuple[int, int], tuple[int, int]]:
    file, key, value = origin
    return file, (key.line, key.column), (value.line, value.column)
