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


def afx(description: str) -> Any:
    """An afx field of an answer, left out of it when it does not apply (null)."""
    return Field(None, description=description, exclude_if=lambda value: value is None)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: these statuses answer with the one error shape."""
    return {code: {"model": ErrorAnswer} for code in codes}


class ClipRef(BaseModel):
    jobId: str = Field(examples=["job_abc123-01"])
    rank: int = Field(examples=[1])
    status: str = Field(examples=["queued"])


class JobCreated(BaseModel):
    jobId: str = Field(examples=["job_abc123"])
    status: str = Field(examples=["queued"])
    creditCost: int = Field(examples=[1], description="for a job with `clips`: count x a single clip of its "
                                                      "format (short 1, long 2)")
    balance: int = Field(examples=[46])
    clips: list[ClipRef] | None = afx(
        "afx: a job with `clips` — its clip jobs, made now, in rank order; each is `queued` "
                          "(with `waitingFor`) until the job's clips stage has found its cut")


class PublishCopy(BaseModel):
    title: str = ""
    description: str = ""
    hashtags: list[str] = []


class ClipEntry(BaseModel):
    jobId: str
    rank: int
    status: str
    source: int | None = Field(None, description="which of the job's sources the clip is cut from (0: url)")
    start: float | None = Field(None, description="seconds into the source; null until the clips stage has run")
    end: float | None = None
    seconds: float | None = None


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
    clipCount: int | None = afx("afx: a job with `clips` — how many clips were asked for")
    clips: list[ClipEntry] | None = afx(
        "afx: a job with `clips` — its clip jobs in rank order, with their cut once known")
    parentId: str | None = afx("afx: a clip job — the job with `clips` it is cut from")
    rank: int | None = afx("afx: a clip job — its rank among its parent's clips (1: best)")
    waitingFor: str | None = afx("afx: a clip job that is queued until its parent's clips "
                                                     "stage has found its cut (no worker takes it before)")
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


class ClipResult(BaseModel):
    jobId: str
    name: str
    rank: int
    source: int = 0
    start: float
    end: float
    seconds: float | None = None
    score: float | None = None
    status: str | None = None
    resultUrl: str | None = None
    model_config = {"extra": "allow"}


class ClipsResult(BaseModel):
    """afx: the result of a job with `clips` — its clips.json: the clips taken (each a clip job
    of its own), and every candidate moment with its score and why it was or was not taken."""

    jobId: str
    status: str
    completedAt: str | None = None
    count: int | None = None
    clips: list[ClipResult]
    candidates: list[dict[str, Any]] = []
    model_config = {"extra": "allow"}


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    limit: int
    offset: int


class ClipCancelled(BaseModel):
    jobId: str
    status: str
    refunded: bool


class Cancelled(BaseModel):
    jobId: str
    status: str
    refunded: bool
    clips: list[ClipCancelled] | None = afx(
        "afx: a job with `clips` — its clip jobs cancelled with it (those that never started "
                          "refunded); the job itself stays complete when its clips stage was done")


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
