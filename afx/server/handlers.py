"""Every error answer in one shape, {"error": {"code", "message", ...}}, whatever raised it.

`Refused` (afx.server.jobs) is an answer a route chose; `SpecError` a body that does not
validate (422, with `fields` naming each field as the schema spells it, `durationMins`);
FastAPI's own validation and routing errors are put in the same shape; anything else is a
500 that logs its traceback and tells the client nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from afx.errors import Diagnostic, SpecError
from afx.server.jobs import Refused
from afx.server.models import SafeJSON

log = logging.getLogger("afx.server")


def error_body(exc: Refused) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, **exc.extra}}


def spec_error_body(exc: SpecError) -> dict[str, Any]:
    fields = [{"field": d.path, "message": d.message, **({"hint": d.hint} if d.hint else {})}
              for d in exc.diagnostics]
    first = exc.diagnostics[0] if exc.diagnostics else None
    message = (f"{first.path}: {first.message}" if first and first.path else first.message if first
               else "invalid request")
    return {"error": {"code": "invalid_request", "message": message, "fields": fields}}


def body_field(path: str, message: str) -> Diagnostic:
    """A problem with one field of a request body that a route checks itself (not by schema)."""
    return Diagnostic("body", 0, 0, path, message)


async def refused(request: Request, exc: Refused) -> JSONResponse:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if "retryAfter" in exc.extra:
        headers["Retry-After"] = str(exc.extra["retryAfter"])
    return SafeJSON(error_body(exc), status_code=exc.status, headers=headers)


async def spec_error(request: Request, exc: SpecError) -> JSONResponse:
    return SafeJSON(spec_error_body(exc), status_code=422)


async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        fields.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    first = fields[0] if fields else {"field": "", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return SafeJSON({"error": {"code": "invalid_request", "message": message, "fields": fields}},
                    status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return SafeJSON({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                    headers=getattr(exc, "headers", None))


async def disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
    # Not a server fault: one line, no traceback (the upload's partial file is already gone).
    who = request.client.host if request.client else "?"
    log.warning("%s %s: the client (%s) disconnected before its request was received; dropped",
                request.method, request.url.path, who)
    return SafeJSON({"error": {"code": "client_disconnected", "message": "the request was cut off"}},
                    status_code=400)


async def internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return SafeJSON({"error": {"code": "internal", "message": "internal server error"}}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Refused, refused)  # type: ignore[arg-type]
    app.add_exception_handler(SpecError, spec_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, disconnected)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal)
