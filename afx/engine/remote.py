"""The remote stage cache: finished stages shared through an object store (issue 15).

Layout under the store's URL (afx/objects.py: S3, any fsspec URL, or a folder):

    cas/<sha256>      an artifact file, named by the sha256 of its content
    ac/<stage key>    a stage's result: {"format": 1, "manifest": {stage, key, files: {name:
                      {digest, size}}, exports, meta, seconds, created}}

**Publishing** (`push`, after a stage is stored locally): the objects first, the record
last, each create-if-absent, so a record never names an object that is not there yet, and
of two workers that finish the same key only the first record stands (the second is told
it exists and changes nothing). A key already recorded is not uploaded again.

**Reading** (`fetch`, on a local miss): the record is read and checked (its stage and key
are the ones asked for, its names are plain file names, its digests are sha256s), each
object is downloaded to a work folder of the local store and its sha256 checked, then moved
into the local store; the manifest is indexed locally last. A bad object (another sha256,
another size) is refused, deleted from the remote, and the stage reruns; its result then
replaces the record. Fetching a key is serialised between the workers of one store by an
flock, so `-j N` downloads a shared stage once.

A remote that fails mid-run (a timeout, a refused connection, a denied write) is a warning,
and the rest of the run goes on locally: the remote is not used again in that process. The
local store is never left with a half object or a manifest whose objects are missing.

Stages that read outside state (`ReadsState`: the publish stage's ledger) are never shared:
their results are true of one machine only.

Trust: the remote is trusted as a build cache is (whoever can write it can choose the
artifacts); what is checked is integrity (content digests), not provenance.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from afx.engine.store import Manifest, Store, StoredFile, sha256_file
from afx.objects import ObjectStore, ObjectStoreError, open_store
from afx.stages.base import ReadsState, Stage

RECORD_FORMAT = 1
FETCHED = "fetched from the remote cache"  # why a stage did not run (events, plans)
RECORD_LIMIT = 16 << 20  # a manifest's metadata is small; a larger record is refused unread
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]{0,254}")


class BadRecord(ValueError):
    """A record that cannot be used (the message says why)."""


def shared(stage: Stage) -> bool:
    """Whether a stage's results go through the remote cache."""
    return not isinstance(stage, ReadsState)


def encode(m: Manifest) -> bytes:
    files = {n: {"digest": f["digest"], "size": f["size"]} for n, f in m.files.items()}
    doc = {"format": RECORD_FORMAT, "manifest": {"stage": m.stage, "key": m.key, "files": files,
                                                 "exports": dict(m.exports), "meta": m.meta,
                                                 "seconds": m.seconds, "created": m.created}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes, key: str, stage: str) -> Manifest:
    """The manifest of a record, checked; BadRecord otherwise. Its files' mtime_ns is 0 (set
    when the objects are stored locally)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecord(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT or not isinstance(doc.get("manifest"), dict):
        raise BadRecord(f"not a record of format {RECORD_FORMAT}")
    m = doc["manifest"]
    if m.get("stage") != stage or m.get("key") != key:
        raise BadRecord(f"it is of stage {m.get('stage')!r}, key {str(m.get('key'))[:12]!r}")
    files, exports, meta = m.get("files"), m.get("exports"), m.get("meta")
    if not isinstance(files, dict) or not isinstance(exports, dict) or not isinstance(meta, dict):
        raise BadRecord("files, exports or meta is not an object")
    checked: dict[str, StoredFile] = {}
    for name, entry in files.items():
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or not isinstance(entry, dict):
            raise BadRecord(f"bad file entry {str(name)[:40]!r}")
        digest, size = entry.get("digest"), entry.get("size")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest) or type(size) is not int or size < 0:
            raise BadRecord(f"bad digest or size for {name!r}")
        checked[name] = {"digest": digest, "size": size, "mtime_ns": 0}
    for name, target in exports.items():
        if name not in checked or not isinstance(target, str) or not _FILE_NAME.fullmatch(target):
            raise BadRecord(f"bad export {str(name)[:40]!r} -> {str(target)[:40]!r}")
    seconds, created = m.get("seconds", 0.0), m.get("created", 0.0)
    if not isinstance(seconds, (int, float)) or not isinstance(created, (int, float)):
        raise BadRecord("seconds or created is not a number")
    return Manifest(stage, key, checked, dict(exports), meta, float(seconds), float(created))


class RemoteCache:
    """A stage cache in an object store, used by one process (a worker, or the planning parent)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.down = ""  # why it is no longer used in this process ("" while it is)
        self.broken: set[str] = set()  # keys whose remote record or objects were found bad

    @property
    def url(self) -> str:
        return self.objects.url

    @classmethod
    def open(cls, url: str, base: Path | None = None) -> RemoteCache:
        return cls(open_store(url, base=base))

    def check(self) -> None:
        """ObjectStoreError (exit 4) unless the remote can be reached: at the start of a run."""
        self.objects.check()

    def _failed(self, store: Store, exc: BaseException) -> None:
        if not self.down:
            self.down = f"{type(exc).__name__}: {exc}"
            store.warn(f"the remote cache {self.url} failed ({self.down}); going on without it")

    def record(self, key: str, stage: str, store: Store) -> Manifest | None:
        """The remote's manifest for `key` (objects not fetched): for planning, and fetch."""
        if self.down:
            return None
        try:
            data = self.objects.read_bytes(f"ac/{key}", limit=RECORD_LIMIT)
        except ValueError:
            data = b"{}"  # too large: refused like any bad record
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises: the run goes on locally
            self._failed(store, exc)
            return None
        if data is None:
            return None
        try:
            return decode(data, key, stage)
        except BadRecord as exc:
            self.broken.add(key)
            store.warn(f"{stage}: the remote cache's record ac/{key[:12]}… is unusable ({exc}); the stage reruns")
            return None

    def fetch(self, key: str, stage: str, store: Store) -> Manifest | None:
        """The stage's result, fetched into the local store and indexed there; None if the
        remote has none (or a bad one, or failed: the stage then runs here)."""
        record = self.record(key, stage, store)
        if record is None:
            return None
        with _fetching(store, key):
            m, _ = store.checked_manifest(key)
            if m is not None:  # another worker fetched (or built) it meanwhile
                return m
            work = store.workdir("fetch", stage)
            try:
                files = {name: self._object(entry, store, work, stage, key) for name, entry in record.files.items()}
            except _Refused:
                return None
            except Exception as exc:  # noqa: BLE001 - a network or disk failure: build it here
                self._failed(store, exc)
                return None
            finally:
                shutil.rmtree(work, ignore_errors=True)
            m = Manifest(stage, key, files, record.exports, record.meta, record.seconds, record.created)
            store.put_manifest(m)  # last: its objects are all in place
            return m

    def _object(self, entry: StoredFile, store: Store, work: Path, stage: str, key: str) -> StoredFile:
        digest, size = entry["digest"], entry["size"]
        local = store.object_path(digest)
        with contextlib.suppress(FileNotFoundError):
            st = local.stat()
            if st.st_size == size:
                return {"digest": digest, "size": size, "mtime_ns": st.st_mtime_ns}
        dest = work / digest
        if not self.objects.get_file(f"cas/{digest}", dest):
            self.broken.add(key)
            store.warn(f"{stage}: the remote cache has no object cas/{digest[:12]}…; the stage reruns")
            raise _Refused
        if dest.stat().st_size != size or sha256_file(dest) != digest:
            self.broken.add(key)
            store.warn(f"{stage}: the remote cache's object cas/{digest[:12]}… is corrupt (its content is not "
                       f"its sha256); refused, and the stage reruns")
            with contextlib.suppress(Exception):  # so that the rerun's push replaces it
                self.objects.delete(f"cas/{digest}")
            raise _Refused
        return store.put_object(dest, digest=digest)

    def push(self, m: Manifest, store: Store) -> bool:
        """Publish a stage stored locally: objects, then the record, each only if absent (a
        key found bad this run is replaced). Whether this call published the record."""
        if self.down:
            return False
        repair = m.key in self.broken
        try:
            if not repair and self.objects.exists(f"ac/{m.key}"):
                return False
            for entry in m.files.values():
                self.objects.put_file(store.object_path(entry["digest"]), f"cas/{entry['digest']}",
                                      if_absent=not repair)
            published = self.objects.put_bytes(encode(m), f"ac/{m.key}", if_absent=not repair)
        except Exception as exc:  # noqa: BLE001 - a cache is an optimisation: the run goes on
            self._failed(store, exc)
            return False
        self.broken.discard(m.key)
        return published


class _Refused(Exception):
    """An object of a record could not be used (already warned)."""


@contextlib.contextmanager
def _fetching(store: Store, key: str) -> Iterator[None]:
    # 256 lock files at most (by the key's first byte): a run fetching 10,000 stages leaves
    # no 10,000 files, and two keys rarely share one for long.
    folder = store.root / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"fetch-{key[:2]}", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        yield


_OPEN: dict[str, RemoteCache] = {}


def remote_for(url: str | None) -> RemoteCache | None:
    """One RemoteCache per URL and process (a worker runs many jobs; a failed remote stays
    off for the rest of its run)."""
    if not url:
        return None
    if url not in _OPEN:
        _OPEN[url] = RemoteCache.open(url)
    return _OPEN[url]


def configured(config: Mapping[str, Any], flag: str | None, root: Path) -> str | None:
    """The remote cache's URL: `--cache` wins over afx.yaml's `cache.remote`. A folder is
    made absolute: the flag's from the working directory, afx.yaml's from the repo root."""
    cache = config.get("cache")
    remote = cache.get("remote") if isinstance(cache, Mapping) else None
    url, base = (flag, Path.cwd()) if flag else (str(remote) if remote else None, Path(root))
    if not url or "://" in url:
        return url
    return str((base / Path(url).expanduser()).resolve())


__all__ = ["BadRecord", "ObjectStoreError", "RemoteCache", "configured", "decode", "encode", "remote_for", "shared"]
