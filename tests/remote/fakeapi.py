"""An in-memory AuraFlux-compatible API on a ManualClock, for driving afx/remote/push.py.

Jobs run for `run_for` seconds of the clock from their submission, then are `complete`.
With `afx=False` it is an API that is not afx serve (no X-Afx-Version): it is sent only the
reference's fields, and a job with clips is made into its clips before it is sent. The
bodies it was sent are kept in `bodies` (by job id), the uploaded files in `files`.
With `max_active`, a POST beyond that many running jobs is refused as a full server
refuses it (429 too_many_active_jobs, no Retry-After), and the refusal is stored under
its Idempotency-Key. Every request is logged in `calls` with the clock's time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afx.client import ApiError
from afx.times import ManualClock


@dataclass
class Call:
    at: float  # the clock's monotonic time
    method: str
    what: str  # a job id, or an Idempotency-Key for POSTs


class FakeApi:
    api = "https://api.example.com/v1"

    def __init__(self, clock: ManualClock, *, run_for: float = 2.0, max_active: int | None = None,
                 fail: frozenset[str] = frozenset(), afx: bool = True) -> None:
        self.clock, self.run_for, self.max_active, self.fail, self.afx = clock, run_for, max_active, fail, afx
        self.bodies: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any] | ApiError] = {}  # Idempotency-Key -> what its first use got
        self.files: dict[str, str] = {}  # fileIds this server knows
        self.calls: list[Call] = []
        self.replayed = False

    # -- what the pusher calls ---------------------------------------------------------------
    def afx_version(self) -> str | None:
        return "0-test" if self.afx else None

    def upload(self, path: str | Path, idempotency_key: str | None = None) -> dict[str, Any]:
        self._log("UPLOAD", str(idempotency_key))
        file_id = f"file_{len(self.files) + 1}"
        self.files[file_id] = str(path)
        return {"fileId": file_id}

    def submit_job(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        key = str(idempotency_key)
        self._log("POST", key)
        stored = self.keys.get(key)
        self.replayed = stored is not None
        if isinstance(stored, ApiError):
            stored.replayed = True
            raise stored
        if stored is not None:
            return stored
        if body.get("fileId") and body["fileId"] not in self.files:
            raise ApiError("POST /v1/jobs: 422 invalid_request: fileId: unknown", status=422, code="invalid_request",
                           fields=[{"field": "fileId", "message": "unknown"}])
        if self.max_active is not None and len(self.active()) >= self.max_active:
            refused = ApiError("POST /v1/jobs: 429 too_many_active_jobs", status=429, code="too_many_active_jobs",
                               detail=f"{self.max_active} job(s) queued or running")
            self.keys[key] = refused
            raise refused
        job_id = f"job_{len(self.jobs) + 1}"
        self.jobs[job_id] = {"jobId": job_id, "topic": body.get("topic"), "started": self.clock.monotonic()}
        self.bodies[job_id] = dict(body)
        answer = {"jobId": job_id, "status": "queued", "creditCost": 1, "balance": 99 - len(self.jobs)}
        self.keys[key] = answer
        return answer

    def schedule(self, job_id: str, at: str | None) -> dict[str, Any]:
        self._log("PATCH", job_id)
        return {"jobId": job_id, "scheduledAt": at}

    def get_job(self, job_id: str) -> dict[str, Any]:
        self._log("GET", job_id)
        return self.view(job_id)

    def list_jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        self._log("LIST", "")
        return {"jobs": [self.view(j) for j in self.jobs], "total": len(self.jobs)}

    def get_result(self, job_id: str) -> tuple[int, dict[str, Any]]:
        self._log("RESULT", job_id)
        view = self.view(job_id)
        if view["status"] != "complete":
            return 202, {"status": view["status"]}
        return 200, {"jobId": job_id, "status": "complete", "videoUrl": f"https://cdn.example.net/{job_id}.mp4"}

    def download(self, url: str, dest: str | Path) -> Path:
        self._log("DOWNLOAD", url)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(f"VIDEO {url}".encode())
        return Path(dest)

    # -- the server's side -------------------------------------------------------------------
    def view(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        elapsed = self.clock.monotonic() - job["started"]
        if elapsed < self.run_for:
            return {"jobId": job_id, "status": "running", "stage": "render", "progress": elapsed / self.run_for}
        if job["topic"] in self.fail:
            return {"jobId": job_id, "status": "failed", "error": "render: failed on purpose"}
        return {"jobId": job_id, "status": "complete"}

    def active(self) -> list[str]:
        return [j for j in self.jobs if self.view(j)["status"] == "running"]

    def _log(self, method: str, what: str) -> None:
        self.calls.append(Call(self.clock.monotonic(), method, what))
