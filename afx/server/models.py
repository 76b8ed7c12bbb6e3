"""The documented shapes of the API's answers (pydantic, for /openapi.json) and its JSON encoder.

The models only document: routes return plain dicts, which FastAPI checks against the
route's `response_model`. Request bodies of jobs and templates are documented by
afx.server.openapi from the real JSON schemas, not by models here.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "complete", "published", "failed", "cancelled"]


class SafeJSON(JSONResponse):
    """JSON with non-ASCII escaped: any str (even a lone surrogate) encodes; never a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorAnswer(BaseModel):
    error: ErrorBody


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: these statuses answer with the one error shape."""
    return {code: {"model": ErrorAnswer} for code in codes}


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
