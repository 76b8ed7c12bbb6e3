"""Running one claimed job, the same in both queue modes: afx.server.worker (SQLite: the jobs
table is the queue) and afx.server.pgworker (PostgreSQL: procrastinate delivers the job).

- Each job runs in a fresh worker process of afx.engine.executor, the same as `afx run`'s:
  its events keep the job's stage and progress current; cancel kills its process group (the
  worker and its ffmpeg); `outcome` maps its report to the API's status and refund.
- A running job has a lease: `updated` is renewed every few seconds, and a cancel made
  through another server shows up there. The caller's `interrupt` is asked twice a second
  too: "cancel" (procrastinate's abort of a job cancelled elsewhere) or "stop" (the worker is
  shutting down: the caller puts the job back in the queue).
- A child that dies without a report is retried (`requeue`: queued again, and on PostgreSQL
  deferred again in the same transaction) until `attempts` runs; then failed and refunded
  (`give_up`), as the lease recovery of either mode does with a job whose worker is gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.engine import Connection, Engine

from afx import procs
from afx.engine.runner import JobReport
from afx.server import accounts, clips, db, queue, storage
from afx.server.jobs import upload_path
from afx.server.settings import Settings

log = logging.getLogger("afx.server")
HOST = procs.HOST
HEARTBEAT = 5.0  # seconds between renewals of a running job's lease
Interrupt = Callable[[str], str | None]  # job id -> "cancel" | "stop" | None


def kill_leftover(worker: str | None) -> None:
    """Kill the process group a dead server's worker left, if it is still that process."""
    if not worker:
        return
    host, pid, started = procs.parse(worker)
    if host != HOST or pid is None or not procs.IDENTIFIES:
        return  # without /proc a pid cannot be told from a later process that got it
    # The child leads its own process group. Alive and the same process (same start time):
    # kill the group. Gone: its ffmpeg may live on in the group, and while any member does,
    # Linux does not hand the number to another process, so killing the group is safe.
    now = procs.start_time(pid)
    if (now and now == started) or not os.path.exists(f"/proc/{pid}"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def requeue(conn: Connection, job_id: str, *, held: tuple[Any, ...] = (), **values: Any) -> bool:
    """A running job back in the queue, in the caller's transaction (and, on PostgreSQL, a
    new procrastinate job for it in the same one). False: it was not running any more (or,
    with `held`, Runner._held's condition, not by that run)."""
    where = held or (db.jobs.c.id == job_id, db.jobs.c.status == "running")
    done = conn.execute(update(db.jobs).where(*where)
                        .values(status="queued", worker=None, updated=time.time(), **values))
    if done.rowcount != 1:
        return False
    queue.enqueue(conn, job_id)
    return True


def give_up(conn: Connection, row: Any, why: str, refund_reason: str) -> bool:
    """Fail a running job for good (its worker kept dying), in the caller's transaction:
    refunded once when it was a build, its waiting clip jobs failed too. `row` has id,
    account_id, run_kind and clip_count. False: it was not running any more."""
    now = time.time()
    values, refund = outcome(row.run_kind, JobReport(row.id, status="failed", error=why, error_kind="server",
                                                     crashed=True))
    done = conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "running")
                        .values(**values, worker=None, finished=now, updated=now))
    if done.rowcount != 1:
        return False
    if refund:
        accounts.refund(conn, row.account_id, row.id, refund_reason)
    if row.clip_count is not None:
        clips.fail_waiting(conn, row.account_id, row.id, why, now)
    return True


def stopped_why(run_kind: str, attempts: int) -> str:
    """A job given up on: its worker (or the machine under it) kept stopping during it."""
    if run_kind == "publish":
        return f"publish: the server stopped during it {attempts} times; approve or reschedule to try again"
    return f"the server stopped during this job {attempts} times"


class Runner:
    """Runs claimed jobs, each in its own executor worker; knows which run here."""

    def __init__(self, engine: Engine, settings: Settings, on_ready: Callable[[], None] = lambda: None) -> None:
        self.engine, self.settings = engine, settings
        self.on_ready = on_ready  # jobs became claimable (a requeue, a parent's clip jobs)
        self.children: dict[str, tuple[Any, Any]] = {}  # job id -> (its executor Workers, its Worker)
        self.cancelled: set[str] = set()
        self.starting: set[str] = set()  # claimed, child not started yet
        # job id -> the `worker` its row names while this run has it: every write of the run
        # is conditional on it, so a run whose job was taken back (stalled, retried elsewhere)
        # can neither renew its lease nor record its outcome over the run that has it now
        self.owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def mine(self) -> set[str]:
        with self._lock:
            return set(self.children) | self.starting

    def cancel(self, job_id: str) -> None:
        """The job was cancelled: if it runs here, kill it now."""
        with self._lock:
            self.cancelled.add(job_id)
            child = self.children.get(job_id)
        if child is not None:
            child[0].kill(child[1])

    def kill_all(self) -> list[str]:
        """Kill every job running here (the worker is stopping). Returns their ids."""
        with self._lock:
            running = dict(self.children)
        for pool, worker in running.values():
            pool.kill(worker)
        return list(running)

    def claim(self, job_id: str) -> RowMapping | None:
        """Take one queued job (not waiting for its parent) by id: queued -> running, one more
        attempt. None: it is not queued any more (cancelled, or run by another delivery)."""
        with db.write(self.engine) as conn:
            return self.take(conn, job_id)

    def take(self, conn: Connection, job_id: str) -> RowMapping | None:
        """`claim`, in the caller's transaction."""
        now = time.time()
        done = conn.execute(update(db.jobs).where(
            db.jobs.c.id == job_id, db.jobs.c.status == "queued", db.jobs.c.waiting_for.is_(None)).values(
            status="running", attempts=db.jobs.c.attempts + 1, started=now, updated=now, stage=None,
            progress=0.0, worker=procs.name()))  # this process, until its child takes over
        if done.rowcount != 1:
            return None
        with self._lock:
            self.starting.add(job_id)
            self.owners[job_id] = procs.name()
        return conn.execute(select(db.jobs).where(db.jobs.c.id == job_id)).mappings().one()

    def run(self, row: RowMapping, interrupt: Interrupt) -> str:
        """Run a claimed job in a worker process of its own (afx.engine.executor), keeping its
        stage, progress and lease current, until it reports, dies or is interrupted. Returns
        "done" (its outcome recorded), "cancelled" or "stopped" (the caller requeues it)."""
        try:
            return self._run(row, interrupt)
        except Exception:  # noqa: BLE001 - the job must end, whatever the worker did
            log.exception("job %s: the worker failed", row["id"])
            self.finish(row, JobReport(row["id"], status="failed", error="internal error in the worker",
                                       error_kind="server"))
            return "done"
        finally:
            with self._lock:
                self.starting.discard(row["id"])
                self.owners.pop(row["id"], None)

    def _run(self, row: RowMapping, interrupt: Interrupt) -> str:
        from afx.engine.executor import Setup, Workers
        from afx.spec.api import job_from_fields

        job_id, account_id = row["id"], row["account_id"]
        shared = storage.from_settings(self.settings)
        found = upload_path(self.engine, self.settings, account_id, row["upload_id"]) if row["upload_id"] else None
        if found is not None and shared is not None:  # received by a front elsewhere, perhaps
            found = storage.local_upload(self.engine, shared, account_id, row["upload_id"], found)
        root = self.settings.account_root(account_id)
        job = job_from_fields(json.loads(row["fields"]), name=job_id, root=root, upload=found)
        # publishEveryJob: each API job publishes what it was asked to (afx run, by contrast,
        # does not post a video again that a job since renamed already posted)
        setup = Setup(self.settings.pipeline, str(self.settings.cache_dir), str(root / "out"),
                      {**self.settings.account_config(account_id), "publishEveryJob": True},
                      cache=shared.cache_url if shared is not None else None)
        pool = Workers(setup, fresh=True)
        worker = pool.give(job)
        with self._lock:
            self.children[job_id] = (pool, worker)
            self.starting.discard(job_id)
        report, stopped = None, False
        try:
            # A cancel that came between the claim and now found no process to kill.
            why = interrupt(job_id)
            if why == "cancel" or job_id in self.cancelled or self._status(job_id) != "running":
                with self._lock:
                    self.cancelled.add(job_id)
            elif why != "stop":
                child = procs.name(worker.pid)
                with db.write(self.engine) as conn:
                    moved = conn.execute(update(db.jobs).where(*self._held(job_id)).values(worker=child)).rowcount
                with self._lock:
                    self.owners[job_id] = child
                if not moved:  # taken back between the claim and now
                    with self._lock:
                        self.cancelled.add(job_id)
                else:
                    report = self._follow(job_id, pool, worker, interrupt)
        finally:
            with self._lock:
                self.children.pop(job_id, None)
                cancelled = job_id in self.cancelled
                self.cancelled.discard(job_id)
            stopped = not cancelled and interrupt(job_id) == "stop"
            # Whatever became of the worker, its group goes: an ffmpeg it started may outlive a
            # worker killed with -9 (issue 11). The worker is not reaped before this, so its
            # pid, the group's id, cannot have gone to another process.
            pool.kill(worker)
            wait_group(worker.pid)
            pool.stop(grace=0.0)
        if cancelled:
            return "cancelled"  # the API has set the job's status already
        if stopped:
            return "stopped"
        if report is None or report.crashed:
            self.crashed(row, worker.proc.exitcode)
        else:
            self.finish(row, report)
        return "done"

    def _held(self, job_id: str, row: RowMapping | None = None) -> tuple[Any, ...]:
        """The condition of every write of a run: its job is running, and still by this run."""
        with self._lock:
            owner = self.owners.get(job_id) or (row["worker"] if row is not None else None)
        clause = (db.jobs.c.id == job_id, db.jobs.c.status == "running")
        return (*clause, db.jobs.c.worker == owner) if owner else clause

    def _status(self, job_id: str) -> str | None:
        with db.read(self.engine) as conn:
            return conn.execute(select(db.jobs.c.status).where(db.jobs.c.id == job_id)).scalar()

    def _follow(self, job_id: str, pool: Any, worker: Any, interrupt: Interrupt) -> Any:
        """The worker's events until its report; the job's stage and progress kept current
        (at most every 0.5 s), its lease renewed every few seconds. None: cancelled or
        stopped (interrupted, or cancelled through another server sharing the database)."""
        last_write = 0.0
        stage, fraction = None, 0.0
        beat = time.monotonic()
        while True:
            why = interrupt(job_id)
            if why is not None:
                if why == "cancel":
                    with self._lock:
                        self.cancelled.add(job_id)
                pool.kill(worker)
                return None
            if time.monotonic() - beat > HEARTBEAT:
                # Renew the lease; a cancel made through another server shows up here.
                beat = time.monotonic()
                with db.write(self.engine) as conn:
                    alive = conn.execute(update(db.jobs).where(*self._held(job_id))
                                         .values(updated=time.time())).rowcount
                if not alive:
                    with self._lock:
                        self.cancelled.add(job_id)
                    pool.kill(worker)
                    return None
            for kind, event in pool.messages(timeout=0.25):
                if kind == "report":
                    return event
                name = event.get("event")
                if name == "stage" and event.get("status") == "running":
                    stage, fraction = event.get("stage"), 0.0
                elif name == "progress":
                    stage, fraction = event.get("stage"), float(event.get("fraction") or 0.0)
                elif name == "stage" and event.get("status") == "failed":
                    stage = event.get("stage")
                now = time.monotonic()
                if name in ("stage", "progress") and now - last_write > 0.5:
                    last_write = now
                    with db.write(self.engine) as conn:
                        conn.execute(update(db.jobs).where(*self._held(job_id))
                                     .values(stage=stage, progress=round(fraction, 4), updated=time.time()))

    def crashed(self, row: RowMapping, code: int | None) -> None:
        why = f"the job's process ended without a result (exit status {code})"
        if row["attempts"] < self.settings.attempts and row["run_kind"] == "build":
            with db.write(self.engine) as conn:
                requeue(conn, row["id"], held=self._held(row["id"], row), error=why)
            self.on_ready()
            return
        self.finish(row, JobReport(row["id"], status="failed", error=why, error_kind="server", crashed=True))

    def finish(self, row: RowMapping, report: JobReport) -> None:
        """Record a job's outcome. A job with clips that completed settles its clip jobs (they
        become claimable, or cancelled and refunded); one that failed fails them, refunded:
        in the same transaction, and only if it was still running (so once)."""
        job_id, account_id = row["id"], row["account_id"]
        now = time.time()
        values, refund = outcome(row["run_kind"], report)
        parent = row["clip_count"] is not None and row["run_kind"] == "build"
        doc = None
        if parent and values["status"] in ("complete", "published"):
            doc = clips.document(self.settings.account_root(account_id), job_id, report.children)
            values.update(status="complete", result=json.dumps(doc), score=None)
        values.update(worker=None, updated=now, finished=now, stage=None, progress=None)
        shared = storage.from_settings(self.settings)
        if shared is not None and values.get("result"):
            # Its files before its row says it is done: a front elsewhere serves them from there.
            shared.push_outputs(account_id, job_id, self.settings.account_root(account_id) / "out" / job_id)
        with db.write(self.engine) as conn:
            done = conn.execute(update(db.jobs).where(*self._held(job_id, row)).values(**values))
            if done.rowcount == 1 and refund:
                accounts.refund(conn, account_id, job_id, "failed for a server-side reason")
            if done.rowcount == 1 and parent:
                if doc is not None:
                    settled = clips.settle(conn, row, report.children, doc, now)
                    log.info("job %s: %d clip job(s) ready, %d not made", job_id, settled["filled"],
                             settled["cancelled"])
                else:
                    clips.fail_waiting(conn, account_id, job_id, values.get("error"), now)
        if parent:
            self.on_ready()  # its clip jobs can be claimed now


def outcome(run_kind: str, report: JobReport) -> tuple[dict[str, Any], bool]:
    """A finished job's row as the API shows it, and whether its credits are refunded: the
    one place both are decided. The engine's outcome (afx.engine.executor) is the same for
    afx run; the API's contract maps it so:

    - complete -> "published" when every platform is published, else "complete";
    - failed in its last stage (publish) with the video built -> "complete" with the error:
      the job is built and publishable again (approve-publish), and nothing is refunded;
    - a publish run (of a built job) that failed otherwise -> still "complete", its error kept;
    - failed otherwise -> "failed"; refunded when it was not the input's fault (error_kind
      "server": a bug, a crash), never for a bad input (error_kind "job": an AfxError).
    """
    if report.status == "complete":
        result = report.result or {}
        results = result.get("publishResults") or []
        published = bool(results) and all(r.get("status") == "published" for r in results)
        score = (result.get("afx") or {}).get("score") or {}
        return {"status": "published" if published else "complete", "result": json.dumps(result),
                "score": score.get("total"), "error": None, "error_kind": None}, False
    if report.failed_stage == "publish" and report.result:
        return {"status": "complete", "error": report.error, "error_kind": "job",
                "result": json.dumps(report.result)}, False
    if run_kind == "publish":
        return {"status": "complete", "error": report.error or "publish run failed", "error_kind": "server"}, False
    kind = report.error_kind or "server"
    return {"status": "failed", "error": report.error or "failed", "error_kind": kind}, kind == "server"


def wait_group(pgid: int, timeout: float = 2.0) -> None:
    """Until every process of the killed group has died (SIGKILL is not instant)."""
    deadline = time.monotonic() + timeout
    while not procs.group_gone(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
