"""The job queue on SQLite (single machine): claim queued jobs, run each, recover lost ones.

- A claim is one conditional UPDATE (queued -> running, attempts + 1), so two workers (or
  two servers on one database) never run the same job.
- Running a claimed job (a fresh executor worker process, its progress, lease and cancel,
  its outcome) is afx.server.running's, shared with the PostgreSQL queue (afx.server.pgworker).
- A job whose child is gone (on this machine) or whose lease ran out (a server elsewhere
  died) is requeued, at start and by the scheduler tick; a live job of another server
  sharing the database is left alone. After `attempts` runs it is failed and refunded
  instead (a job that kills its server must not loop forever); a publish run goes back to
  `complete`.
- A scheduler tick requeues built jobs whose publish has become due (afx.server.periodic).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import RowMapping, select, update
from sqlalchemy.engine import Engine

from afx import procs
from afx.server import db, periodic
from afx.server.running import HOST, Runner, give_up, kill_leftover, outcome, stopped_why
from afx.server.settings import Settings

__all__ = ["LEASE", "Workers", "outcome"]
log = logging.getLogger("afx.server")

LEASE = 30.0  # seconds without a heartbeat after which a running job on another machine is presumed dead


class Workers:
    """`workers` job threads and the scheduler. `jobs=False` (an API-only front, with `afx
    worker` processes on this machine running the jobs): only the sweep of dead requests'
    leftovers."""

    def __init__(self, engine: Engine, settings: Settings, *, jobs: bool = True) -> None:
        self.engine, self.settings, self.jobs = engine, settings, jobs
        self.stopping = threading.Event()
        self.wake = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.runner = Runner(engine, settings, on_ready=self.notify)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.sweep()
        if not self.jobs:
            t = threading.Thread(target=self._sweeper, name="afx-sweeper", daemon=True)
            t.start()
            self.threads.append(t)
            return
        self.recover()
        periodic.clean_store(self.settings)
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._loop, name=f"afx-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)
        t = threading.Thread(target=self._scheduler, name="afx-scheduler", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        """Stop claiming; kill running children and put their jobs back in the queue."""
        self.stopping.set()
        self.notify()
        for job_id in self.runner.kill_all():
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                             .values(status="queued", attempts=db.jobs.c.attempts - 1, worker=None,
                                     updated=time.time()))
        for t in self.threads:
            t.join(timeout=5)

    def wait(self) -> None:
        """Until stopped (`afx worker`)."""
        while not self.stopping.wait(0.5):
            pass

    def notify(self) -> None:
        with self.wake:
            self.wake.notify_all()

    def cancel(self, job_id: str) -> None:
        """The API cancelled a job: if one of ours runs it, kill it now."""
        self.runner.cancel(job_id)

    def recover(self) -> int:
        """Requeue (or give up on) running jobs whose worker is gone. Returns how many."""
        now = time.time()
        count = 0
        mine = self.runner.mine()
        with db.write(self.engine) as conn:
            rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.attempts, db.jobs.c.worker,
                                       db.jobs.c.run_kind, db.jobs.c.updated, db.jobs.c.clip_count)
                                .where(db.jobs.c.status == "running")).all()
            for row in rows:
                if row.id in mine or procs.alive_here(row.worker):
                    continue  # ours, or another live server's on this machine
                on_this_host = (row.worker or "").partition(":")[0] == HOST
                if not on_this_host and now - (row.updated or 0) < LEASE:
                    continue  # a server elsewhere (or one that has just claimed it) may still run it
                kill_leftover(row.worker)
                count += 1
                if row.attempts >= self.settings.attempts:
                    give_up(conn, row, stopped_why(row.run_kind, row.attempts), "failed: server stopped repeatedly")
                else:
                    conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "running")
                                 .values(status="queued", worker=None, updated=now))
                log.warning("job %s was running when its server stopped: %s", row.id,
                            "requeued" if row.attempts < self.settings.attempts else "given up")
        return count

    def sweep(self) -> None:
        periodic.sweep(self.engine, self.settings)

    def due(self) -> int:
        return periodic.due(self.engine, self.settings)

    # -- claiming and running -------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                row = self.claim()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                log.exception("claiming a job failed")
                row = None
            if row is None:
                with self.wake:
                    self.wake.wait(timeout=0.5)
                continue
            self.runner.run(row, self._interrupt)

    def _interrupt(self, _job_id: str) -> str | None:
        return "stop" if self.stopping.is_set() else None  # (a cancel kills the child: Runner.cancel)

    def claim(self) -> RowMapping | None:
        with db.write(self.engine) as conn:
            # (a clip job waiting for its parent's clips stage is queued, but not to be claimed)
            job_id = conn.execute(select(db.jobs.c.id).where(db.jobs.c.status == "queued",
                                                             db.jobs.c.waiting_for.is_(None))
                                  .order_by(db.jobs.c.created, db.jobs.c.id).limit(1)).scalar()
            return None if job_id is None else self.runner.take(conn, job_id)

    # -- scheduler ------------------------------------------------------------------------
    def _scheduler(self) -> None:
        last_recover = time.monotonic()
        while not self.stopping.wait(self.settings.tick):
            try:
                if self.due():
                    self.notify()
                if time.monotonic() - last_recover > LEASE / 2:
                    last_recover = time.monotonic()
                    if self.recover():
                        self.notify()
                    self.sweep()
            except Exception:  # noqa: BLE001
                log.exception("scheduler tick failed")

    def _sweeper(self) -> None:
        while not self.stopping.wait(LEASE / 2):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001
                log.exception("sweep failed")

