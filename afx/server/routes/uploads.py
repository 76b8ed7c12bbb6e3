"""POST /v1/upload: a video streamed to disk (afx.server.uploads), to name by `fileId` in a job."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import insert

from afx.server import accounts, db, storage, uploads
from afx.server.accounts import Account
from afx.server.deps import Answer, Services, account, idempotent, in_thread, services
from afx.server.jobs import Refused
from afx.server.models import Uploaded, errors

router = APIRouter()

# The body is streamed by afx.server.uploads, not parsed by FastAPI: the document says what it takes.
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


@router.post("/v1/upload", status_code=201, response_model=Uploaded, tags=["upload"],
             summary="Upload a video file", responses=errors(400, 401, 409, 413, 415, 422, 429),
             openapi_extra=UPLOAD_BODY)
async def upload(request: Request, acct: Account = Depends(account),
                 srv: Services = Depends(services)) -> JSONResponse:
    settings = srv.settings
    declared = request.headers.get("content-length")
    # (the multipart framing around the file is allowed 1 MB)
    if declared and declared.isdigit() and int(declared) > settings.max_upload + 1024 * 1024:
        raise Refused(413, "too_large", f"the file is over the {settings.max_upload // (1024 * 1024)} MB "
                      "upload limit", limit=settings.max_upload)
    got: uploads.Received | None = None

    async def receive(keep: bool) -> bytes:
        nonlocal got
        got = await uploads.receive(request.stream(), request.headers.get("content-type", ""),
                                    settings.uploads_dir, settings.max_upload, keep=keep)
        if not keep:
            got.path.unlink(missing_ok=True)
        return got.sha256.encode()

    def record() -> Answer:
        assert got is not None  # idempotent calls receive first
        file_id = accounts.new_id("file")
        stored = uploads.store(got, settings.uploads_dir, file_id)
        shared = storage.from_settings(settings)
        if shared is not None:  # before its row: a worker elsewhere must find what the row names
            shared.put_upload(acct.id, stored, settings.uploads_dir / stored)
        with db.write(srv.engine) as conn:
            conn.execute(insert(db.uploads).values(id=file_id, account_id=acct.id, stored=stored,
                                                   filename=got.filename, size=got.size, sha256=got.sha256,
                                                   created=time.time()))
        return 201, {"fileId": file_id, "filename": got.filename, "size": got.size, "sha256": got.sha256}

    return await idempotent(request, acct, receive, in_thread(record))
