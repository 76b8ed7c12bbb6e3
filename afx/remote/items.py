"""One selected job on its way through a push, and the Idempotency-Keys it is sent with.

A job's key base (`request`) is `afx-<sha256(spec digest, POST /jobs body)>`: pushing the
same job twice makes one remote job, even without afx.lock. A job submitted again because
its remote job failed or was cancelled gets a base of its own (`retry_of`), so two pushes
retrying at once still make one job. A key whose first use was refused (402/429: nothing
was made, but the server stores the refusal) moves on to its next form, `<base>.1`, ...
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from afx.spec.job import Job, canonical_json

TERMINAL = frozenset({"complete", "published", "failed", "cancelled"})
DONE = frozenset({"complete", "published"})
OUT_DIR = "out"
RESULT = "result.json"


def state(view: dict[str, Any]) -> str:
    """A job's status as push follows it: a complete job whose publish run is waiting or
    under way (afx serve's `publishing`) is not finished yet."""
    return "publishing" if view.get("publishing") else str(view.get("status") or "queued")


@dataclass
class Item:
    job: Job
    body: dict[str, Any] | None = None
    request: str = ""  # the job's Idempotency-Key base: sha of spec digest + body
    key: str = ""  # the key it was submitted with
    chain: int = 0  # next form of the key to try
    retry_of: str = ""  # the failed or cancelled remote job this one replaces
    file_sha: str = ""
    file_remembered: bool = False  # its fileId came from afx.lock, not an upload just now
    job_id: str = ""
    status: str = "pending"  # pending | waiting | queued | running | complete | published | failed | cancelled | error
    new: bool = False  # submitted by this push
    submitted: str = ""
    error: str = ""
    files: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # what out/<job>/ got: name -> sha256
    delay: float = 0.0  # seconds to the next poll; the pusher starts it at its polling's start
    due: float = 0.0  # the clock's monotonic time of the next poll

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def active(self) -> bool:
        return bool(self.job_id) and self.status not in TERMINAL and self.status != "error"

    def set_body(self, body: dict[str, Any]) -> None:
        self.body = body
        self.request = "afx-" + hashlib.sha256(f"{self.job.digest}\n{canonical_json(body)}".encode()).hexdigest()

    def base_key(self) -> str:
        if not self.retry_of:
            return self.request
        return "afx-" + hashlib.sha256(f"{self.request}\nretry-of {self.retry_of}".encode()).hexdigest()

    def key_form(self, base: str) -> str:
        """The form of `base` to try now (see the module docstring)."""
        return base if self.chain == 0 else f"{base}.{self.chain}"

    def to_dict(self) -> dict[str, Any]:
        """The item as `afx push --json` lists it."""
        out: dict[str, Any] = {"job": self.name, "jobId": self.job_id or None, "status": self.status,
                               "new": self.new, "submittedAt": self.submitted or None, "spec": self.job.digest}
        if self.files:
            out["files"] = [f"{OUT_DIR}/{self.name}/{n}" for n in self.files]
        if self.error:
            out["error"] = self.error
        return out
