"""The server's periodic work besides recovery, the same in both queue modes: requeue built
jobs whose publish has become due (approved, requested, or scheduled and the time has come;
the publish stage and its ledger make a rerun safe), and sweep what dead requests left."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from afx import procs
from afx.server import db
from afx.server.jobs import requeue_publish
from afx.server.settings import Settings

log = logging.getLogger("afx.server")


def due(engine: Engine, settings: Settings) -> int:
    """Requeue built jobs whose publish is due now. Returns how many."""
    with db.read(engine) as conn:
        rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.fields, db.jobs.c.result,
                                   db.jobs.c.error)
                            # (a job with clips publishes nothing: its clip jobs do)
                            .where(db.jobs.c.status == "complete", db.jobs.c.clip_count.is_(None))).all()
    services: dict[str, Any] = {}  # account -> its PublishService (the ledger read once a tick)
    now = time.time()
    count = 0
    for row in rows:
        try:
            count += _due_one(engine, settings, row, services, now)
        except Exception:  # noqa: BLE001 - one bad job must not stop every other publish
            log.exception("job %s: checking its publish time failed", row.id)
    return count


def _due_one(engine: Engine, settings: Settings, row: Any, services: dict[str, Any], now: float) -> int:
    from afx.publish import policy
    from afx.publish.service import PublishService
    from afx.spec.api import job_from_fields

    result = json.loads(row.result) if row.result else {}
    states = [r.get("status") for r in result.get("publishResults") or []]
    if not policy.WAITING.intersection(states):
        return 0  # cheap first: most built jobs are published, and reading the job is not free
    root = settings.account_root(row.account_id)
    if row.account_id not in services:
        services[row.account_id] = PublishService.for_repo(root, settings.account_config(row.account_id))
    job = job_from_fields(json.loads(row.fields), name=row.id, root=root)
    due = policy.due(job, services[row.account_id].controls(row.id), states, now, retry_failed=False)
    return int(due and requeue_publish(engine, row.id))


def sweep(engine: Engine, settings: Settings) -> None:
    """Leftovers of requests that died with a server: in-flight Idempotency-Keys and the
    partial files of uploads cut off (an hour old, so no live request is touched); and
    Idempotency-Keys whose 24 hours are over."""
    from afx.server import idempotency

    idempotency.expire(engine, older_than=3600, dead=procs.gone_here)
    idempotency.prune(engine)
    cutoff = time.time() - 3600
    for part in settings.uploads_dir.glob(".part-*"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except FileNotFoundError:
            pass


def clean_store(settings: Settings) -> None:
    """Work folders of processes gone (on this machine; another's are left alone)."""
    from afx.engine.store import Store

    store = Store(settings.cache_dir)
    try:
        store.clean_tmp()
    finally:
        store.close()
