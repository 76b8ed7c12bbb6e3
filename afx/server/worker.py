"""Background workers: claim queued jobs, run each in a child process, record the outcome.

- A claim is one conditional UPDATE (queued -> running, attempts + 1), so two workers (or
  two servers on one Postgres) never run the same job.
- The child (afx.server.child) reports progress as JSON lines; cancel kills its process
  group (the child and its ffmpeg).
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
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from afx import procs
from afx.server import accounts, db
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
        self.children: dict[str, subprocess.Popen] = {}
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
        for job_id, proc in running.items():
            _killpg(proc)
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
            proc = self.children.get(job_id)
        if proc is not None:
            _killpg(proc)

    def recover(self) -> int:
        """Requeue (or give up on) running jobs whose worker is gone. Returns how many."""
        now = time.time()
        count = 0
        with self._lock:
            mine = set(self.children) | self.starting
        with db.write(self.engine) as conn:
            rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.attempts, db.jobs.c.worker,
                                       db.jobs.c.run_kind, db.jobs.c.updated, db.jobs.c.result)
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
                    if row.run_kind == "publish":
                        values = {"status": "complete", "error": "publish: the server stopped during it "
                                  f"{row.attempts} times; approve or reschedule to try again"}
                    else:
                        values = {"status": "failed", "error_kind": "server",
                                  "error": f"the server stopped during this job {row.attempts} times"}
                        accounts.refund(conn, row.account_id, row.id, "failed: server stopped repeatedly")
                    conn.execute(update(db.jobs).where(db.jobs.c.id == row.id, db.jobs.c.status == "running")
                                 .values(**values, worker=None, finished=now, updated=now))
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
                self._finish(row, {"status": "failed", "error": "internal error in the worker",
                                   "error_kind": "server"})
            finally:
                with self._lock:
                    self.starting.discard(row["id"])

    def claim(self) -> Mapping[str, Any] | None:
        with db.write(self.engine) as conn:
            row = conn.execute(select(db.jobs.c.id).where(db.jobs.c.status == "queued")
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

    def run(self, row: Mapping[str, Any]) -> None:
        # publishEveryJob: each API job publishes what it was asked to (afx run, by contrast,
        # does not post a video again that a job since renamed already posted)
        job_id, account_id = row["id"], row["account_id"]
        found = upload_path(self.engine, self.settings, account_id, row["upload_id"]) if row["upload_id"] else None
        upload = str(found) if found else None
        task = {"job_id": job_id, "fields": json.loads(row["fields"]),
                "root": str(self.settings.account_root(account_id)), "upload": upload,
                "store": str(self.settings.cache_dir), "config": {**self.settings.config, "publishEveryJob": True},
                "pipeline": self.settings.pipeline, "parent": os.getpid()}
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{job_id}.log", "ab") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "afx.server.child"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        proc.afx_tag = f"p{proc.pid}-{procs.start_time(proc.pid)}"  # type: ignore[attr-defined]  # its work folders
        with self._lock:
            self.children[job_id] = proc
            self.starting.discard(job_id)
        try:
            # A cancel that came between the claim and now found no process to kill: the
            # child has been given nothing yet, so stop it here.
            if job_id in self.cancelled or self._status(job_id) != "running":
                with self._lock:
                    self.cancelled.add(job_id)
                raise _Cancelled
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(
                    worker=procs.name(proc.pid)))
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(task).encode())
            proc.stdin.close()
            report = self._follow(job_id, proc)
        except _Cancelled:
            report = None
        finally:
            with self._lock:
                self.children.pop(job_id, None)
                cancelled = job_id in self.cancelled
                self.cancelled.discard(job_id)
            # Whatever became of the child, its group goes: an ffmpeg it started may outlive a
            # child killed with -9 (issue 11). The child is not reaped before this (see
            # _exited), so its pid, the group's id, cannot have gone to another process. A
            # child that has said its last word gets a moment to exit by itself first.
            deadline = time.monotonic() + (1.0 if not cancelled and not self.stopping.is_set() else 0.0)
            while not _exited(proc) and time.monotonic() < deadline:
                time.sleep(0.01)
            _killpg(proc)
            _wait_group(proc.pid)
            proc.wait()
            self._remove_work(proc)
        if cancelled or self.stopping.is_set():
            return  # the API (or stop()) has set the job's status already
        if report is None:
            self._crashed(row, proc.returncode)
        else:
            self._finish(row, report)

    def _remove_work(self, proc: subprocess.Popen) -> None:
        """The work folders a finished child left (a killed stage's, half written): the
        retry starts clean, and nothing of a dead attempt stays in cache/tmp/."""
        tag = getattr(proc, "afx_tag", None)
        tmp = self.settings.cache_dir / "tmp"
        if not tag or not tmp.is_dir():
            return
        for folder in tmp.glob(f"*.{tag}.*"):
            shutil.rmtree(folder, ignore_errors=True)

    def _status(self, job_id: str) -> str | None:
        with db.read(self.engine) as conn:
            return conn.execute(select(db.jobs.c.status).where(db.jobs.c.id == job_id)).scalar()

    def _follow(self, job_id: str, proc: subprocess.Popen) -> dict[str, Any] | None:
        """Read the child's events until it exits; keep the job's stage and progress current."""
        assert proc.stdout is not None
        report = None
        last_write = 0.0
        stage, fraction = None, 0.0
        buffer = b""
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        beat = time.monotonic()
        try:
            while True:
                ready = sel.select(timeout=0.5)
                if time.monotonic() - beat > HEARTBEAT:
                    # Renew the lease; a cancel made through another server shows up here.
                    beat = time.monotonic()
                    with db.write(self.engine) as conn:
                        alive = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id,
                                                                   db.jobs.c.status == "running")
                                             .values(updated=time.time())).rowcount
                    if not alive:
                        with self._lock:
                            self.cancelled.add(job_id)
                        _killpg(proc)
                        return None
                if not ready:
                    if _exited(proc):
                        break
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    kind = event.get("event")
                    if kind == "report":
                        report = event
                    elif kind == "stage" and event.get("status") == "running":
                        stage, fraction = event.get("stage"), 0.0
                    elif kind == "progress":
                        stage, fraction = event.get("stage"), float(event.get("fraction") or 0.0)
                    elif kind == "stage" and event.get("status") == "failed":
                        stage = event.get("stage")
                    now = time.monotonic()
                    if kind in ("stage", "progress") and now - last_write > 0.5:
                        last_write = now
                        with db.write(self.engine) as conn:
                            conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                                         .values(stage=stage, progress=round(fraction, 4), updated=time.time()))
        finally:
            sel.close()
        return report

    def _crashed(self, row: Mapping[str, Any], code: int | None) -> None:
        attempts = row["attempts"]
        why = f"the job's process ended without a result (exit status {code})"
        if attempts < self.settings.attempts and row["run_kind"] == "build":
            with db.write(self.engine) as conn:
                conn.execute(update(db.jobs).where(db.jobs.c.id == row["id"], db.jobs.c.status == "running")
                             .values(status="queued", worker=None, updated=time.time(), error=why))
            self.notify()
            return
        self._finish(row, {"status": "failed", "error": why, "error_kind": "server"})

    def _finish(self, row: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        job_id, account_id = row["id"], row["account_id"]
        now = time.time()
        values: dict[str, Any] = {"worker": None, "updated": now, "finished": now, "stage": None, "progress": None}
        refund = False
        if report.get("status") == "complete":
            result = report.get("result") or {}
            results = result.get("publishResults") or []
            published = bool(results) and all(r.get("status") == "published" for r in results)
            score = (result.get("afx") or {}).get("score") or {}
            values.update(status="published" if published else "complete", result=json.dumps(result),
                          score=score.get("total"), error=None, error_kind=None)
        elif report.get("failed_stage") == "publish" and report.get("result"):
            # The video and its package are done: a publish that failed (expired credentials, a
            # platform's refusal) leaves the job built and publishable again, not failed.
            values.update(status="complete", error=report.get("error"), error_kind="job",
                          result=json.dumps(report["result"]))
        elif row["run_kind"] == "publish":
            # A built job's publish run that went wrong otherwise: still built, with the error
            # (approve-publish tries again); its result stays.
            values.update(status="complete", error=report.get("error") or "publish run failed", error_kind="server")
        else:
            kind = report.get("error_kind") or "server"
            values.update(status="failed", error=report.get("error") or "failed", error_kind=kind)
            refund = kind == "server"
        with db.write(self.engine) as conn:
            done = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.status == "running")
                                .values(**values))
            if done.rowcount == 1 and refund and row["run_kind"] == "build":
                accounts.refund(conn, account_id, job_id, "failed for a server-side reason")

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
        from afx.publish.ledger import read_controls
        from afx.spec.api import job_from_fields
        from afx.stages.publish import decide

        with db.read(self.engine) as conn:
            rows = conn.execute(select(db.jobs.c.id, db.jobs.c.account_id, db.jobs.c.fields, db.jobs.c.result,
                                       db.jobs.c.error)
                                .where(db.jobs.c.status == "complete")).all()
        controls: dict[str, dict] = {}
        now = time.time()
        count = 0
        for row in rows:
            try:
                count += self._due_one(row, controls, now, read_controls, job_from_fields, decide)
            except Exception:  # noqa: BLE001 - one bad job must not stop every other publish
                log.exception("job %s: checking its publish time failed", row.id)
        return count

    def _due_one(self, row: Any, controls: dict, now: float, read_controls: Any, job_from_fields: Any,
                 decide: Any) -> int:
        result = json.loads(row.result) if row.result else {}
        waiting = [r for r in result.get("publishResults") or []
                   if r.get("status") in ("staged", "scheduled", "manual", "unscheduled")]
        if not waiting:
            return 0
        root = self.settings.account_root(row.account_id)
        if row.account_id not in controls:
            controls[row.account_id] = read_controls(root)
        job = job_from_fields(json.loads(row.fields), name=row.id, root=root)
        status, _ = decide(job, controls[row.account_id].get(row.id) or {}, now)
        return int(status == "publish" and requeue_publish(self.engine, row.id))


class _Cancelled(Exception):
    """Cancelled before the child was given its job."""


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(proc: subprocess.Popen) -> bool:
    """The child has ended, without reaping it (a zombie keeps its pid, the group's id, taken)."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_group(pgid: int, timeout: float = 2.0) -> None:
    """Until every process of the killed group has died (SIGKILL is not instant)."""
    deadline = time.monotonic() + timeout
    while not procs.group_gone(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
