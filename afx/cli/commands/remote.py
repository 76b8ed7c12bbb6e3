"""afx remote: look at and steer jobs on an AuraFlux-compatible API (AFX_API_URL, AFX_API_KEY).

    afx remote jobs [--status S]         GET /jobs
    afx remote show JOB                  GET /jobs/:id
    afx remote cancel JOB                DELETE /jobs/:id
    afx remote approve JOB               POST /jobs/:id/approve-publish
    afx remote schedule JOB --at T       PATCH /jobs/:id/schedule (--clear: unschedule)
    afx remote account                   GET /account

JOB is a remote id (job_...) or the name of a local job that `afx push` sent to this API
(afx.lock maps it). --json prints the API's answer as it came.
"""

from __future__ import annotations

from typing import Any

from afx import times
from afx.cli.env import Environment
from afx.errors import ExitStatus, UsageError
from afx.remote import records
from afx.remote.api import open_client


def _label(job_id_: str, name: str) -> str:
    return f"{job_id_} ({name})" if name else job_id_


def jobs(env: Environment, *, api_url: str | None, status: str | None, limit: int, offset: int) -> int:
    with open_client(env.environ, api_url) as client:
        answer = client.list_jobs(limit=limit, offset=offset, status=status)
        names = records.names_by_id(client.api)
    if env.json:
        env.emit_json(answer)
        return int(ExitStatus.OK)
    rows = answer.get("jobs") or []
    for row in rows:
        status_ = str(row.get("status"))
        state = _status(env, status_) + " " * max(0, 10 - len(status_))
        name = names.get(str(row.get("jobId")), "")
        topic = str(row.get("topic") or "")
        topic = topic if len(topic) <= 40 else topic[:39] + "…"
        env.out(f"{row.get('jobId', ''):<18} {state} {row.get('entry') or '':<8} {row.get('createdAt') or '':<21} "
                f"{name:<24} {topic}".rstrip())
    total = answer.get("total")
    shown = f"{len(rows)} of {total}" if isinstance(total, int) else str(len(rows))
    env.info(f"{shown} job{'s' * ((total if isinstance(total, int) else len(rows)) != 1)} on {client.api}"
             + (f" ({status})" if status else ""))
    return int(ExitStatus.OK)


def show(env: Environment, job: str, *, api_url: str | None) -> int:
    with open_client(env.environ, api_url) as client:
        remote_id, name = records.job_id(client.api, job)
        view = client.get_job(remote_id)
    if env.json:
        env.emit_json(view)
        return int(ExitStatus.OK)
    rows: list[tuple[str, Any]] = [("job", _label(str(view.get("jobId", remote_id)), name)),
                                   ("status", _status(env, str(view.get("status"))))]
    if view.get("publishing"):
        rows.append(("publishing", str(view["publishing"])))
    if view.get("stage") and "running" in (view.get("status"), view.get("publishing")):
        pct = view.get("progress")
        rows.append(("stage", f"{view['stage']}" + (f" {float(pct) * 100:.0f}%" if isinstance(pct, (int, float))
                                                    else "")))
    for key in ("entry", "format", "topic", "platforms", "publishMode", "staging", "scheduledAt", "score",
                "creditCost", "createdAt", "updatedAt", "outputUrl", "error"):
        value = view.get(key)
        if value in (None, "", [], False) and key != "platforms":
            continue
        rows.append((key, ", ".join(map(str, value)) if isinstance(value, list) else value))
    for result in view.get("publishResults") or []:
        where = result.get("url") or result.get("remoteId") or result.get("error") or ""
        rows.append((f"publish {result.get('platform')}", f"{result.get('status')}{'  ' + where if where else ''}"))
    rows += _clip_rows(view)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        env.out(f"{key:<{width}}  {value}")
    return int(ExitStatus.OK)


def _clip_rows(view: dict[str, Any]) -> list[tuple[str, Any]]:
    """afx serve's clips: a clip job's parent and cut, a job with clips' clip jobs."""
    def cut(entry: dict[str, Any]) -> str:
        start, end = entry.get("start"), entry.get("end")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)):
            return f"{start:g}-{end:g} s"
        return "cut not known yet"

    rows: list[tuple[str, Any]] = []
    if view.get("parentId"):
        rows.append(("clip of", f"{view['parentId']} (rank {view.get('rank')})"))
        rows.append(("cut", cut(view) if not view.get("waitingFor") else "waiting for its parent's clips stage"))
    for clip in view.get("clips") or []:
        if isinstance(clip, dict):
            rows.append((f"clip {clip.get('rank')}", f"{clip.get('jobId')}  {clip.get('status')}  {cut(clip)}"))
    return rows


def cancel(env: Environment, job: str, *, api_url: str | None) -> int:
    with open_client(env.environ, api_url) as client:
        remote_id, name = records.job_id(client.api, job)
        answer = client.cancel_job(remote_id)
    if env.json:
        env.emit_json(answer)
    else:
        refunded = " (credits refunded)" if answer.get("refunded") else ""
        clips = answer.get("clips") or []
        also = f", with {len(clips)} clip job{'s' * (len(clips) != 1)}" if clips else ""
        env.out(f"{_label(remote_id, name)}: {answer.get('status', 'cancelled')}{also}{refunded}")
    return int(ExitStatus.OK)


def approve(env: Environment, job: str, *, api_url: str | None) -> int:
    with open_client(env.environ, api_url) as client:
        remote_id, name = records.job_id(client.api, job)
        answer = client.approve_publish(remote_id)
    if env.json:
        env.emit_json(answer)
    else:
        env.out(f"{_label(remote_id, name)}: approved for publishing ({answer.get('status')})")
    return int(ExitStatus.OK)


def rfc3339(value: str) -> str:
    try:
        return times.rfc3339(value)
    except times.BadTime as exc:
        raise UsageError(f"--at {exc}") from None


def schedule(env: Environment, job: str, *, api_url: str | None, at: str | None, clear: bool) -> int:
    if bool(at) == bool(clear):
        raise UsageError("give --at TIME or --clear")
    value = rfc3339(at) if at else None
    with open_client(env.environ, api_url) as client:
        remote_id, name = records.job_id(client.api, job)
        answer = client.schedule(remote_id, value)
    if env.json:
        env.emit_json(answer)
    else:
        when = answer.get("scheduledAt", value)
        env.out(f"{_label(remote_id, name)}: " + (f"publishes at {when}" if when else "unscheduled"))
    return int(ExitStatus.OK)


def account(env: Environment, *, api_url: str | None) -> int:
    with open_client(env.environ, api_url) as client:
        info = client.account()
    if env.json:
        env.emit_json(info)
        return int(ExitStatus.OK)
    credits = info.get("credits") or {}
    env.out(f"account  {info.get('accountId')} ({info.get('planTier')}) on {client.api}")
    env.out(f"credits  {credits.get('balance')} left ({credits.get('included')} included, {credits.get('used')} used)")
    rate = info.get("rateLimit") or {}
    if rate:
        env.out(f"rate     {rate.get('remaining')} of {rate.get('limit')} requests left this minute")
    active = info.get("concurrency") or {}
    if active:
        env.out(f"jobs     {active.get('active')} of {active.get('limit')} queued or running")
    return int(ExitStatus.OK)


def _status(env: Environment, status: str) -> str:
    colour = {"complete": "green", "published": "green", "failed": "red", "cancelled": "red",
              "running": "yellow", "queued": "yellow"}.get(status)
    return env.style(status, fg=colour) if colour else status
