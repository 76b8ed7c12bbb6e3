"""Background workers: claim queued jobs, run each in a worker process, record the outcome.

- A claim is one conditional UPDATE (queued -> running, attempts + 1), so two workers (or
  two servers on one Postgres) never run the same job.
- Each job runs in a fresh worker process of afx.engine.executor, the same as `afx run`'s:
  its events keep the job's stage and progress current; cancel kills its process group (the
  worker and its ffmpeg); `outcome` maps its report to the API's status and refund.
- A running job has a lease: its worker renews `updated` every few seconds. A job whose
  child is gone (on this machine) or whose lease ran out (a server elsewhere died) is
  requeued, at start and by the scheduler tick; a live job of another server sharing the
  database is left alone. After `attempts` runs it is failed and refunded instead (a job
  that kills its server must not loop forever); a publish run goes back to `complete`.
- A scheduler tick requeues built jobs whose publish has become due: approved, requested,
  or scheduled and the time has come. The publish stage and its ledger make a rerun safe.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.engine import Engine

from afx import procs
from afx.engine.runner import JobReport
from afx.server import accounts, clips, db
from afx.server.jobs import requeue_publish, upload_path
from afx.server.settings import Settings

log = logging.getLogger("afx.server")
HOST = procs.HOST


LEASE = 30.0  # seconds without a heartbeat after which a running job on another machine is presumed dead
HEARTBEAT = 5.0


def _kill_leftover(worker: str | None) -> None:
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


class Workers:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.stopping = threading.Event()
        self.wake = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.children: dict[str, tuple[Any, Any]] = {}  # job id -> (its Workers, its Worker)
        self.cancelled: set[str] = set()
        self.starting: set[str] = set()  # claimed, child not started yet
        self._lock = threading.Lock()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self.sweep()
        from afx.engine.store import Store

        store = Store(self.settings.cache_dir)
        try:
            store.clean_tmp()
        finally:
            store.close()
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
        with self._lock:
            running = dict(self.children)
        for job_id, (pool, worker) in running.items():
            pool.kill(worker)
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                             .values(status="queued", attempts=db.jobs.c.attempts - 1, worker=None,
                                     updated=time.time()))
        for t in self.threads:
            t.join(timeout=5)

    def notify(self) -> None:
        with self.wake:
            self.wake.notify_all()

    def cancel(self, job_id: str) -> None:
        """The API cancelled a job: if one of ours runs it, kill it now."""
        with self._lock:
            self.cancelled.add(job_id)
            child = self.children.get(job_id)
        if child is not None:
            child[0].kill(child[1])

    def recover(self) -> int:
        """Requeue (or give up on) running jobs whose worker is gone. Returns how many."""
        now = time.time()
        count = 0
        with self._lock:
            mine = set(self.children) | self.starting
        with db.write(self.engine) as conn:
            rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.attempts, db.jobs.c.worker,
                                       db.jobs.c.run_kind, db.jobs.c.updated, db.jobs.c.result,
                                       db.jobs.c.clip_count)
                                .where(db.jobs.c.status == "running")).all()
            for row in rows:
                if row.id in mine or procs.alive_here(row.worker):
                    continue  # ours, or another live server's on this machine
                on_this_host = (row.worker or "").partition(":")[0] == HOST
                if not on_this_host and now - (row.updated or 0) < LEASE:
                    continue  # a server elsewhere (or one that has just claimed it) may still run it
                _kill_leftover(row.worker)
                count += 1
                if row.attempts >= self.settings.attempts:
                    why = (f"publish: the server stopped during it {row.attempts} times; approve or reschedule "
                           "to try again" if row.run_kind == "publish" else
                           f"the server stopped during this job {row.attempts} times")
                    values, refund = outcome(row.run_kind, JobReport(row.id, status="failed", error=why,
                                                                     error_kind="server", crashed=True))
                    done = conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "running")
                                        .values(**values, worker=None, finished=now, updated=now))
                    if done.rowcount == 1 and refund:
                        accounts.refund(conn, row.account_id, row.id, "failed: server stopped repeatedly")
                    if done.rowcount == 1 and row.clip_count is not None:
                        clips.fail_waiting(conn, row.account_id, row.id, why, now)
                else:
                    conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "running")
                                 .values(status="queued", worker=None, updated=now))
                log.warning("job %s was running when its server stopped: %s", row.id,
                            "requeued" if row.attempts < self.settings.attempts else "given up")
        return count

    def sweep(self) -> None:
        """Leftovers of requests that died with a server: in-flight Idempotency-Keys and the
        partial files of uploads cut off (an hour old, so no live request is touched); and
        Idempotency-Keys whose 24 hours are over."""
        from afx.server import idempotency

        idempotency.expire(self.engine, older_than=3600, dead=procs.gone_here)
        idempotency.prune(self.engine)
        cutoff = time.time() - 3600
        for part in self.settings.uploads_dir.glob(".part-*"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
            except FileNotFoundError:
                pass

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
            try:
                self.run(row)
            except Exception:  # noqa: BLE001
                log.exception("job %s: the worker failed", row["id"])
                self._finish(row, JobReport(row["id"], status="failed", error="internal error in the worker",
                                            error_kind="server"))
            finally:
                with self._lock:
                    self.starting.discard(row["id"])

    def claim(self) -> RowMapping | None:
        with db.write(self.engine) as conn:
            # (a clip job waiting for its parent's clips stage is queued, but not to be claimed)
            row = conn.execute(select(db.jobs.c.id).where(db.jobs.c.status == "queued", db.jobs.c.waiting_for.is_(None))
                               .order_by(db.jobs.c.created, db.jobs.c.id).limit(1)).first()
            if row is None:
                return None
            now = time.time()
            done = conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "queued").values(
                status="running", attempts=db.jobs.c.attempts + 1, started=now, updated=now, stage=None,
                progress=0.0, worker=procs.name()))  # this server, until its child takes over
            if done.rowcount != 1:
                return None
            with self._lock:
                self.starting.add(row.id)
            return conn.execute(select(db.jobs).where(db.jobs.c.id == row.id)).mappings().one()

    def run(self, row: RowMapping) -> None:
        """Run a claimed job in a worker process of its own (afx.engine.executor), keeping its
        stage, progress and lease current, until it reports, dies or is cancelled."""
        from afx.engine.executor import Setup, Workers
        from afx.spec.api import job_from_fields

        job_id, account_id = row["id"], row["account_id"]
        found = upload_path(self.engine, self.settings, account_id, row["upload_id"]) if row["upload_id"] else None
        root = self.settings.account_root(account_id)
        job = job_from_fields(json.loads(row["fields"]), name=job_id, root=root, upload=found)
        # publishEveryJob: each API job publishes what it was asked to (afx run, by contrast,
        # does not post a video again that a job since renamed already posted)
        setup = Setup(self.settings.pipeline, str(self.settings.cache_dir), str(root / "out"),
                      {**self.settings.account_config(account_id), "publishEveryJob": True})
        pool = Workers(setup, fresh=True)
        worker = pool.give(job)
        with self._lock:
            self.children[job_id] = (pool, worker)
            self.starting.discard(job_id)
        report = None
        try:
            # A cancel that came between the claim and now found no process to kill.
            if job_id in self.cancelled or self._status(job_id) != "running":
                with self._lock:
                    self.cancelled.add(job_id)
                raise _Cancelled
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(worker=procs.name(worker.pid)))
            report = self._follow(job_id, pool, worker)
        except _Cancelled:
            report = None
        finally:
            with self._lock:
                self.children.pop(job_id, None)
                cancelled = job_id in self.cancelled
                self.cancelled.discard(job_id)
            if cancelled or self.stopping.is_set():
                pool.kill(worker)
            # Whatever became of the worker, its group goes: an ffmpeg it started may outlive a
            # worker killed with -9 (issue 11). The worker is not reaped before this, so its
            # pid, the group's id, cannot have gone to another process.
            pool.kill(worker)
            _wait_group(worker.pid)
            pool.stop(grace=0.0)
        if cancelled or self.stopping.is_set():
            return  # the API (or stop()) has set the job's status already
        if report is None or report.crashed:
            self._crashed(row, worker.proc.exitcode)
        else:
            self._finish(row, report)

    def _status(self, job_id: str) -> str | None:
        with db.read(self.engine) as conn:
            return conn.execute(select(db.jobs.c.status).where(db.jobs.c.id == job_id)).scalar()

    def _follow(self, job_id: str, pool: Any, worker: Any) -> Any:
        """The worker's events until its report; the job's stage and progress kept current
        (at most every 0.5 s), its lease renewed every few seconds. None: cancelled
        elsewhere (another server sharing the database)."""
        last_write = 0.0
        stage, fraction = None, 0.0
        beat = time.monotonic()
        while True:
            if time.monotonic() - beat > HEARTBEAT:
                # Renew the lease; a cancel made through another server shows up here.
                beat = time.monotonic()
                with db.write(self.engine) as conn:
                    alive = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                                         .values(updated=time.time())).rowcount
                if not alive:
                    with self._lock:
                        self.cancelled.add(job_id)
                    pool.kill(worker)
                    return None
            for kind, event in pool.messages(timeout=0.5):
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
                        conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                                     .values(stage=stage, progress=round(fraction, 4), updated=time.time()))

    def _crashed(self, row: RowMapping, code: int | None) -> None:
        attempts = row["attempts"]
        why = f"the job's process ended without a result (exit status {code})"
        if attempts < self.settings.attempts and row["run_kind"] == "build":
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == row["id"], db.jobs.c.status == "running")
                             .values(status="queued", worker=None, updated=time.time(), error=why))
            self.notify()
            return
        self._finish(row, JobReport(row["id"], status="failed", error=why, error_kind="server", crashed=True))

    def _finish(self, row: RowMapping, report: JobReport) -> None:
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
        with db.write(self.engine) as conn:
            done = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                                .values(**values))
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
            self.notify()  # its clip jobs can be claimed now

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

    def due(self) -> int:
        """Requeue built jobs whose publish is due now. Returns how many."""
        with db.read(self.engine) as conn:
            rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.fields, db.jobs.c.result,
                                       db.jobs.c.error)
                                # (a job with clips publishes nothing: its clip jobs do)
                                .where(db.jobs.c.status == "complete", db.jobs.c.clip_count.is_(None))).all()
        services: dict[str, Any] = {}  # account -> its PublishService (the ledger read once a tick)
        now = time.time()
        count = 0
        for row in rows:
            try:
                count += self._due_one(row, services, now)
            except Exception:  # noqa: BLE001 - one bad job must not stop every other publish
                log.exception("job %s: checking its publish time failed", row.id)
        return count

    def _due_one(self, row: Any, services: dict[str, Any], now: float) -> int:
        from afx.publish import policy
        from afx.publish.service import PublishService
        from afx.spec.api import job_from_fields

        result = json.loads(row.result) if row.result else {}
        states = [r.get("status") for r in result.get("publishResults") or []]
        if not policy.WAITING.intersection(states):
            return 0  # cheap first: most built jobs are published, and reading the job is not free
        root = self.settings.account_root(row.account_id)
        if row.account_id not in services:
            services[row.account_id] = PublishService.for_repo(root, self.settings.account_config(row.account_id))
        job = job_from_fields(json.loads(row.fields), name=row.id, root=root)
        due = policy.due(job, services[row.account_id].controls(row.id), states, now, retry_failed=False)
        return int(due and requeue_publish(self.engine, row.id))


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


class _Cancelled(Exception):
    """Cancelled before the child was given its job."""


def _wait_group(pgid: int, timeout: float = 2.0) -> None:
    """Until every process of the killed group has died (SIGKILL is not instant)."""
    deadline = time.monotonic() + timeout
    while not procs.group_gone(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
