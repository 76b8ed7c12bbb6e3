"""/v1/jobs: submit, list, status, result, cancel, approve-publish, schedule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from afx import times
from afx.errors import SpecError
from afx.server import accounts, jobs, templates
from afx.server.accounts import Account
from afx.server.deps import Answer, Services, account, base, idempotent, in_thread, json_body, services, small_body
from afx.server.handlers import body_field
from afx.server.jobs import Refused
from afx.server.models import (
    Approved,
    Cancelled,
    ClipsResult,
    JobCreated,
    JobList,
    JobResult,
    JobState,
    JobStatus,
    SafeJSON,
    ScheduleBody,
    Scheduled,
    errors,
)

router = APIRouter()

# The body is read by json_body, not by FastAPI, so the document names the real schema itself.
JOB_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/JobSpec"}}}}}


@router.post("/v1/jobs", status_code=201, response_model=JobCreated, tags=["jobs"], summary="Submit a job",
             openapi_extra=JOB_BODY, responses=errors(400, 401, 402, 409, 413, 415, 422, 429))
async def submit_job(request: Request, acct: Account = Depends(account),
                     srv: Services = Depends(services)) -> JSONResponse:
    raw, body = await json_body(request)
    if body is None:
        raise Refused(422, "invalid_request", "send the job as a JSON body")

    async def produce() -> Answer:
        job_id = accounts.new_id("job")
        known = await run_in_threadpool(templates.bodies, srv.engine, acct.id)
        fields = await srv.resolvers.resolve(acct.id, body, name=job_id, root=str(srv.settings.account_root(acct.id)),
                                             templates=known)
        return 201, await run_in_threadpool(jobs.create, srv.engine, srv.settings, acct.id, job_id, body, fields)

    answer = await idempotent(request, acct, raw, produce)
    srv.workers.notify()
    return answer


@router.get("/v1/jobs", response_model=JobList, tags=["jobs"], summary="List jobs",
            responses=errors(401, 422, 429))
def list_jobs(request: Request, acct: Account = Depends(account), srv: Services = Depends(services),
              limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=10**9),
              status: JobState | None = Query(None),
              parentId: str | None = Query(None, max_length=60, description=(  # noqa: N803 - the API's name
                  "afx: only the clip jobs of this job (a job with `clips`), in rank order"))) -> dict[str, Any]:
    return jobs.list_jobs(srv.engine, acct.id, base(request), limit=limit, offset=offset, status=status,
                          parent_id=parentId)


@router.get("/v1/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], summary="Get job status",
            responses=errors(401, 404, 429))
def get_job(job_id: str, request: Request, acct: Account = Depends(account),
            srv: Services = Depends(services)) -> dict[str, Any]:
    row, kids = jobs.get_rows(srv.engine, acct.id, job_id)
    return jobs.status_view(row, base(request), kids)


@router.get("/v1/jobs/{job_id}/result", response_model=JobResult | ClipsResult, tags=["jobs"],
            summary="Get full job result",
            description="A job's video, thumbnail, publish copy and publish results; for a job with `clips` "
                        "(afx), its clips instead (ClipsResult). 202 with the job's status until it is complete.",
            responses={202: {"model": JobStatus, "description": "Not complete yet"}, **errors(401, 404, 429)})
def get_result(job_id: str, request: Request, acct: Account = Depends(account),
               srv: Services = Depends(services)) -> Any:
    row, kids = jobs.get_rows(srv.engine, acct.id, job_id)
    result = jobs.result_view(row, base(request), kids)
    if result is None:
        return SafeJSON(jobs.status_view(row, base(request), kids), status_code=202)
    if row["clip_count"] is not None:
        return SafeJSON(result)  # (its own shape: not validated as a video's result)
    return result


@router.delete("/v1/jobs/{job_id}", response_model=Cancelled, tags=["jobs"], summary="Cancel a job",
               responses=errors(401, 404, 409, 429))
def cancel_job(job_id: str, acct: Account = Depends(account), srv: Services = Depends(services)) -> dict[str, Any]:
    answer = jobs.cancel(srv.engine, acct.id, job_id)
    for stopped in jobs.cancelled_ids(answer):
        srv.workers.cancel(stopped)
    return answer


@router.post("/v1/jobs/{job_id}/approve-publish", response_model=Approved, tags=["jobs"],
             summary="Approve staged job", responses=errors(401, 404, 409, 429))
async def approve(job_id: str, request: Request, acct: Account = Depends(account),
                  srv: Services = Depends(services)) -> JSONResponse:
    raw = await small_body(request)
    answer = await idempotent(request, acct, raw, in_thread(
        lambda: (200, jobs.approve(srv.engine, srv.settings, acct.id, job_id))))
    srv.workers.notify()
    return answer


@router.patch("/v1/jobs/{job_id}/schedule", response_model=Scheduled, tags=["scheduling"],
              summary="Schedule a job", responses=errors(401, 404, 409, 413, 415, 422, 429),
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": ScheduleBody.model_json_schema()}}}})
async def schedule(job_id: str, request: Request, acct: Account = Depends(account),
                   srv: Services = Depends(services)) -> dict[str, Any]:
    _, body = await json_body(request)
    at = _scheduled_at(body)
    answer = await run_in_threadpool(jobs.schedule, srv.engine, srv.settings, acct.id, job_id, at)
    srv.workers.notify()
    return answer


def _scheduled_at(body: Any) -> str | None:
    """The UTC time of a schedule body `{"scheduledAt": <RFC 3339 or null>}`; SpecError (422) otherwise."""
    if not isinstance(body, dict) or "scheduledAt" not in body:
        raise SpecError([body_field("scheduledAt", "required: an RFC 3339 time, or null to unschedule")])
    unknown = sorted(set(body) - {"scheduledAt"})
    if unknown:
        raise SpecError([body_field(k[:60], "unknown field") for k in unknown[:10]])
    value = body["scheduledAt"]
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError([body_field("scheduledAt", "must be a string (RFC 3339) or null")])
    try:
        return times.rfc3339(value)
    except times.BadTime as exc:
        raise SpecError([body_field("scheduledAt", str(exc))]) from None
