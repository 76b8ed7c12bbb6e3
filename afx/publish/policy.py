"""When a job publishes, and what a post is made of: pure functions, no files written.

Used by the publish service (the publish stage), `afx publish --due` and the server's
scheduler tick; each decides with the same `decide` and `due`.

Per job: `staging: true` and not approved -> staged; publishMode manual and not requested
(`afx publish JOB`, the API's approve-publish) -> manual; scheduled and the time (`afx
schedule` / PATCH .../schedule, else scheduledAt) not yet come -> scheduled; otherwise
publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from afx import times
from afx.digest import digest_of
from afx.spec.job import Job, thaw

# What a publish waits on, as result.json's publishResults and `afx jobs` say it.
WAITING = frozenset({"staged", "scheduled", "manual", "unscheduled"})
NO_CONTROLS: Mapping[str, Any] = {"approved_at": None, "requested_at": None, "schedule": None, "schedule_set": 0,
                                  "republish_at": None}


def ledger_token(c: Mapping[str, Any]) -> dict[str, Any]:
    """What of a job's ledger controls its publish stage's key includes."""
    # (--again sets requested_at too: that is what makes the stage run)
    return {"approved": bool(c["approved_at"]), "requested": c["requested_at"],
            "schedule": [int(c["schedule_set"] or 0), c["schedule"]]}


# The fields that say where and when a job goes out, not what it is.
PUBLISH_ONLY = frozenset({"name", "platforms", "publishMode", "staging", "scheduledAt"})


def schedule_of(job: Job, controls: Mapping[str, Any]) -> str | None:
    """The publish time in force: `afx schedule` (or the API's PATCH) wins over the spec."""
    at: str | None = controls.get("schedule") if controls.get("schedule_set") else job.get("scheduledAt")
    return at


def decide(job: Job, controls: Mapping[str, Any], now: float) -> tuple[str, str | None]:
    """('publish' | 'staged' | 'manual' | 'scheduled' | 'unscheduled', the schedule)."""
    at = schedule_of(job, controls)
    if job.get("staging") and not controls.get("approved_at"):
        return "staged", at
    mode = job.get("publishMode", "immediate")
    if controls.get("requested_at"):
        return "publish", at
    if mode == "manual":
        return "manual", at
    if mode == "scheduled" or (controls.get("schedule_set") and at):
        ts = times.timestamp(at)
        if ts is None:
            return "unscheduled", None
        return ("publish" if now >= ts else "scheduled"), at
    return "publish", at


def due(job: Job, controls: Mapping[str, Any], states: Iterable[str | None], now: float, *,
        retry_failed: bool = True) -> bool:
    """Whether a built job must be published now: its time has come (or it was asked for)
    and some platform of it is still to publish. `states` are its platforms' states (None:
    never tried) from the ledger or from its result's publishResults.

    retry_failed: a platform whose publish failed counts (`afx publish --due`, run by cron,
    tries again). afx serve's tick passes False: a refused publish waits for approve-publish
    rather than calling the platform again every tick."""
    status, _ = decide(job, controls, now)
    if status != "publish":
        return False
    pending = WAITING | {None} | ({"failed"} if retry_failed else set())
    return any(state != "published" and (state in pending or retry_failed) for state in states)


def content_digest(job: Job, file_digest: Callable[[Path], str]) -> str:
    """What a post is made from: the job's resolved fields but its name and publish settings,
    and the content of its local files. Equal for a renamed job and on every clone (a video's
    own bytes are not: the neural voice is not bit-for-bit repeatable)."""
    from afx.spec.resolve import PATH_FIELDS

    fields = {k: v for k, v in thaw(job.fields).items() if k not in PUBLISH_ONLY}
    for at in PATH_FIELDS:  # a path's text changes when a spec moves; the file's content counts
        parent: Any = fields
        for key in at[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(at[-1], None)
    files = {"/".join(map(str, at)): file_digest(path)
             for at, path in sorted(job.paths.items(), key=lambda kv: tuple(map(str, kv[0]))) if path.is_file()}
    return digest_of({"fields": fields, "files": files})


def older(row: Mapping[str, Any], content: str, video: str | None = None) -> bool:
    """Whether a published row is of another version of the job than `content`. A row from
    before afx kept `content` is older unless its video is this very file."""
    if row.get("content"):
        return bool(row["content"] != content)
    return not (video and row.get("video_digest") == video)


def asked_again(controls: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """`afx publish --again` came after this post."""
    again = controls.get("republish_at")
    if not again:
        return False
    return bool((row.get("published_at") or 0) < again)
