"""What afx.lock remembers of an API, read and written for `afx push` and `afx remote`.

    jobs.<job>.remote.<api>   {jobId, spec, status, submitted, request[, files, downloaded]}
    remote.<api>.uploads      {sha256 of a local file: the fileId the API gave it}

`files` are the digests of what the push downloaded into out/<job>/ (afx verify checks
against them); `request` is the job's Idempotency-Key base, so a changed job is not
mistaken for the one submitted before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from afx.engine.lockfile import read_lock, update_lock
from afx.errors import AfxError, UsageError
from afx.remote.items import Item
from afx.spec.repo import default_root


def remote_block(lock: Mapping[str, Any], job: str, api: str) -> dict[str, Any] | None:
    """The record of `job`'s push to `api`, or None."""
    block = (lock.get("jobs") or {}).get(job) or {}
    found = (block.get("remote") or {}).get(api) if isinstance(block, dict) else None
    return found if isinstance(found, dict) else None


def remote_blocks(lock: Mapping[str, Any], api: str) -> dict[str, dict[str, Any] | None]:
    """Every job's record for `api` (None for a job never pushed there)."""
    return {name: remote_block(lock, name, api) for name in (lock.get("jobs") or {})}


def uploads(lock: Mapping[str, Any], api: str) -> dict[str, str]:
    """sha256 -> fileId of the files uploaded to `api` before."""
    top = lock.get("remote")
    remote = (top.get(api) or {}) if isinstance(top, dict) else {}
    return dict(remote.get("uploads") or {})


def save(root: Path, api: str, items: Sequence[Item], *, uploaded: Mapping[str, str], forgotten: Collection[str],
         now: str) -> None:
    """Record the items that have a remote job, and the uploads learned (or found unknown to
    the server) by this push; `now` stands in for a submission time not known."""
    if not any(i.job_id for i in items) and not uploaded and not forgotten:
        return  # nothing to remember: afx.lock is not created for it

    def change(data: dict[str, Any]) -> None:
        jobs = data.setdefault("jobs", {})
        for item in items:
            if not item.job_id:
                continue
            block = jobs.setdefault(item.name, {})
            remote = block.setdefault("remote", {})
            remote[api] = {"jobId": item.job_id, "spec": item.job.digest, "status": item.status,
                           "submitted": item.submitted or now, "request": item.request}
            if item.digests:  # afx verify checks out/<job>/ against these
                remote[api].update(files=dict(item.digests), downloaded=now)
        if uploaded or forgotten:
            top = data.setdefault("remote", {})
            known = top.setdefault(api, {}).setdefault("uploads", {})
            for sha in forgotten:
                known.pop(sha, None)
            known.update(uploaded)

    update_lock(root, change)


def _lock(root: Path | None) -> dict[str, Any]:
    try:
        return read_lock(root if root is not None else default_root())
    except AfxError:  # an unreadable afx.lock only loses the name lookup
        return {"jobs": {}}


def names_by_id(api: str, root: Path | None = None) -> dict[str, str]:
    """remote job id -> local job name, for the jobs pushed to `api` from the repo."""
    lock = _lock(root)
    out = {}
    for name in lock.get("jobs") or {}:
        block = remote_block(lock, name, api)
        if block and block.get("jobId"):
            out[str(block["jobId"])] = name
    return out


def job_id(api: str, job: str, root: Path | None = None) -> tuple[str, str]:
    """(remote id, local name or "") for a remote id or a local job's name."""
    lock = _lock(root)
    if job in (lock.get("jobs") or {}):
        block = remote_block(lock, job, api)
        if block and block.get("jobId"):
            return str(block["jobId"]), job
        raise UsageError(f"job {job!r} has not been pushed to {api}", hint=f"afx push {job}")
    return job, names_by_id(api, root).get(job, "")
