"""A real `afx serve` in a subprocess on 127.0.0.1, and real `afx worker`s beside it, for tests
(started and stopped by them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

AFX = str(Path(sys.executable).parent / "afx")
CHEAP = "afx.testing.pipeline:PUBLISHING"  # real stage declarations, cheap work: no media, no network


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PortTaken(Exception):
    pass


class Server:
    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None,
                 pipeline: str | None = CHEAP) -> None:
        self.data_dir = Path(data_dir)
        # polling a job 10 times a second crosses the default 60 requests a minute: tests of
        # the limit set their own
        self.args = list(args) if "--rate-limit" in args else [*args, "--rate-limit", "100000"]
        self.env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.env.pop("AFX_PIPELINE", None)
        if pipeline:
            self.env["AFX_PIPELINE"] = pipeline
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"serve-{self.port}.log"

    def start(self) -> Server:
        for _ in range(3):
            try:
                return self._start()
            except _PortTaken:  # free_port's port went to someone else before the server bound it
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        return self._start()

    def _start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        mark = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([AFX, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
                                          *self.args], env=self.env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log.read_text()
                if "address already in use" in said[mark:].lower():
                    raise _PortTaken
                raise RuntimeError(f"afx serve exited ({self.proc.returncode}):\n{said[-3000:]}")
            try:
                if httpx.get(self.url + "/openapi.json", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"afx serve did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        _stop(self.proc, 15)

    def kill9(self) -> None:
        """kill -9 the server process alone (its job children must die with it)."""
        _kill9(self.proc)

    def key(self, credits: int = 100, plan: str = "operate", account: str | None = None) -> str:
        extra = ["--account", account] if account else []
        out = subprocess.run([AFX, "keys", "create", "--data-dir", str(self.data_dir), "--credits", str(credits),
                              "--plan", plan, *extra], env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def client(self, key: str | None = None, **kw) -> httpx.Client:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=30, **kw)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProc:
    """A real `afx worker` on the data dir and database of `env` (AFX_DATABASE_URL)."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None,
                 pipeline: str | None = CHEAP) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.env.pop("AFX_PIPELINE", None)
        if pipeline:
            self.env["AFX_PIPELINE"] = pipeline
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"worker-{id(self)}.log"

    def start(self) -> WorkerProc:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([AFX, "worker", "--data-dir", str(self.data_dir), *self.args], env=self.env,
                                         stdout=log, stderr=log, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        _stop(self.proc, 20)

    def kill9(self) -> None:
        _kill9(self.proc)

    def __enter__(self) -> WorkerProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    last = {}
    while time.monotonic() < deadline:
        r = client.get(f"/jobs/{job_id}")
        if r.status_code == 429:  # a server with a low rate limit
            time.sleep(min(float(r.headers.get("retry-after", "1")), max(deadline - time.monotonic(), 0.1)))
            continue
        last = r.json()
        if last.get("status") in statuses:
            return last
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses}: {last}")


def _stop(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then kill -9 after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill9(proc)


def _kill9(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
