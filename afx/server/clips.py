"""Jobs with clips on the server (issue 14): a POST with `clips` is a parent and its clip jobs.

- **Submission** (afx.server.jobs.create): the parent's row and `count` clip rows, ids
  `<parentId>-01`... in rank order, in the one transaction that debits them. Each clip is
  charged as a single clip of its format (short 1, long 2), by a debit of its own in the
  ledger; the parent itself costs nothing. A clip row is `queued` with `waiting_for` set to
  its parent: no worker claims it until its fields are known.
- **The parent's run** (ingest, analyze, moments, clips) ends with the clip jobs it became
  (JobReport.children). `settle` fills each clip row with its job's fields and its cut and
  makes it claimable (on PostgreSQL: defers it, afx.server.queue); the rows the source had
  no clip for end `cancelled`, refunded. It runs in the transaction that completes the
  parent, only if that finds the parent still running, so a parent settles once however
  often it is run (a restart mid-parent runs it again).
- A parent that **fails** (for good: a crash is retried first) fails its waiting clips,
  each refunded: none of them was made.
- **Cancel** (DELETE of the parent): its waiting, queued and running clips are cancelled;
  those that never started are refunded (as a job cancelled on its own is).

Refunds go through accounts.refund: at most one per clip job, by the ledger's constraint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.engine import Connection

from afx import times
from afx.server import accounts, db, queue

log = logging.getLogger("afx.server")
CUT = ("source", "start", "end", "seconds")  # what a clip's view shows of its cut
StatusOf = Callable[[RowMapping], str]  # a row's status as the API shows it (afx.server.jobs.public_status)


def is_parent(fields: Mapping[str, Any]) -> bool:
    """A job that fans out into clip jobs (afx.stages.clips.has_clips, on stored fields)."""
    return fields.get("clips") is not None and fields.get("entry", "fetch") in ("fetch", "upload")


def count(fields: Mapping[str, Any]) -> int:
    return int((fields.get("clips") or {}).get("count", 1))


def clip_cost(fields: Mapping[str, Any]) -> int:
    """A clip is charged as a single clip of its format: short 1, long 2."""
    return 2 if fields.get("format") == "long" else 1


def clip_id(parent_id: str, rank: int) -> str:
    from afx.stages.clips import clip_name

    return clip_name(parent_id, rank)


def preview(fields: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A waiting clip's fields until its own are known: its parent's, without `clips`."""
    out = {k: v for k, v in fields.items() if k != "clips"}
    out["name"] = name
    return out


def insert_clips(conn: Connection, account_id: str, parent_id: str, body: Any, fields: Mapping[str, Any],
                 now: float) -> list[dict[str, Any]]:
    """The parent's clip rows, each debited its cost, in the caller's transaction (which has
    checked the balance covers them all). Returns the 201 answer's `clips`."""
    cost = clip_cost(fields)
    made = []
    for rank in range(1, count(fields) + 1):
        cid = clip_id(parent_id, rank)
        if not accounts.debit(conn, account_id, cid, cost):
            raise RuntimeError(f"debiting clip {cid} failed after the balance was checked")
        conn.execute(insert(db.jobs).values(
            id=cid, account_id=account_id, status="queued", run_kind="build", body=json.dumps(body, sort_keys=True),
            fields=json.dumps(preview(fields, cid), sort_keys=True), upload_id=fields.get("fileId"),
            credit_cost=cost, staging=bool(fields.get("staging")), scheduled_at=fields.get("scheduledAt"),
            created=now, updated=now, attempts=0, parent_id=parent_id, clip_rank=rank, waiting_for=parent_id))
        made.append({"jobId": cid, "rank": rank, "status": "queued"})
    return made


def document(root: Path, parent_id: str, children: Sequence[Any]) -> dict[str, Any]:
    """The parent's result: out/<parent>/clips.json as its clips stage wrote it (every
    candidate, its score and why it was or was not taken), or, without it, the clips its
    jobs were cut to."""
    try:
        doc = json.loads((root / "out" / parent_id / "clips.json").read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("clips"), list):
            return doc
    except (OSError, ValueError):
        pass
    clips = []
    for rank, child in enumerate(children, start=1):
        segment = dict(((child.get("render") or {}).get("segments") or [{}])[0])
        start, end = segment.get("start"), segment.get("end")
        seconds = round(end - start, 3) if isinstance(start, (int, float)) and isinstance(end, (int, float)) else None
        clips.append({"name": child.name, "rank": rank, "source": segment.get("source", 0), "start": start,
                      "end": end, "seconds": seconds})
    return {"job": parent_id, "clips": clips, "candidates": []}


def settle(conn: Connection, parent: RowMapping, children: Sequence[Any], doc: Mapping[str, Any],
           now: float) -> dict[str, int]:
    """The parent's run ended with `children` (its clip jobs, in rank order): in the
    caller's transaction, fill each waiting clip row with its job and make it claimable;
    cancel and refund the rows the source had no clip for. Returns how many of each."""
    parent_id, account_id = parent["id"], parent["account_id"]
    cuts = {c.get("name"): c for c in doc.get("clips") or [] if isinstance(c, dict)}
    rows = {r.id: r for r in conn.execute(select(db.jobs.c.id, db.jobs.c.clip_rank).where(
        db.jobs.c.parent_id == parent_id))}
    filled = 0
    for child in children:
        if child.name not in rows:
            log.warning("job %s: its clip %s has no job of its own (count %s): dropped", parent_id, child.name,
                        parent["clip_count"])
            continue
        fields = child.to_dict()
        cut = {k: cuts.get(child.name, {}).get(k) for k in (*CUT, "score")}
        done = conn.execute(update(db.jobs).where(
            db.jobs.c.id == child.name, db.jobs.c.status == "queued", db.jobs.c.waiting_for == parent_id).values(
            fields=json.dumps(fields, sort_keys=True), upload_id=fields.get("fileId"), clip=json.dumps(cut),
            waiting_for=None, updated=now))
        if done.rowcount == 1:
            queue.enqueue(conn, child.name)  # claimable now: in the transaction that settles it
        filled += done.rowcount  # 0: cancelled meanwhile (and refunded then)
    made = {c.name for c in children}
    surplus = [i for i in rows if i not in made]
    why = (f"not made: the source gave {len(made)} of the {parent['clip_count']} clips asked for "
           f"(see GET /v1/jobs/{parent_id}/result)")
    cancelled = _end_waiting(conn, account_id, parent_id, surplus, "cancelled", why, "clip not made", now)
    return {"filled": filled, "cancelled": cancelled}


def fail_waiting(conn: Connection, account_id: str, parent_id: str, error: str | None, now: float) -> int:
    """The parent failed: its waiting clips fail with it, each refunded. Returns how many."""
    why = f"the job {parent_id} this clip was to be cut from failed: {error or 'failed'}"
    return _end_waiting(conn, account_id, parent_id, None, "failed", why, "its parent failed", now)


def _end_waiting(conn: Connection, account_id: str, parent_id: str, ids: Iterable[str] | None, status: str,
                 why: str, reason: str, now: float) -> int:
    query = select(db.jobs.c.id).where(db.jobs.c.parent_id == parent_id, db.jobs.c.status == "queued",
                                       db.jobs.c.waiting_for == parent_id).order_by(db.jobs.c.clip_rank)
    wanted = None if ids is None else set(ids)
    ended = 0
    for (cid,) in conn.execute(query).all():
        if wanted is not None and cid not in wanted:
            continue
        done = conn.execute(update(db.jobs).where(db.jobs.c.id == cid, db.jobs.c.status == "queued").values(
            status=status, error=why[:2000], error_kind="server" if status == "failed" else None,
            waiting_for=None, updated=now, finished=now))
        if done.rowcount == 1:
            accounts.refund(conn, account_id, cid, reason)
            ended += 1
    return ended


def cancel_clips(conn: Connection, account_id: str, parent_id: str, now: float) -> list[dict[str, Any]]:
    """DELETE of the parent: its waiting, queued and running clips cancelled, in the caller's
    transaction; those that never started refunded. Returns one entry per clip cancelled."""
    rows = conn.execute(select(db.jobs.c.id, db.jobs.c.status, db.jobs.c.started, db.jobs.c.run_kind,
                               db.jobs.c.queue_id).where(
        db.jobs.c.parent_id == parent_id, db.jobs.c.status.in_(("queued", "running")),
        db.jobs.c.run_kind == "build").order_by(db.jobs.c.clip_rank)).all()
    out = []
    for row in rows:
        done = conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == row.status).values(
            status="cancelled", waiting_for=None, updated=now, finished=now,
            error=f"cancelled by request (with its job {parent_id})"))
        if done.rowcount != 1:
            continue
        queue.abort(conn, row.queue_id)
        never_ran = row.status == "queued" and row.started is None
        refunded = accounts.refund(conn, account_id, row.id, "cancelled before it ran") if never_ran else False
        out.append({"jobId": row.id, "status": "cancelled", "refunded": refunded, "was": row.status})
    return out


def rows_of(conn: Connection, parent_ids: Sequence[str]) -> dict[str, list[RowMapping]]:
    """The clip rows of these parents, in rank order, by parent."""
    out: dict[str, list[RowMapping]] = {p: [] for p in parent_ids}
    if not parent_ids:
        return out
    for row in conn.execute(select(db.jobs.c.id, db.jobs.c.parent_id, db.jobs.c.clip_rank, db.jobs.c.status,
                                   db.jobs.c.clip, db.jobs.c.run_kind).where(
            db.jobs.c.parent_id.in_(list(parent_ids))).order_by(db.jobs.c.clip_rank)).mappings():
        out[row["parent_id"]].append(row)
    return out


def _cut(row: RowMapping) -> dict[str, Any]:
    cut = json.loads(row["clip"]) if row.get("clip") else {}
    return {k: cut.get(k) for k in CUT}


def entry(row: RowMapping, status_of: StatusOf) -> dict[str, Any]:
    """A clip as its parent's view lists it: id, rank, status, and its cut once known."""
    return {"jobId": row["id"], "rank": row["clip_rank"], "status": status_of(row), **_cut(row)}


def parent_fields(row: RowMapping, kids: Sequence[RowMapping], status_of: StatusOf) -> dict[str, Any]:
    return {"clipCount": row["clip_count"], "clips": [entry(k, status_of) for k in kids]}


def clip_fields(row: RowMapping) -> dict[str, Any]:
    out: dict[str, Any] = {"parentId": row["parent_id"], "rank": row["clip_rank"], **_cut(row)}
    if row["waiting_for"]:
        out["waitingFor"] = row["waiting_for"]
    return out


def result_view(row: RowMapping, kids: Sequence[RowMapping], base: str, status_of: StatusOf
                ) -> dict[str, Any] | None:
    """GET /jobs/:id/result of a parent: its clips.json (every clip: name, rank, source, start,
    end, seconds, score, signals, why; every candidate), each clip with its jobId, status and
    result URL; None (202) until the parent's clips stage is done."""
    if row["status"] != "complete" or not row["result"]:
        return None
    doc = json.loads(row["result"])
    status = {k["id"]: status_of(k) for k in kids}
    for clip in doc.get("clips") or []:
        cid = clip.get("name")
        clip["jobId"] = cid
        clip["status"] = status.get(cid)
        clip["resultUrl"] = f"{base}/v1/jobs/{cid}/result"
    job_id = row["id"]
    return {"jobId": job_id, "status": "complete", "completedAt": times.iso(row["finished"]), **doc,
            "afx": {"files": {"clips.json": f"{base}/v1/jobs/{job_id}/files/clips.json"}}}
