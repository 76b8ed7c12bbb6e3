"""POST /jobs bodies resolved away from the event loop, within a budget (issue 11, hole 2).

Resolving a body (templates merged, Jinja rendered, the schema checked) is CPU work. On the
event loop, one client's heavy bodies held up every other client: eight POSTs a minute of
5,900 `{{ afx.job }}` raised another account's GET /jobs/:id from 8 ms to 2 s. A thread
would not do either: Python code in a thread holds the GIL the loop needs. So:

- Bodies are resolved in worker processes, forked from a forkserver that has afx.spec
  imported (a new worker costs milliseconds). The event loop only awaits; a thread of this
  pool (one per worker) waits on the worker's pipe, holding no GIL while it waits.
- A body that takes longer than `budget` seconds is a 422 naming the limit; its worker is
  killed and replaced. A worker's memory is capped (RLIMIT_AS): a body that exhausts it is a
  422 too.
- An account resolves one body at a time; its other requests wait their turn without a
  thread. An account sending worst-case bodies at its full rate limit therefore keeps one
  worker busy, never all of them, and never the threads that serve other requests.

Bodies are bounded before they get here: 256 KB, and per field 256 expressions and 2,000
expression parts, checked before anything is compiled (afx.spec.vars).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from afx.errors import Diagnostic, SpecError

log = logging.getLogger("afx.server")
BUDGET = 2.0  # seconds of resolving one body may take
MEMORY = 1 << 30  # bytes of address space one worker may use
_PRELOAD = ["afx.spec.api", "afx.spec.sandbox", "jinja2", "jsonschema_rs"]


def over_budget(budget: float) -> SpecError:
    return SpecError([Diagnostic("body", 0, 0, "", f"resolving the body took longer than {budget:g} s, "
                                 "the limit for one request", "use fewer or simpler {{ }} expressions")])


def _worker(conn: Any, memory: int) -> None:
    """One resolver: (body, name, root, templates) in, ("ok", fields) or ("spec", diags) out."""
    import resource
    import signal
    from pathlib import Path

    from afx.spec.api import resolve_body

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        body, name, root, templates = task
        try:
            job = resolve_body(body, name=name, root=Path(root), templates=templates, uploads=None)
            answer: tuple[str, Any] = ("ok", job.to_dict())
        except SpecError as exc:
            answer = ("spec", list(exc.diagnostics))
        except MemoryError:
            answer = ("spec", [Diagnostic("body", 0, 0, "", "resolving the body needs more memory than the "
                                          f"{memory >> 20} MB one request may use")])
        except Exception as exc:  # noqa: BLE001 - a bug: the server answers 500 and logs it
            answer = ("error", f"{type(exc).__name__}: {exc}"[:2000])
        try:
            conn.send(answer)
        except (OSError, ValueError):
            return


class _Proc:
    def __init__(self, ctx: Any, memory: int) -> None:
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(theirs, memory), daemon=True, name="afx-resolver")
        self.proc.start()
        theirs.close()

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class Resolvers:
    """`await resolvers.resolve(account, body, ...)` -> the job's fields, or SpecError."""

    def __init__(self, size: int = 2, budget: float = BUDGET, memory: int = MEMORY) -> None:
        self.size, self.budget, self.memory = max(1, size), budget, memory
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="afx-resolve")
        self._local = threading.local()  # each pool thread's own worker process
        self._procs: set[_Proc] = set()
        self._lock = threading.Lock()
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}  # account -> (its lock, waiting)
        self._ctx: Any = None
        self._closed = False

    # -- the event loop's side --------------------------------------------------------------
    async def resolve(self, account_id: str, body: Any, *, name: str, root: str,
                      templates: Mapping[str, Any]) -> dict[str, Any]:
        lock = self._enter(account_id)
        try:
            async with lock:
                loop = asyncio.get_running_loop()
                kind, value = await loop.run_in_executor(self._threads, self._run,
                                                         (body, name, str(root), dict(templates)))
        finally:
            self._leave(account_id)
        if kind == "ok":
            return value
        if kind == "spec":
            raise SpecError(value)
        raise RuntimeError(f"resolving a body failed: {value}")

    def _enter(self, account_id: str) -> asyncio.Lock:
        lock, waiting = self._turns.get(account_id) or (asyncio.Lock(), 0)
        self._turns[account_id] = (lock, waiting + 1)
        return lock

    def _leave(self, account_id: str) -> None:
        lock, waiting = self._turns[account_id]
        if waiting <= 1:
            del self._turns[account_id]
        else:
            self._turns[account_id] = (lock, waiting - 1)

    # -- a pool thread's side ---------------------------------------------------------------
    def _run(self, task: tuple) -> tuple[str, Any]:
        worker = self._worker()
        try:
            worker.conn.send(task)
            if not worker.conn.poll(self.budget):
                log.warning("a request body took over %g s to resolve: refused, its resolver replaced", self.budget)
                self._drop(worker)
                raise over_budget(self.budget)
            return worker.conn.recv()
        except (EOFError, OSError, ValueError):
            code = worker.proc.exitcode
            self._drop(worker)
            if self._closed:
                raise RuntimeError("the server is stopping") from None
            log.warning("a resolver died resolving a request body (exit status %s)", code)
            return "spec", [Diagnostic("body", 0, 0, "", "the body could not be resolved within the limits one "
                                       f"request has ({self.memory >> 20} MB of memory)")]

    def _worker(self) -> _Proc:
        worker: _Proc | None = getattr(self._local, "worker", None)
        if worker is None or not worker.proc.is_alive():
            if worker is not None:
                self._drop(worker)
            worker = _Proc(self._context(), self.memory)
            with self._lock:
                self._procs.add(worker)
            self._local.worker = worker
        return worker

    def _drop(self, worker: _Proc) -> None:
        worker.kill()
        with self._lock:
            self._procs.discard(worker)
        if getattr(self._local, "worker", None) is worker:
            self._local.worker = None

    def _context(self) -> Any:
        with self._lock:
            if self._ctx is None:
                # A forkserver: each worker is a fork of a clean process with afx.spec imported,
                # not of this one (threads, sockets, the database pool).
                self._ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
                if os.name == "posix":
                    self._ctx.set_forkserver_preload(_PRELOAD)
            return self._ctx

    def warm(self) -> None:
        """Start the workers now (in the background), not on the first request."""
        for _ in range(self.size):
            self._threads.submit(self._worker)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            procs, self._procs = list(self._procs), set()
        for worker in procs:
            worker.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)
