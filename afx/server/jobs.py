"""Jobs on the server: submission, the shapes GET returns, cancel, approve, schedule.

A submission is one transaction: the body is resolved first (the same resolver as the CLI,
outside the transaction), then, serialised per account, the active-job count and the
balance are checked, the credits debited, the job inserted and (on PostgreSQL) deferred to
the queue (afx.server.queue); any failure leaves nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, and_, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from afx import times
from afx.errors import shown
from afx.server import accounts, clips, db, queue, templates
from afx.server.settings import Settings

ACTIVE = ("queued", "running")
FINAL = ("complete", "published", "failed", "cancelled")
STATUSES = ("queued", "running", "complete", "published", "failed", "cancelled")


class Refused(Exception):
    """A request the API answers with an error status (402, 404, 409, 429...)."""

    def __init__(self, http_status: int, code: str, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = http_status, code, message, extra


def upload_path(engine: Engine, settings: Settings, account_id: str, file_id: Any) -> Path | None:
    """The stored file of one of this account's uploads (None: not this account's, or none)."""
    if not isinstance(file_id, str):
        return None
    with db.read(engine) as conn:
        stored = conn.execute(select(db.uploads.c.stored).where(
            db.uploads.c.id == file_id, db.uploads.c.account_id == account_id)).scalar()
    return settings.uploads_dir / stored if stored else None


def submit(engine: Engine, settings: Settings, account_id: str, body: Any) -> dict[str, Any]:
    """POST /jobs in one call, resolving here. Raises SpecError (422) or Refused; returns the
    201 answer. (afx serve resolves in its resolver processes, then calls `create`.)"""
    from afx.spec.api import resolve_body

    job_id = accounts.new_id("job")
    job = resolve_body(body, name=job_id, root=settings.account_root(account_id),
                       templates=templates.bodies(engine, account_id), uploads=None)
    return create(engine, settings, account_id, job_id, body, job.to_dict())


def create(engine: Engine, settings: Settings, account_id: str, job_id: str, body: Any,
           fields: Mapping[str, Any]) -> dict[str, Any]:
    """The job of a resolved body: its upload checked, credits debited, the row inserted, in
    one serialised transaction. Raises SpecError (an upload not the account's) or Refused.

    A job with `clips` is inserted with its clip jobs (afx.server.clips): it is charged
    `count` single clips of its format, each debited to its clip job."""
    from afx.spec.api import unknown_upload

    if fields.get("fileId") is not None and upload_path(engine, settings, account_id, fields["fileId"]) is None:
        raise unknown_upload(fields["fileId"])
    parent = clips.is_parent(fields)
    cost = clips.count(fields) * clips.clip_cost(fields) if parent else accounts.credit_cost(fields)
    now = time.time()
    made: list[dict[str, Any]] = []
    with db.write(engine) as conn:
        lock = select(db.accounts.c.balance).where(db.accounts.c.id == account_id)
        if db.is_postgres(conn):
            lock = lock.with_for_update()  # serialises this account's submissions
        balance = conn.execute(lock).scalar()
        active = _active(conn, account_id)
        if active >= settings.max_active:
            raise Refused(429, "too_many_active_jobs",
                          f"{active} jobs are queued or running (a job with clips and its clip jobs count as "
                          f"one); the limit is {settings.max_active}",
                          limit=settings.max_active, retryAfter=5)
        # (a job with clips is debited clip by clip below, once the balance is known to cover them)
        enough = (balance or 0) >= cost if parent else accounts.debit(conn, account_id, job_id, cost)
        if not enough:
            raise Refused(402, "insufficient_credits",
                          f"this job costs {cost} credit(s); the balance is {balance}",
                          creditCost=cost, balance=balance)
        conn.execute(insert(db.jobs).values(
            id=job_id, account_id=account_id, status="queued", run_kind="build",
            body=json.dumps(body, sort_keys=True), fields=json.dumps(fields, sort_keys=True),
            upload_id=fields.get("fileId"), credit_cost=cost, staging=bool(fields.get("staging")),
            scheduled_at=fields.get("scheduledAt"), created=now, updated=now, attempts=0,
            clip_count=clips.count(fields) if parent else None))
        if parent:
            made = clips.insert_clips(conn, account_id, job_id, body, fields, now)
        queue.enqueue(conn, job_id)  # (its clip jobs are queued when it settles them)
        balance = conn.execute(select(db.accounts.c.balance).where(db.accounts.c.id == account_id)).scalar()
    answer: dict[str, Any] = {"jobId": job_id, "status": "queued", "creditCost": cost, "balance": balance}
    if parent:
        answer["clips"] = made
    return answer


def get_row(engine: Engine, account_id: str, job_id: str) -> RowMapping:
    return get_rows(engine, account_id, job_id)[0]


def get_rows(engine: Engine, account_id: str, job_id: str) -> tuple[RowMapping, list[RowMapping]]:
    """A job's row, and its clip jobs' rows (in rank order) when it has clips."""
    with db.read(engine) as conn:
        row = conn.execute(select(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.account_id == account_id)
                           ).mappings().first()
        kids = clips.rows_of(conn, [job_id])[job_id] if row is not None and row["clip_count"] is not None else []
    if row is None:  # another account's job is as absent as a job that never existed
        raise Refused(404, "not_found", f"no job {shown(job_id)}")
    return row, kids


def file_url(base: str, job_id: str, name: str | None) -> str | None:
    return f"{base}/v1/jobs/{job_id}/files/{name}" if name else None


def submitted_and_active() -> tuple[Any, ...]:
    """Jobs that count against the active-submission cap: queued or running builds (a
    publish run is a complete job publishing, listed as complete, not a submission)."""
    return (db.jobs.c.status.in_(ACTIVE), db.jobs.c.run_kind == "build")


def _active(conn: Any, account_id: str) -> int:
    """Submissions counted against the cap: a job with clips and its clip jobs are one
    submission (its POST), active while any of them is queued or running."""
    submission = func.coalesce(db.jobs.c.parent_id, db.jobs.c.id)
    return int(conn.execute(select(func.count(func.distinct(submission))).where(
        db.jobs.c.account_id == account_id, *submitted_and_active())).scalar() or 0)


def active_count(engine: Engine, account_id: str) -> int:
    """The account's submissions counted against its cap now (GET /account)."""
    with db.read(engine) as conn:
        return _active(conn, account_id)


def publishing(row: RowMapping) -> str | None:
    """"queued" or "running" while a built job's publish run (after approve-publish or a
    schedule) waits or runs; the job itself stays complete, its result readable."""
    if row["run_kind"] == "publish" and row["status"] in ("queued", "running"):
        return str(row["status"])
    return None


def public_status(row: RowMapping) -> str:
    return "complete" if publishing(row) else str(row["status"])


def status_view(row: RowMapping, base: str, kids: Sequence[RowMapping] = ()) -> dict[str, Any]:
    """GET /jobs/:id: the reference's fields, then afx's (a job with clips: `kids`, its clip
    jobs' rows, listed; a clip job: its parent and cut)."""
    fields = json.loads(row["fields"])
    result = json.loads(row["result"]) if row["result"] else None
    out: dict[str, Any] = {"jobId": row["id"], "status": public_status(row)}
    if result and result.get("videoUrl"):
        out["outputUrl"] = file_url(base, row["id"], result["videoUrl"])
    if row["score"] is not None:
        out["score"] = row["score"]
    out["platforms"] = list(fields.get("platforms") or [])
    out["createdAt"] = times.iso(row["created"])
    out.update({"entry": fields.get("entry"), "format": fields.get("format"), "topic": fields.get("topic"),
                "publishMode": fields.get("publishMode"), "staging": bool(row["staging"]),
                "scheduledAt": row["scheduled_at"], "creditCost": row["credit_cost"],
                "updatedAt": times.iso(row["updated"])})
    if publishing(row):
        out["publishing"] = publishing(row)
    if row["status"] == "running":
        out["stage"], out["progress"] = row["stage"], row["progress"]
    if row["error"]:
        out["error"] = row["error"]
    if row["clip_count"] is not None:
        out.update(clips.parent_fields(row, kids, public_status))
    elif result:
        out["publishResults"] = result.get("publishResults", [])
    if row["parent_id"]:
        out.update(clips.clip_fields(row))
    return out


def result_view(row: RowMapping, base: str, kids: Sequence[RowMapping] = ()) -> dict[str, Any] | None:
    """GET /jobs/:id/result, or None while the job has no result (202). A job with clips:
    its clips (afx.server.clips.result_view)."""
    if row["clip_count"] is not None:
        return clips.result_view(row, kids, base, public_status)
    status = public_status(row)
    if not row["result"] or status not in ("complete", "published"):
        return None
    result = json.loads(row["result"])
    job_id = row["id"]
    result["jobId"] = job_id
    result["status"] = status
    result["videoUrl"] = file_url(base, job_id, result.get("videoUrl"))
    result["thumbnailUrl"] = file_url(base, job_id, result.get("thumbnailUrl"))
    extras = result.get("afx") or {}
    extras["files"] = {name: file_url(base, job_id, name) for name in extras.get("files", [])}
    result["afx"] = extras
    return result


def list_jobs(engine: Engine, account_id: str, base: str, *, limit: int, offset: int,
              status: str | None, parent_id: str | None = None) -> dict[str, Any]:
    """GET /jobs: newest first; with `parent_id`, that job's clip jobs, in rank order."""
    query = select(db.jobs).where(db.jobs.c.account_id == account_id)
    count = select(func.count()).select_from(db.jobs).where(db.jobs.c.account_id == account_id)
    if parent_id is not None:
        query, count = query.where(db.jobs.c.parent_id == parent_id), count.where(db.jobs.c.parent_id == parent_id)
    if status:  # as GET shows it: a publish run is a complete job, not a queued or running one
        c = db.jobs.c
        if status == "complete":
            match = or_(c.status == "complete", and_(c.run_kind == "publish", c.status.in_(("queued", "running"))))
        elif status in ("queued", "running"):
            match = and_(c.status == status, c.run_kind == "build")
        else:
            match = c.status == status
        query, count = query.where(match), count.where(match)
    order = ((db.jobs.c.clip_rank, db.jobs.c.id) if parent_id is not None
             else (db.jobs.c.created.desc(), db.jobs.c.id.desc()))
    with db.read(engine) as conn:
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).mappings().all()
        total = conn.execute(count).scalar()
        kids = clips.rows_of(conn, [r["id"] for r in rows if r["clip_count"] is not None])
    return {"jobs": [status_view(r, base, kids.get(r["id"], ())) for r in rows], "total": total, "limit": limit,
            "offset": offset}


def cancel(engine: Engine, account_id: str, job_id: str) -> dict[str, Any]:
    """DELETE /jobs/:id: queued or running only. A job cancelled before it ran is refunded.

    A job with clips: its clip jobs that are waiting, queued or running are cancelled with it
    (listed in `clips`; those that never started refunded), also once the job itself is
    complete (its clips stage done) while clips of it are still to be made."""
    with db.write(engine) as conn:
        row = conn.execute(select(db.jobs.c.status, db.jobs.c.started, db.jobs.c.run_kind, db.jobs.c.clip_count,
                                  db.jobs.c.queue_id)
                           .where(db.jobs.c.id == job_id, db.jobs.c.account_id == account_id)).first()
        if row is None:
            raise Refused(404, "not_found", f"no job {shown(job_id)}")
        now = time.time()
        kids = clips.cancel_clips(conn, account_id, job_id, now) if row.clip_count is not None else []
        if row.status not in ACTIVE and not kids:
            raise Refused(409, "not_cancellable", f"job {job_id} is {row.status}; only queued or running jobs "
                          "can be cancelled", status=row.status)
        if row.run_kind == "publish":  # built already: its publish is under way, not the job
            raise Refused(409, "not_cancellable", f"job {job_id} is complete; its publish is under way",
                          status="complete")
        refunded = False
        status = row.status
        if row.status in ACTIVE:
            conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(
                status="cancelled", updated=now, finished=now, error="cancelled by request"))
            queue.abort(conn, row.queue_id)  # a worker elsewhere running it kills it once this commits
            never_ran = row.status == "queued" and row.started is None and row.run_kind == "build"
            refunded = accounts.refund(conn, account_id, job_id, "cancelled before it ran") if never_ran else False
            status = "cancelled"
    answer: dict[str, Any] = {"jobId": job_id, "status": status, "refunded": refunded or any(k["refunded"]
                                                                                            for k in kids)}
    if row.clip_count is not None:
        answer["clips"] = [{k: v for k, v in kid.items() if k != "was"} for kid in kids]
    return answer


def cancelled_ids(answer: Mapping[str, Any]) -> list[str]:
    """The jobs a cancel answer stopped: the job, and the clip jobs cancelled with it."""
    return [str(answer["jobId"]), *(str(k["jobId"]) for k in answer.get("clips") or [])]


def approve(engine: Engine, settings: Settings, account_id: str, job_id: str) -> dict[str, Any]:
    """POST /jobs/:id/approve-publish: release a staged job to publish.

    Also the way to publish a `manual` job, and to retry a publish that failed (an expired
    token, say): the job's publish stage runs again; the ledger keeps it to once per platform.
    """
    from afx.publish.service import PublishService

    row = get_row(engine, account_id, job_id)
    fields = json.loads(row["fields"])
    if row["clip_count"] is not None:
        raise Refused(409, "not_approvable", f"job {job_id} has clips: it publishes nothing itself; approve "
                      f"its clip jobs ({clips.clip_id(job_id, 1)}, ...)", status=public_status(row))
    if row["status"] in ("failed", "cancelled", "published"):
        raise Refused(409, "not_approvable", f"job {job_id} is {row['status']}", status=row["status"])
    manual = fields.get("publishMode") == "manual"
    failed_publish = row["status"] == "complete" and bool(row["error"])
    if not (row["staging"] or manual or failed_publish):
        raise Refused(409, "not_staged", f"job {job_id} was not submitted with staging: true; it publishes "
                      f"{'at its scheduled time' if fields.get('publishMode') == 'scheduled' else 'by itself'}")
    service = PublishService.for_repo(settings.account_root(account_id), settings.account_config(account_id))
    # Approving an approved job again asks for its publish stage to run again (its key would
    # not change otherwise): a publish that ended "in progress" behind another run is looked at anew.
    again = bool(service.controls(job_id).get("approved_at"))
    service.approve([job_id], request=manual or failed_publish or again)
    requeue_publish(engine, job_id)
    return {"jobId": job_id, "status": public_status(get_row(engine, account_id, job_id)), "approved": True}


def schedule(engine: Engine, settings: Settings, account_id: str, job_id: str, at: str | None) -> dict[str, Any]:
    """PATCH /jobs/:id/schedule: set the publish time, or unschedule with null."""
    from afx.publish.service import PublishService

    row = get_row(engine, account_id, job_id)
    if row["clip_count"] is not None:
        raise Refused(409, "not_schedulable", f"job {job_id} has clips: it publishes nothing itself; schedule "
                      f"its clip jobs ({clips.clip_id(job_id, 1)}, ...)", status=public_status(row))
    if row["status"] in ("failed", "cancelled", "published"):
        raise Refused(409, "not_schedulable", f"job {job_id} is {row['status']}", status=row["status"])
    service = PublishService.for_repo(settings.account_root(account_id), settings.account_config(account_id))
    service.schedule([job_id], at)
    with db.write(engine) as conn:
        conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(scheduled_at=at, updated=time.time()))
    return {"jobId": job_id, "scheduledAt": at}


def requeue_publish(engine: Engine, job_id: str) -> bool:
    """Run a built job again for its publish stage (everything else comes from the cache)."""
    with db.write(engine) as conn:
        done = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "complete")
                            .values(status="queued", run_kind="publish", updated=time.time(), error=None,
                                    attempts=0))
        if done.rowcount == 1:
            queue.enqueue(conn, job_id)
    return done.rowcount == 1
