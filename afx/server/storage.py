"""Uploads and job outputs in a shared object store (AFX_STORAGE_URL), for an API front and
workers on different machines (docs/scale.md). Without it, everything stays in the data dir.

With `AFX_STORAGE_URL=s3://bucket/prefix` (or any URL afx.objects opens):

    <prefix>/uploads/<account>/<stored name>   an upload, put by the front that received it
    <prefix>/cache/cas/<sha256>                 file contents, shared with the stage cache
                                                (`cache.remote`: the workers' afx.engine.remote)
    <prefix>/outputs/<account>/<job>.json       a finished job's files: {name: {sha256, size}}

The data dir becomes a read-through cache: a worker fetches an upload it does not have (and
checks its sha256 against the upload's row); a front serves a job's file from its own disk
when it has it, else redirects to a presigned URL of its object (where the store cannot
sign, a folder, it serves a copy fetched into its own cache). A job's files are put before
its outputs record, and the record before the job's row says complete, so whoever sees a
finished job can fetch all of it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afx.digest import sha256_file

SIGNED_FOR = 3600  # seconds a presigned URL of a job's file is good for


@dataclass(frozen=True)
class Located:
    """Where a job's file is: on this machine's disk, or at a presigned URL."""

    path: Path | None = None
    url: str | None = None


class SharedFiles:
    def __init__(self, url: str, data_dir: Path) -> None:
        from afx.objects import open_store

        self.url = url.rstrip("/")
        self.objects = open_store(self.url)
        self.data_dir = Path(data_dir)

    @property
    def cache_url(self) -> str:
        """The stage cache's remote (cache.remote for the workers' engine)."""
        return f"{self.url}/cache"

    # -- uploads --------------------------------------------------------------------------
    def put_upload(self, account_id: str, stored: str, path: Path) -> None:
        self.objects.put_file(path, f"uploads/{_part(account_id)}/{_part(stored)}", if_absent=True)

    def fetch_upload(self, account_id: str, stored: str, dest: Path, sha256: str | None) -> Path:
        """The upload on this machine's disk at `dest`, fetched if it is not there yet, and
        checked against the digest the front recorded."""
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".fetch-{secrets.token_hex(6)}-{dest.name}")
        try:
            if not self.objects.get_file(f"uploads/{_part(account_id)}/{_part(stored)}", tmp):
                raise StorageProblem(f"upload {stored} is not in the shared store {self.url}")
            if sha256 and sha256_file(tmp) != sha256:
                raise StorageProblem(f"upload {stored}: the stored object does not match its sha256")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # -- job outputs ----------------------------------------------------------------------
    def push_outputs(self, account_id: str, job_id: str, folder: Path) -> dict[str, Any]:
        """Put a finished job's files (out/<job>/: what its listing names, the files the API
        serves) in the store, then their record. Returns the record."""
        from afx.engine.outputs import LISTING

        listing = folder / LISTING
        names = listing.read_text().split() if listing.is_file() else []
        record: dict[str, Any] = {}
        for name in names:
            path = folder / name
            if "/" in name or name.startswith(".") or not path.is_file():
                continue
            digest = sha256_file(path)
            self.objects.put_file(path, f"cache/cas/{digest}", if_absent=True)
            record[name] = {"sha256": digest, "size": path.stat().st_size}
        self.objects.put_bytes(json.dumps({"files": record}, sort_keys=True).encode(),
                               f"outputs/{_part(account_id)}/{_part(job_id)}.json", if_absent=False)
        return record

    def outputs(self, account_id: str, job_id: str) -> Mapping[str, Any]:
        raw = self.objects.read_bytes(f"outputs/{_part(account_id)}/{_part(job_id)}.json", limit=1 << 20)
        if raw is None:
            return {}
        try:
            files = json.loads(raw).get("files")
        except (ValueError, AttributeError):
            return {}
        return files if isinstance(files, dict) else {}

    def locate(self, account_id: str, job_id: str, name: str) -> Located | None:
        """A job's file from the store (None: the job has no such file there): a presigned
        URL, or (a store that cannot sign, a folder) a copy in this machine's cache."""
        entry = self.outputs(account_id, job_id).get(name)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            return None
        obj = f"cache/cas/{digest}"
        url = self.objects.sign(obj, SIGNED_FOR)
        if url:
            return Located(url=url)
        local = self.data_dir / "cache" / "files" / digest
        if not local.is_file():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".fetch-{secrets.token_hex(6)}")
            try:
                if not self.objects.get_file(obj, tmp) or sha256_file(tmp) != digest:
                    return None
                os.replace(tmp, local)
            finally:
                tmp.unlink(missing_ok=True)
        return Located(path=local)


class StorageProblem(Exception):
    """An object in the shared store cannot be used (the message names it)."""


def _part(value: str) -> str:
    """One path segment of an object name: ids and generated names only, never a path."""
    if not value or "/" in value or value.startswith(".") or "\\" in value:
        raise StorageProblem(f"not a storage name: {value!r}")
    return value


def local_upload(engine: Any, shared: SharedFiles, account_id: str, file_id: str, path: Path) -> Path:
    """One of the account's uploads on this machine's disk (`path`, where afx.server.jobs'
    upload_path puts it), fetched from the shared store and checked against its row's sha256."""
    from sqlalchemy import select

    from afx.server import db

    with db.read(engine) as conn:
        digest = conn.execute(select(db.uploads.c.sha256).where(
            db.uploads.c.id == file_id, db.uploads.c.account_id == account_id)).scalar()
    return shared.fetch_upload(account_id, path.name, path, digest)


def from_settings(settings: Any) -> SharedFiles | None:
    url = getattr(settings, "storage_url", "") or ""
    return SharedFiles(url, settings.data_dir) if url else None
