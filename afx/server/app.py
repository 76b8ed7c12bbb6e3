"""The AuraFlux v1 API (../docs/auraflux-api-v1.txt) as a FastAPI app over afx's engine.

Every error answer has one shape: {"error": {"code", "message", ...}}; a body that does not
validate is a 422 whose `fields` name each field (`durationMins`), from the same resolver
and schema `afx validate` uses.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from afx import __version__, times
from afx.errors import SpecError, shown
from afx.server import accounts, db, idempotency, jobs, uploads
from afx.server.accounts import Account
from afx.server.jobs import Refused
from afx.server.limits import RateLimiter, SharedRateLimiter
from afx.server.resolver import Resolvers
from afx.server.settings import Settings
from afx.spec.schema import schema

log = logging.getLogger("afx.server")
STORED_REFUSALS = (400, 413, 415, 422)
AUTH_TTL = 5.0  # seconds a checked key is trusted without a database read (a revoked key lasts this long)
JobState = Literal["queued", "running", "complete", "published", "failed", "cancelled"]


# -- documented shapes (OpenAPI) ---------------------------------------------------------
class SafeJSON(JSONResponse):
    """JSON with non-ASCII escaped: any str (even a lone surrogate) encodes; never a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorAnswer(BaseModel):
    error: ErrorBody


class JobCreated(BaseModel):
    jobId: str = Field(examples=["job_abc123"])
    status: str = Field(examples=["queued"])
    creditCost: int = Field(examples=[1])
    balance: int = Field(examples=[46])


class PublishCopy(BaseModel):
    title: str = ""
    description: str = ""
    hashtags: list[str] = []


class JobStatus(BaseModel):
    jobId: str
    status: str
    outputUrl: str | None = None
    score: int | None = None
    platforms: list[str] = []
    createdAt: str | None = None
    error: str | None = None
    publishing: Literal["queued", "running"] | None = Field(
        None, description="afx: a complete job's publish run (after approve-publish or its schedule) "
                          "is waiting or under way; the job stays complete and its result readable")
    model_config = {"extra": "allow"}


class JobResult(BaseModel):
    jobId: str
    status: str
    videoUrl: str | None = None
    thumbnailUrl: str | None = None
    publishCopy: PublishCopy
    completedAt: str | None = None
    publishResults: list[dict[str, Any]] = []
    model_config = {"extra": "allow"}


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    limit: int
    offset: int


class Cancelled(BaseModel):
    jobId: str
    status: str
    refunded: bool


class Approved(BaseModel):
    jobId: str
    status: str
    approved: bool


class ScheduleBody(BaseModel):
    scheduledAt: str | None = Field(description="RFC 3339 time with an offset, or null to unschedule",
                                    examples=["2026-05-26T09:00:00Z"])
    model_config = {"extra": "forbid"}


class Scheduled(BaseModel):
    jobId: str
    scheduledAt: str | None


class Uploaded(BaseModel):
    fileId: str = Field(examples=["file_3f2a9c1d0b7e"])
    filename: str
    size: int
    sha256: str


class Template(BaseModel):
    id: str
    name: str | None = None
    createdAt: str | None = None
    model_config = {"extra": "allow"}


class TemplateList(BaseModel):
    templates: list[Template]


class Deleted(BaseModel):
    id: str
    deleted: bool


class Credits(BaseModel):
    balance: int
    included: int
    used: int


class AccountInfo(BaseModel):
    accountId: str
    planTier: str
    credits: Credits
    rateLimit: dict[str, int]
    concurrency: dict[str, int]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorAnswer} for code in codes}


# -- the app -----------------------------------------------------------------------------
def create_app(settings: Settings, *, start_workers: bool = True) -> FastAPI:
    engine = db.connect(settings.database_url)
    limiter: RateLimiter | SharedRateLimiter = (  # see afx.server.limits: why per database
        SharedRateLimiter(engine, settings.rate_limit) if engine.dialect.name == "postgresql"
        else RateLimiter(settings.rate_limit))
    from afx.server.worker import Workers

    workers = Workers(engine, settings)
    resolvers = Resolvers(settings.resolvers, settings.resolve_budget)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if start_workers:
            workers.start()
        resolvers.warm()
        try:
            yield
        finally:
            resolvers.close()
            workers.stop()
            engine.dispose()

    app = FastAPI(title="AuraFlux-compatible API (afx serve)", version=__version__, lifespan=lifespan,
                  default_response_class=SafeJSON,
                  description="The AuraFlux v1 API, served by afx over its own engine. "
                              "Authenticate with `Authorization: Bearer af_live_...`.")
    app.state.engine, app.state.settings, app.state.workers = engine, settings, workers
    app.add_middleware(_RateHeaders)
    _handlers(app)

    known: dict[str, tuple[float, Account]] = {}  # sha256(key) -> (checked at, account): 5 s

    def authenticate(key: str) -> Account | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = known.get(digest)
        now = time.monotonic()
        if hit is not None and now - hit[0] < AUTH_TTL:
            return hit[1]
        found = accounts.authenticate(engine, key)
        if found is not None:
            if len(known) > 10_000:
                known.clear()
            known[digest] = (now, found)
        return found

    def account(request: Request) -> Account:
        scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
        key = credentials.strip() if scheme.lower() == "bearer" else ""  # schemes are case-insensitive
        found = authenticate(key) if key else None
        if found is None:
            # Unknown callers are limited per address, so key guessing is slow too.
            verdict = limiter.hit(f"ip:{request.client.host if request.client else '?'}")
            request.state.ratelimit = verdict
            if not verdict.allowed:
                raise Refused(429, "rate_limited", "too many requests", retryAfter=int(verdict.reset) + 1)
            raise Refused(401, "unauthorized", "missing or invalid API key" if key else
                          "pass your API key as `Authorization: Bearer af_live_...`")
        verdict = limiter.hit(found.key_id)
        request.state.ratelimit = verdict
        if not verdict.allowed:
            raise Refused(429, "rate_limited", f"more than {verdict.limit} requests a minute",
                          retryAfter=max(1, int(verdict.reset + 0.999)))
        return found

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def small_body(request: Request) -> bytes:
        """The request body, refused (413) as soon as it passes 256 KB: no route reads more."""
        from afx.spec.api import MAX_BODY

        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            raise Refused(413, "too_large", f"the body is larger than {MAX_BODY // 1024} KB")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Refused(413, "too_large", f"the body is larger than {MAX_BODY // 1024} KB")
        return bytes(raw)

    async def json_body(request: Request) -> tuple[bytes, Any]:
        from afx.spec.api import parse_json

        raw = await small_body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if raw and kind not in ("application/json", ""):
            raise Refused(415, "unsupported_media_type", "send the body as application/json")
        return raw, parse_json(raw) if raw else None

    async def idempotent(request: Request, acct: Account, raw: bytes,
                         produce: Callable[[], Awaitable[tuple[int, Any]]]) -> JSONResponse:
        """Run `produce` under the request's Idempotency-Key. Database work goes to threads:
        the event loop serves everyone and runs no blocking call (issue 11)."""
        key = request.headers.get("idempotency-key")
        if key is None:
            status, body = await produce()
            return SafeJSON(body, status_code=status)
        idempotency.check_key(key)
        request_id = idempotency.request_hash(request.method, request.url.path, raw)
        replay = await run_in_threadpool(idempotency.begin, engine, acct.id, key, request_id)
        if replay is not None:
            return SafeJSON(replay[1], status_code=replay[0], headers={"Idempotent-Replayed": "true"})
        try:
            status, body = await produce()
        except Refused as exc:
            if exc.status in STORED_REFUSALS:  # the same body will always get this answer
                await run_in_threadpool(idempotency.finish, engine, acct.id, key, exc.status, _error_body(exc))
            else:  # 402, 404, 409, 429 depend on the moment: a retry with the key may succeed
                await run_in_threadpool(idempotency.release, engine, acct.id, key)
            raise
        except SpecError as exc:
            await run_in_threadpool(idempotency.finish, engine, acct.id, key, 422, _spec_error_body(exc))
            raise
        except BaseException:
            # (also a cancelled request: released in a thread we do not wait for)
            await asyncio.shield(run_in_threadpool(idempotency.release, engine, acct.id, key))
            raise
        await run_in_threadpool(idempotency.finish, engine, acct.id, key, status, body)
        return SafeJSON(body, status_code=status)

    def in_thread(fn: Callable[[], tuple[int, Any]]) -> Callable[[], Awaitable[tuple[int, Any]]]:
        return lambda: run_in_threadpool(fn)

    # -- jobs ---------------------------------------------------------------------------
    job_body_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/JobSpec"}}}}}

    @app.post("/v1/jobs", status_code=201, response_model=JobCreated, tags=["jobs"], summary="Submit a job",
              openapi_extra=job_body_doc, responses=_errors(400, 401, 402, 409, 413, 415, 422, 429))
    async def submit_job(request: Request, acct: Account = Depends(account)) -> JSONResponse:
        raw, body = await json_body(request)
        if body is None:
            raise Refused(422, "invalid_request", "send the job as a JSON body")

        async def produce() -> tuple[int, Any]:
            job_id = accounts.new_id("job")
            templates = await run_in_threadpool(jobs.account_templates, engine, acct.id)
            fields = await resolvers.resolve(acct.id, body, name=job_id, root=str(settings.account_root(acct.id)),
                                             templates=templates)
            return 201, await run_in_threadpool(jobs.create, engine, settings, acct.id, job_id, body, fields)

        answer = await idempotent(request, acct, raw, produce)
        workers.notify()
        return answer

    @app.get("/v1/jobs", response_model=JobList, tags=["jobs"], summary="List jobs",
             responses=_errors(401, 422, 429))
    def list_jobs(request: Request, acct: Account = Depends(account),
                  limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=10**9),
                  status: JobState | None = Query(None)) -> dict[str, Any]:
        return jobs.list_jobs(engine, acct.id, base(request), limit=limit, offset=offset, status=status)

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], summary="Get job status",
             responses=_errors(401, 404, 429))
    def get_job(job_id: str, request: Request, acct: Account = Depends(account)) -> dict[str, Any]:
        return jobs.status_view(jobs.get_row(engine, acct.id, job_id), base(request))

    @app.get("/v1/jobs/{job_id}/result", response_model=JobResult, tags=["jobs"], summary="Get full job result",
             responses={202: {"model": JobStatus, "description": "Not complete yet"}, **_errors(401, 404, 429)})
    def get_result(job_id: str, request: Request, acct: Account = Depends(account)) -> Any:
        row = jobs.get_row(engine, acct.id, job_id)
        result = jobs.result_view(row, base(request))
        if result is None:
            return SafeJSON(jobs.status_view(row, base(request)), status_code=202)
        return result

    @app.delete("/v1/jobs/{job_id}", response_model=Cancelled, tags=["jobs"], summary="Cancel a job",
                responses=_errors(401, 404, 409, 429))
    def cancel_job(job_id: str, acct: Account = Depends(account)) -> dict[str, Any]:
        answer = jobs.cancel(engine, acct.id, job_id)
        workers.cancel(job_id)
        return answer

    @app.post("/v1/jobs/{job_id}/approve-publish", response_model=Approved, tags=["jobs"],
              summary="Approve staged job", responses=_errors(401, 404, 409, 429))
    async def approve(job_id: str, request: Request, acct: Account = Depends(account)) -> JSONResponse:
        raw = await small_body(request)
        answer = await idempotent(request, acct, raw, in_thread(lambda: (200, jobs.approve(engine, settings, acct.id,
                                                                                         job_id))))
        workers.notify()
        return answer

    @app.patch("/v1/jobs/{job_id}/schedule", response_model=Scheduled, tags=["scheduling"],
               summary="Schedule a job", responses=_errors(401, 404, 409, 413, 415, 422, 429),
               openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                   "schema": ScheduleBody.model_json_schema()}}}})
    async def schedule(job_id: str, request: Request, acct: Account = Depends(account)) -> dict[str, Any]:
        _, body = await json_body(request)
        if not isinstance(body, dict) or "scheduledAt" not in body:
            raise SpecError([_field("scheduledAt", "required: an RFC 3339 time, or null to unschedule")])
        unknown = sorted(set(body) - {"scheduledAt"})
        if unknown:
            raise SpecError([_field(k[:60], "unknown field") for k in unknown[:10]])
        value = body["scheduledAt"]
        if value is not None and not isinstance(value, str):
            raise SpecError([_field("scheduledAt", "must be a string (RFC 3339) or null")])
        at = _rfc3339(value) if value is not None else None
        answer = await run_in_threadpool(jobs.schedule, engine, settings, acct.id, job_id, at)
        workers.notify()
        return answer

    @app.get("/v1/jobs/{job_id}/files/{name}", tags=["jobs"], summary="Download a job's file",
             responses={200: {"content": {"video/mp4": {}, "image/jpeg": {}, "application/json": {}}},
                        **_errors(401, 404, 429)})
    def job_file(job_id: str, name: str, acct: Account = Depends(account)) -> FileResponse:
        jobs.get_row(engine, acct.id, job_id)  # 404 unless it is this account's job
        folder = settings.account_root(acct.id) / "out" / job_id
        listing = folder / ".afx-files"
        names = set(listing.read_text().split()) if listing.is_file() else set()
        if name not in names or "/" in name or name.startswith("."):
            raise Refused(404, "not_found", f"job {job_id} has no file {shown(name)}")
        return FileResponse(folder / name, filename=name)

    # -- upload -------------------------------------------------------------------------
    @app.post("/v1/upload", status_code=201, response_model=Uploaded, tags=["upload"],
              summary="Upload a video file", responses=_errors(400, 401, 409, 413, 415, 422, 429),
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["file"],
                  "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def upload(request: Request, acct: Account = Depends(account)) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload + 1024 * 1024:
            raise Refused(413, "too_large", f"the file is over the {settings.max_upload // (1024 * 1024)} MB "
                          "upload limit", limit=settings.max_upload)
        key = request.headers.get("idempotency-key")
        earlier = None
        if key is not None:
            idempotency.check_key(key)
            earlier = await run_in_threadpool(idempotency.peek, engine, acct.id, key)
            if earlier and earlier["state"] == "in_flight":
                raise Refused(409, "idempotency_in_flight", "an upload with this Idempotency-Key is in progress")
            if earlier is None and await run_in_threadpool(idempotency.begin, engine, acct.id, key, "pending"):
                raise Refused(409, "idempotency_in_flight", "an upload with this Idempotency-Key is in progress")
        try:
            got = await uploads.receive(request.stream(), request.headers.get("content-type", ""),
                                        settings.uploads_dir, settings.max_upload,
                                        keep=earlier is None)  # a replay is only compared
        except BaseException:
            if key is not None and earlier is None:
                await asyncio.shield(run_in_threadpool(idempotency.release, engine, acct.id, key))
            raise
        request_id = idempotency.request_hash("POST", "/v1/upload", got.sha256.encode())
        if earlier is not None:
            got.path.unlink(missing_ok=True)
            if earlier["request"] != request_id:
                raise Refused(422, "idempotency_mismatch", "this Idempotency-Key was used with a different file")
            return SafeJSON(json.loads(earlier["response"]), status_code=earlier["status_code"],
                                headers={"Idempotent-Replayed": "true"})
        file_id = accounts.new_id("file")
        body = {"fileId": file_id, "filename": got.filename, "size": got.size, "sha256": got.sha256}

        def record() -> None:
            stored = uploads.store(got, settings.uploads_dir, file_id)
            with db.write(engine) as conn:
                conn.execute(insert(db.uploads).values(id=file_id, account_id=acct.id, stored=stored,
                                                       filename=got.filename, size=got.size, sha256=got.sha256,
                                                       created=time.time()))
            if key is not None:
                idempotency.set_request(engine, acct.id, key, request_id)
                idempotency.finish(engine, acct.id, key, 201, body)

        await run_in_threadpool(record)
        return SafeJSON(body, status_code=201)

    # -- templates ----------------------------------------------------------------------
    @app.get("/v1/templates", response_model=TemplateList, tags=["templates"], summary="List templates",
             responses=_errors(401, 429))
    def list_templates(acct: Account = Depends(account)) -> dict[str, Any]:
        with db.read(engine) as conn:
            rows = conn.execute(select(db.templates).where(db.templates.c.account_id == acct.id)
                                .order_by(db.templates.c.created, db.templates.c.id)).mappings().all()
        return {"templates": [_template_view(r) for r in rows]}

    @app.post("/v1/templates", status_code=201, response_model=Template, tags=["templates"],
              summary="Create a template", responses=_errors(401, 409, 413, 415, 422, 429),
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/TemplateSpec"}}}}})
    async def create_template(request: Request, acct: Account = Depends(account)) -> JSONResponse:
        from afx.spec.api import template_problems

        raw, body = await json_body(request)

        def produce() -> tuple[int, Any]:
            problems = template_problems(body)
            if problems:
                raise SpecError(problems)
            tid, now = accounts.new_id("tpl"), time.time()
            with db.write(engine) as conn:
                conn.execute(insert(db.templates).values(id=tid, account_id=acct.id, name=body.get("name"),
                                                         body=json.dumps(body, sort_keys=True), created=now))
                row = conn.execute(select(db.templates).where(db.templates.c.id == tid)).mappings().one()
            return 201, _template_view(row)

        return await idempotent(request, acct, raw, in_thread(produce))

    @app.delete("/v1/templates/{template_id}", response_model=Deleted, tags=["templates"],
                summary="Delete a template", responses=_errors(401, 404, 429))
    def delete_template(template_id: str, acct: Account = Depends(account)) -> dict[str, Any]:
        with db.write(engine) as conn:
            done = conn.execute(delete(db.templates).where(db.templates.c.id == template_id,
                                                           db.templates.c.account_id == acct.id))
        if done.rowcount != 1:
            raise Refused(404, "not_found", f"no template {shown(template_id)}")
        return {"id": template_id, "deleted": True}

    # -- account ------------------------------------------------------------------------
    @app.get("/v1/account", response_model=AccountInfo, tags=["account"], summary="Get account info",
             responses=_errors(401, 429))
    def get_account(request: Request, acct: Account = Depends(account)) -> dict[str, Any]:
        info = accounts.summary(engine, acct.id)
        verdict = request.state.ratelimit
        with db.read(engine) as conn:
            from sqlalchemy import func

            active = conn.execute(select(func.count()).select_from(db.jobs).where(
                db.jobs.c.account_id == acct.id, *jobs.submitted_and_active())).scalar()
        info["rateLimit"] = {"limit": verdict.limit, "remaining": verdict.remaining,
                             "reset": int(verdict.reset + 0.999), "windowSeconds": 60}
        info["concurrency"] = {"limit": settings.max_active, "active": int(active)}
        return info

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


def _template_view(row: Any) -> dict[str, Any]:
    body = json.loads(row["body"])
    return {"id": row["id"], **body, "name": row["name"], "createdAt": times.iso(row["created"])}


def _rfc3339(value: str) -> str:
    try:
        return times.rfc3339(value)
    except times.BadTime as exc:
        raise SpecError([_field("scheduledAt", str(exc))]) from None


def _field(path: str, message: str) -> Any:
    from afx.errors import Diagnostic

    return Diagnostic("body", 0, 0, path, message)


# -- errors ------------------------------------------------------------------------------
def _error_body(exc: Refused) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, **exc.extra}}


def _spec_error_body(exc: SpecError) -> dict[str, Any]:
    fields = [{"field": d.path, "message": d.message, **({"hint": d.hint} if d.hint else {})}
              for d in exc.diagnostics]
    first = exc.diagnostics[0] if exc.diagnostics else None
    message = (f"{first.path}: {first.message}" if first and first.path else first.message if first
               else "invalid request")
    return {"error": {"code": "invalid_request", "message": message, "fields": fields}}


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if "retryAfter" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retryAfter"])
        return SafeJSON(_error_body(exc), status_code=exc.status, headers=headers)

    @app.exception_handler(SpecError)
    async def spec_error(request: Request, exc: SpecError) -> JSONResponse:
        return SafeJSON(_spec_error_body(exc), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            fields.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
        first = fields[0] if fields else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return SafeJSON({"error": {"code": "invalid_request", "message": message, "fields": fields}},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return SafeJSON({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Not a server fault: one line, no traceback (the upload's partial file is already gone).
        who = request.client.host if request.client else "?"
        log.warning("%s %s: the client (%s) disconnected before its request was received; dropped",
                    request.method, request.url.path, who)
        return SafeJSON({"error": {"code": "client_disconnected", "message": "the request was cut off"}},
                        status_code=400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return SafeJSON({"error": {"code": "internal", "message": "internal server error"}}, status_code=500)


class _RateHeaders:
    """Adds X-Afx-Version and the RateLimit headers of the request's key to every answer (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                # Clients (afx push) send afx's extension fields (script, copy, render) only to afx.
                headers.append((b"x-afx-version", __version__.encode()))
                verdict = (scope.get("state") or {}).get("ratelimit")
                if verdict is not None:
                    present = {k.lower() for k, _ in headers}
                    for k, v in verdict.headers().items():
                        if k.lower().encode() not in present:
                            headers.append((k.lower().encode(), v.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- OpenAPI: the job and template schemas are the real ones, not pydantic copies ----------
def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(api_schemas())
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                            "description": "af_live_... API key"}}
        spec["security"] = [{"bearer": []}]
        spec["servers"] = [{"url": "/"}]
        app.openapi_schema = spec
        return spec

    return build


HTTP_REFUSED = ("file", "matrix", "name")  # local paths, matrices: refused over HTTP; the server names jobs
CUSTOM = ("errorMessage", "patternErrorMessage", "x-afx-field", "x-afx-at", "$comment")


def api_schemas() -> dict[str, Any]:
    """The job and template schemas as OpenAPI components (JobSpec, TemplateSpec, JobSpec_<def>).

    Field by field the same schemas; the cross-field rules (url for fetch, scheduledAt for
    scheduled...) are listed in the description instead of as if/then, which OpenAPI tools
    render poorly and test generators cannot use; the server enforces them all (422).
    """
    job, template = copy.deepcopy(schema("job")), copy.deepcopy(schema("template"))
    out: dict[str, Any] = {}
    for name, def_schema in job.pop("$defs", {}).items():
        out[f"JobSpec_{name}"] = _clean(_rewrite_refs(def_schema, "JobSpec_"))
    rules = [r.get("errorMessage", "") for r in (job.get("allOf") or [{}])[0].get("then", {}).get("allOf", [])]
    job_props = {k: _clean(_rewrite_refs(v, "JobSpec_")) for k, v in job["properties"].items()}
    out["JobSpec"] = {
        "title": job.get("title"), "type": "object", "additionalProperties": False,
        "description": (job.get("description", "") + " Over HTTP, local files and matrices are not accepted "
                        "(upload files with POST /upload). Rules across fields, checked by the server (422): "
                        + "; ".join(r for r in rules if r) + "."),
        "properties": {k: v for k, v in job_props.items() if k not in HTTP_REFUSED},
    }
    template.pop("$defs", None)
    t_props = {}
    for key, value in template["properties"].items():
        ref = value.get("$ref", "") if isinstance(value, dict) else ""
        if ref.startswith("job.schema.json#/properties/"):
            value = {**job_props[ref.rsplit("/", 1)[1]], **{k: v for k, v in value.items() if k != "$ref"}}
        t_props[key] = _clean(value)
    out["TemplateSpec"] = {"title": template.get("title"), "type": "object", "additionalProperties": False,
                           "description": template.get("description", ""),
                           "properties": {k: v for k, v in t_props.items() if k not in ("id", *HTTP_REFUSED)}}
    return out


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if k not in CUSTOM}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = "#/components/schemas/" + prefix + v[len("#/$defs/"):]
            else:
                out[k] = _rewrite_refs(v, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node
