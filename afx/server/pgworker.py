"""The job queue on PostgreSQL: procrastinate workers, in `afx worker` or inside `afx serve`.

- Jobs are deferred by afx.server.queue in the transactions that create, settle or requeue
  them; a procrastinate worker (`concurrency` = Settings.workers) claims them with
  `FOR UPDATE SKIP LOCKED`, woken by LISTEN/NOTIFY. Its task takes the afx row (queued ->
  running, one more attempt; nothing if it is not queued any more) and runs it through
  afx.server.running, as the SQLite queue does: a fresh executor worker per job.
- Cancel: the API's cancel requests procrastinate's abort in its transaction; the NOTIFY
  (or procrastinate's poll of abort requests, every second) reaches the worker running it,
  wherever it is, and the runner, which asks four times a second, kills its process group.
- Stop (SIGTERM): procrastinate aborts running jobs as shutting down; the runner kills them
  and they go back in the queue (the attempt not counted), deferred again.
- Stalled jobs: a worker beats its heartbeat every `heartbeat` seconds; a periodic check in
  every worker (`recover_stalled`) takes the jobs of workers silent for `stalled` seconds:
  the leftover process group killed if it is on this machine, the job requeued and deferred
  again, or after `attempts` runs failed and refunded once (its waiting clip jobs failed too).
- The same check loop requeues publishes that are due and sweeps (afx.server.periodic).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine, make_url

from afx import procs
from afx.server import db, periodic, queue
from afx.server.running import Runner, give_up, kill_leftover, requeue, stopped_why
from afx.server.settings import Settings

log = logging.getLogger("afx.server")
SWEEP_EVERY = 15.0  # seconds


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it (procrastinate's connector)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgWorkers:
    """Job workers on procrastinate, and the periodic checks; the same face as
    afx.server.worker.Workers (start, stop, notify, cancel). `jobs=False` (an API-only
    front): no jobs, no job checks; only the sweep of dead requests' leftovers."""

    def __init__(self, engine: Engine, settings: Settings, *, jobs: bool = True) -> None:
        import procrastinate

        self.engine, self.settings, self.jobs = engine, settings, jobs
        self.runner = Runner(engine, settings)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=libpq_url(settings.database_url)))
        self.app.task(name=queue.TASK, queue=queue.QUEUE, pass_context=True)(self._task)
        self._worker: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self.failed: BaseException | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        periodic.sweep(self.engine, self.settings)
        if self.jobs:
            self.recover_stalled()
            periodic.clean_store(self.settings)
            t = threading.Thread(target=self._work, name="afx-procrastinate", daemon=True)
            t.start()
            self.threads.append(t)
            self._ready.wait(timeout=30)
        t = threading.Thread(target=self._checks, name="afx-scheduler", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        """Stop claiming; running jobs are killed and put back in the queue."""
        self.stopping.set()
        worker, loop = self._worker, self._loop
        if worker is not None and loop is not None:
            loop.call_soon_threadsafe(worker.stop)
        for t in self.threads:
            t.join(timeout=15)

    def wait(self) -> None:
        """Until stopped (`afx worker`), or until the procrastinate worker ended by itself."""
        while not self.stopping.wait(0.5):
            if self.jobs and not any(t.is_alive() for t in self.threads if t.name == "afx-procrastinate"):
                break

    def notify(self) -> None:
        """(Workers are woken by NOTIFY from the transaction that defers.)"""

    def cancel(self, job_id: str) -> None:
        """The API cancelled a job: if it runs in this process, kill it now (elsewhere, the
        abort request of its transaction reaches the worker that runs it)."""
        self.runner.cancel(job_id)

    def _work(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - recorded; `wait` ends, `afx worker` exits non-zero
            self.failed = exc
            log.exception("the procrastinate worker stopped")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from procrastinate.worker import Worker

        s = self.settings
        self._loop = asyncio.get_running_loop()
        # A job is a blocking call in a thread: enough threads for `workers` of them at once.
        self._loop.set_default_executor(ThreadPoolExecutor(s.workers + 2, thread_name_prefix="afx-job"))
        async with self.app.open_async():
            self._worker = Worker(self.app, queues=[queue.QUEUE], concurrency=s.workers, name=f"afx@{procs.HOST}",
                                  install_signal_handlers=False, listen_notify=True, shutdown_graceful_timeout=0,
                                  fetch_job_polling_interval=5.0, abort_job_polling_interval=1.0,
                                  update_heartbeat_interval=s.heartbeat, stalled_worker_timeout=s.stalled)
            self._ready.set()
            if self.stopping.is_set():
                return
            await self._worker.run()

    # -- the task -------------------------------------------------------------------------
    def _task(self, context: Any, job_id: str) -> str:
        """One delivery of an afx job (procrastinate runs this in a thread)."""
        from procrastinate.job_context import AbortReason

        def interrupt(_job_id: str) -> str | None:
            reason = context.abort_reason()
            if reason is None:
                return None
            return "stop" if reason == AbortReason.SHUTDOWN else "cancel"

        row = self.runner.claim(job_id)
        if row is None:
            return "not queued"  # cancelled, or run by an earlier delivery
        done = self.runner.run(row, interrupt)
        if done == "stopped":
            with db.write(self.engine) as conn:
                requeue(conn, job_id, attempts=db.jobs.c.attempts - 1)  # not the job's fault
        return done

    # -- periodic checks ------------------------------------------------------------------
    def _checks(self) -> None:
        last_stalled = last_sweep = time.monotonic()
        while not self.stopping.wait(self.settings.tick):
            try:
                now = time.monotonic()
                if self.jobs:
                    periodic.due(self.engine, self.settings)
                if self.jobs and now - last_stalled > max(self.settings.stalled / 4, 0.5):
                    last_stalled = now
                    self.recover_stalled()
                if now - last_sweep > SWEEP_EVERY:
                    last_sweep = now
                    periodic.sweep(self.engine, self.settings)
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("scheduler tick failed")

    def recover_stalled(self) -> int:
        """Jobs whose worker stopped beating (a machine lost, a kill -9): requeued, or given
        up on after `attempts` runs. Returns how many were taken."""
        return recover_stalled(self.engine, self.settings, self.runner.mine())


_STALLED = text("""
    SELECT job.id, job.args->>'job_id' AS job_id
      FROM procrastinate_jobs job
      LEFT JOIN procrastinate_workers w ON w.id = job.worker_id
     WHERE job.status = 'doing' AND job.task_name = :task
       AND (job.worker_id IS NULL OR w.id IS NULL OR w.last_heartbeat < NOW() - make_interval(secs => :secs))
       FOR UPDATE OF job SKIP LOCKED""")


def recover_stalled(engine: Engine, settings: Settings, mine: Collection[str] = ()) -> int:
    """See PgWorkers.recover_stalled; each stalled job in one transaction with its afx row
    (two checkers never take the same one: SKIP LOCKED)."""
    count = 0
    with db.write(engine) as conn:
        stalled = conn.execute(_STALLED, {"task": queue.TASK, "secs": settings.stalled}).all()
        for queue_id, job_id in stalled:
            row = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.status, db.jobs.c.attempts,
                                      db.jobs.c.worker, db.jobs.c.run_kind, db.jobs.c.clip_count, db.jobs.c.waiting_for)
                               .where(db.jobs.c.id == job_id).with_for_update()).first()
            if row is not None and (row.id in mine or procs.alive_here(row.worker)):
                continue  # its worker's beat is late, but its job runs on: leave it
            queue.finish(conn, queue_id, "failed")
            count += 1
            if row is None:
                continue
            if row.status == "running":
                kill_leftover(row.worker)
                if row.attempts >= settings.attempts:
                    give_up(conn, row, stopped_why(row.run_kind, row.attempts), "failed: server stopped repeatedly")
                else:
                    requeue(conn, row.id)
                log.warning("job %s: its worker stopped beating: %s", row.id,
                            "requeued" if row.attempts < settings.attempts else "given up")
            elif row.status == "queued" and row.waiting_for is None:
                queue.enqueue(conn, row.id)  # delivered, never taken: deliver it again
    return count
