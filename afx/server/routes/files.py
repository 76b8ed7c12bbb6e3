"""GET /v1/jobs/{id}/files/{name}: the files a job's result links to (video, thumbnail, package)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response

from afx.errors import shown
from afx.server import jobs, storage
from afx.server.accounts import Account
from afx.server.deps import Services, account, services
from afx.server.jobs import Refused
from afx.server.models import errors

router = APIRouter()


@router.get("/v1/jobs/{job_id}/files/{name}", tags=["jobs"], summary="Download a job's file",
            responses={200: {"content": {"video/mp4": {}, "image/jpeg": {}, "application/json": {}}},
                       **errors(401, 404, 429)})
def job_file(job_id: str, name: str, acct: Account = Depends(account),
             srv: Services = Depends(services)) -> Response:
    jobs.get_row(srv.engine, acct.id, job_id)  # 404 unless it is this account's job
    missing = Refused(404, "not_found", f"job {job_id} has no file {shown(name)}")
    if "/" in name or name.startswith("."):
        raise missing
    folder = srv.settings.account_root(acct.id) / "out" / job_id
    # Only files the job's export listed (afx/engine/outputs.py) are served, never a path the request made up.
    listing = folder / ".afx-files"
    if listing.is_file():
        names = set(listing.read_text().split())
        if name in names and (folder / name).is_file():
            return FileResponse(folder / name, filename=name)
    shared = storage.from_settings(srv.settings)
    found = shared.locate(acct.id, job_id, name) if shared is not None else None
    if found is None or shared is None:
        raise missing
    if found.url:  # the store serves it: this front's bandwidth is not spent on videos
        return RedirectResponse(found.url, status_code=307)
    assert found.path is not None
    return FileResponse(found.path, filename=name)
