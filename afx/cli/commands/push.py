"""afx push: make the repo's jobs on an AuraFlux-compatible API and bring the results home.

Per selected job (matrices expand locally: one POST per combination):

1. Its local `file`, if any, is uploaded (POST /upload) with Idempotency-Key
   `afx-upload-<sha256>`; afx.lock remembers sha256 -> fileId per API, so an unchanged file
   is not sent again.
2. POST /jobs with job.to_api_body(file_ids) and Idempotency-Key `afx-<sha256(spec digest,
   body)>`: pushing the same job twice creates nothing new, even without afx.lock. A
   spec's scheduledAt is then set with PATCH /jobs/:id/schedule.
3. afx.lock records the remote job per API (`jobs.<job>.remote.<api>`: jobId, spec,
   status, submitted, request). A later push finds it there and only waits for it; a job
   that failed or was cancelled remotely is submitted again (with a key of its own).
4. Unless --no-wait: GET /jobs/:id with backoff (0.5 s growing to 10 s) until complete,
   published, failed or cancelled; then GET /jobs/:id/result, and its video and thumbnail
   and result.json go to out/<job>/ (each written atomically).

A server that refuses a job for now (429 too_many_active_jobs) gets it again when one of
ours finishes. An answer replayed for a key whose first use was refused (402/429, so
nothing was created) moves on to the key's next form (`<key>.1`, ...), so a refusal
stored by the server does not block the job forever.

Exit status: 0 all complete (or submitted, with --no-wait), 3 a remote job failed or was
cancelled, 4 an API error or --timeout, 130 Ctrl-C (the jobs keep running remotely; push
again to wait for them).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afx import times
from afx.cli.env import Environment
from afx.client import ApiError, Client
from afx.engine.lockfile import read_lock, update_lock
from afx.engine.store import sha256_file
from afx.errors import ExitStatus, UsageError
from afx.fsutil import atomic_write
from afx.spec.job import Job, canonical_json
from afx.spec.select import select

TERMINAL = frozenset({"complete", "published", "failed", "cancelled"})
DONE = frozenset({"complete", "published"})


def state(view: dict[str, Any]) -> str:
    """A job's status as push follows it: a complete job whose publish run is waiting or
    under way (afx serve's `publishing`) is not finished yet."""
    return "publishing" if view.get("publishing") else str(view.get("status") or "queued")
POLL_START, POLL_GROWTH, POLL_MAX = 0.5, 1.5, 10.0
MAX_KEY_CHAIN = 100
LIST_POLL_AT = 4  # active jobs from which one GET /jobs replaces a GET per job
OUT_DIR = "out"
RESULT = "result.json"

sleep = time.sleep  # tests patch these
clock = time.monotonic


def credentials(env: Environment, api_url: str | None) -> tuple[str, str]:
    url = (api_url or env.environ.get("AFX_API_URL") or "").strip()
    key = (env.environ.get("AFX_API_KEY") or "").strip()
    if not url:
        raise UsageError("no API URL: pass --api-url or set AFX_API_URL",
                         hint="e.g. https://api.auraflux.co/v1, or the URL `afx serve` prints")
    if not key:
        raise UsageError("no API key: set AFX_API_KEY", hint="keys for `afx serve` come from `afx keys create`")
    return url, key


def open_client(env: Environment, api_url: str | None, **kw: Any) -> Client:
    url, key = credentials(env, api_url)
    return Client(url, key, **kw)


def remote_block(lock: dict[str, Any], job: str, api: str) -> dict[str, Any] | None:
    block = (lock.get("jobs") or {}).get(job) or {}
    found = (block.get("remote") or {}).get(api) if isinstance(block, dict) else None
    return found if isinstance(found, dict) else None


class _Busy(Exception):
    """The server has too many of the account's jobs queued or running (a 429 without Retry-After)."""


@dataclass
class Item:
    job: Job
    body: dict[str, Any] | None = None
    request: str = ""  # the job's Idempotency-Key base: sha of spec digest + body
    key: str = ""  # the key it was submitted with
    chain: int = 0  # next form of the key to try
    retry_of: str = ""  # the failed or cancelled remote job this one replaces
    file_sha: str = ""
    file_remembered: bool = False  # its fileId came from afx.lock, not an upload just now
    job_id: str = ""
    status: str = "pending"  # pending | waiting | queued | running | complete | published | failed | cancelled | error
    new: bool = False  # submitted by this push
    submitted: str = ""
    error: str = ""
    files: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # what out/<job>/ got: name -> sha256
    delay: float = POLL_START
    due: float = 0.0
    shown: str = ""

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def active(self) -> bool:
        return bool(self.job_id) and self.status not in TERMINAL and self.status != "error"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.name, "jobId": self.job_id or None, "status": self.status,
                               "new": self.new, "submittedAt": self.submitted or None, "spec": self.job.digest}
        if self.files:
            out["files"] = [f"{OUT_DIR}/{self.name}/{n}" for n in self.files]
        if self.error:
            out["error"] = self.error
        return out


class Pusher:
    def __init__(self, env: Environment, client: Client, root: Path, *, wait: bool) -> None:
        self.env, self.client, self.root, self.wait = env, client, root, wait
        self.api = client.api
        lock = read_lock(root)
        self.previous = {name: remote_block(lock, name, self.api) for name in (lock.get("jobs") or {})}
        remote = ((lock.get("remote") or {}).get(self.api) or {}) if isinstance(lock.get("remote"), dict) else {}
        self.uploads: dict[str, str] = dict(remote.get("uploads") or {})
        self.uploaded: dict[str, str] = {}  # sha256 -> fileId learned by this push
        self.forgotten: set[str] = set()
        self.busy_until = 0.0
        self.busy_delay = POLL_START
        self._extensions: bool | None = None

    @property
    def extensions(self) -> bool:
        """Whether the API is an `afx serve`, which takes afx's extension fields."""
        if self._extensions is None:
            self._extensions = bool(self.client.afx_version())
        return self._extensions

    # -- output ---------------------------------------------------------------------------
    def say(self, item: Item, text: str) -> None:
        self.env.info(f"{self.env.style(item.name, bold=True)}: {text}")

    def progress(self, item: Item, view: dict[str, Any]) -> None:
        status = state(view)
        if status in TERMINAL:
            return  # finish() says how it ended
        line = status
        if view.get("stage") and "running" in (view.get("status"), view.get("publishing")):
            pct = view.get("progress")
            line += f" ({view['stage']}{f' {float(pct) * 100:.0f}%' if isinstance(pct, (int, float)) else ''})"
        if line != item.shown:
            item.shown = line
            self.say(item, line)

    # -- afx.lock -------------------------------------------------------------------------
    def save(self, items: Sequence[Item]) -> None:
        api = self.api
        if not any(i.job_id for i in items) and not self.uploaded and not self.forgotten:
            return

        def change(data: dict[str, Any]) -> None:
            jobs = data.setdefault("jobs", {})
            for item in items:
                if not item.job_id:
                    continue
                block = jobs.setdefault(item.name, {})
                remote = block.setdefault("remote", {})
                remote[api] = {"jobId": item.job_id, "spec": item.job.digest, "status": item.status,
                               "submitted": item.submitted or times.now_iso(), "request": item.request}
                if item.digests:  # afx verify checks out/<job>/ against these
                    remote[api].update(files=dict(item.digests), downloaded=times.now_iso())
            if self.uploaded or self.forgotten:
                top = data.setdefault("remote", {})
                uploads = top.setdefault(api, {}).setdefault("uploads", {})
                for sha in self.forgotten:
                    uploads.pop(sha, None)
                uploads.update(self.uploaded)

        update_lock(self.root, change)

    # -- 1. upload and body ---------------------------------------------------------------
    def prepare(self, item: Item) -> None:
        job = item.job
        # To afx serve, afx's own fields go too (script, copy, render); to another API, only
        # the reference's POST /jobs fields.
        extensions = self.extensions
        dropped = job.local_only(extensions=extensions)
        if dropped:
            why = "a local file the server cannot read" if extensions else "not a POST /jobs field"
            self.say(item, f"{', '.join(dropped)} not sent ({why})")
        file_ids = None
        if "file" in job.fields:
            path = job.local_path("file")
            if path is None or not path.is_file():
                raise UsageError(f"{job.source}: file {job['file']!r} is missing")
            from afx.engine.store import sha256_file

            item.file_sha = sha256_file(path)
            file_id = self.uploads.get(item.file_sha)
            item.file_remembered = file_id is not None
            if file_id is None:
                file_id = self.upload(item, self.sendable(item, path))
            file_ids = {job["file"]: file_id}
        item.body = job.to_api_body(file_ids, extensions=extensions)
        item.request = "afx-" + hashlib.sha256(f"{job.digest}\n{canonical_json(item.body)}".encode()).hexdigest()

    def sendable(self, item: Item, path: Path) -> Path:
        """The file as the API's upload takes it (MP4/MOV, at most 500 MB): remuxed or
        transcoded into .afx/push/ when needed (issue 12); UsageError when it cannot be."""
        from afx.media.ffmpeg import MediaError
        from afx.media.normalize import for_upload

        try:
            sent, how = for_upload(path, self.root / ".afx" / "push" / item.file_sha[:16], item.job["file"])
        except MediaError as exc:
            raise UsageError(f"{item.job.source}: file: {exc}") from None
        if how:
            self.say(item, f"{item.job['file']}: {how}")
        return sent

    def upload(self, item: Item, path: Path) -> str:
        size = path.stat().st_size
        self.say(item, f"uploading {item.job['file']} ({_size(size)})")
        answer = self.client.upload(path, idempotency_key=f"afx-upload-{item.file_sha}")
        file_id = answer.get("fileId")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(f"POST /upload: the answer has no fileId: {json.dumps(answer)[:200]}", method="POST",
                           path="/upload")
        self.uploads[item.file_sha] = self.uploaded[item.file_sha] = file_id
        self.forgotten.discard(item.file_sha)
        self.say(item, f"uploaded {item.job['file']} as {file_id}"
                       + (" (the server had it already)" if self.client.replayed else ""))
        return file_id

    # -- 2. submit, or find the job submitted before ----------------------------------------
    def start(self, item: Item, *, may_submit: bool = True) -> bool:
        """Find the job afx.lock says was submitted, else submit it. False: not submitted yet."""
        before = self.previous.get(item.name)
        if before and before.get("jobId") and before.get("request") == item.request:
            try:
                view = self.client.get_job(before["jobId"])
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.say(item, f"{before['jobId']} is gone from the server; submitting again")
            else:
                if view.get("status") not in ("failed", "cancelled"):
                    item.job_id, item.submitted = before["jobId"], before.get("submitted") or ""
                    item.status = state(view)
                    item.shown = item.status
                    self.say(item, f"{item.job_id}: {item.status} (submitted {item.submitted or 'before'})")
                    at = item.job.get("scheduledAt")
                    if at and item.status not in TERMINAL - {"complete"} and view.get("scheduledAt") != at:
                        self.schedule(item, at)  # a PATCH that did not happen last time
                    return True
                self.say(item, f"{before['jobId']} {view.get('status')}; submitting again")
                # A key of its own per retry: two pushes retrying at once still make one job.
                item.retry_of = before["jobId"]
        if not may_submit:
            return False
        self.submit(item)
        return True

    def base_key(self, item: Item) -> str:
        if not item.retry_of:
            return item.request
        return "afx-" + hashlib.sha256(f"{item.request}\nretry-of {item.retry_of}".encode()).hexdigest()

    def schedule(self, item: Item, at: str) -> None:
        self.client.schedule(item.job_id, at)
        self.say(item, f"publishes at {at}")

    def submit(self, item: Item) -> None:
        assert item.body is not None
        base = self.base_key(item)
        refreshed = False
        while True:
            key = base if item.chain == 0 else f"{base}.{item.chain}"
            try:
                answer = self.client.submit_job(item.body, idempotency_key=key)
            except ApiError as exc:
                if exc.replayed and exc.status in (402, 429) and item.chain < MAX_KEY_CHAIN:
                    item.chain += 1  # that key's first use was refused, so it made nothing
                    continue
                if exc.status == 429 and exc.code == "too_many_active_jobs":
                    item.chain += 1  # the server stores this refusal under the key
                    raise _Busy(exc.detail) from None
                if exc.status == 422 and exc.field("fileId") and item.file_remembered and not refreshed:
                    # A fileId from afx.lock this account (or server) does not know: upload again.
                    self.say(item, f"the server does not know {item.body.get('fileId')}; uploading again")
                    self.uploads.pop(item.file_sha, None)
                    self.forgotten.add(item.file_sha)
                    self.prepare(item)
                    base, refreshed, item.chain = self.base_key(item), True, 0
                    continue
                raise
            break
        item.key = key
        item.job_id = str(answer.get("jobId") or "")
        if not item.job_id:
            raise ApiError(f"POST /jobs: the answer has no jobId: {json.dumps(answer)[:200]}", method="POST",
                           path="/v1/jobs")
        item.status = str(answer.get("status") or "queued")
        item.new, item.submitted, item.shown = not self.client.replayed, times.now_iso(), item.status
        cost = answer.get("creditCost")
        costs = f" ({cost} credit{'s' * (cost != 1)}, balance {answer.get('balance')})" \
            if isinstance(cost, int) and item.new else ""
        self.say(item, f"{'submitted as' if item.new else 'already submitted as'} {item.job_id}{costs}")
        at = item.job.get("scheduledAt")
        if at:
            self.schedule(item, at)

    # -- 3. wait and download -------------------------------------------------------------
    def poll(self, active: Sequence[Item]) -> list[Item]:
        """Refresh the status of the items that are due; returns those that reached a final state.

        With many jobs waiting, one GET /jobs (the newest 100) refreshes them all at once, which
        keeps a big push inside the API's request rate; the rest get a GET /jobs/:id when due.
        """
        finished = []
        views: dict[str, dict[str, Any]] = {}
        if len(active) >= LIST_POLL_AT:
            listing = self.client.list_jobs(limit=100)
            views = {j.get("jobId"): j for j in listing.get("jobs") or [] if isinstance(j, dict)}
        now = clock()
        for item in active:
            view = views.get(item.job_id)
            if view is None:
                if item.due > now:
                    continue
                view = self.client.get_job(item.job_id)
            self.progress(item, view)
            item.status = state(view)
            if item.status in TERMINAL:
                if item.status not in DONE:
                    item.error = str(view.get("error") or item.status)
                finished.append(item)
            else:
                item.delay = min(POLL_MAX, item.delay * POLL_GROWTH)
                item.due = clock() + item.delay
        return finished

    def finish(self, item: Item) -> bool:
        """Fetch a finished job's result into out/<job>/. False: not ready yet (poll again)."""
        if item.status not in DONE:
            self.say(item, self.env.style(f"{item.status}: {item.error}", fg="red"))
            return True
        code, result = self.client.get_result(item.job_id)
        if code == 202:
            item.status, item.due = str(result.get("status") or "running"), clock() + item.delay
            return False
        folder = self.root / OUT_DIR / item.name
        text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        wanted = []
        for key, default in (("videoUrl", "video.mp4"), ("thumbnailUrl", "thumb.jpg")):
            url = result.get(key)
            if isinstance(url, str) and url:
                wanted.append((_file_name(url, default), url))
        names = [name for name, _ in wanted] + [RESULT]
        # Up to date: the same result, and the files this push's record says it downloaded
        # (their digests are kept, never taken from what is on disk now: a file edited
        # since must fail afx verify, not become the reference).
        before = self.previous.get(item.name) or {}
        known = before.get("files") if before.get("jobId") == item.job_id else None
        try:
            current = (folder / RESULT).read_text(encoding="utf-8") == text
        except OSError:
            current = False
        current = current and isinstance(known, dict) and all(
            isinstance(known.get(n), str) and (folder / n).is_file() for n in names)
        if current:
            item.digests = {n: known[n] for n in names}  # type: ignore[index]
        else:
            for name, url in wanted:
                self.client.download(url, folder / name)
            atomic_write(folder / RESULT, text)
            item.digests = {n: sha256_file(folder / n) for n in names}
        item.files = names
        where = f"{OUT_DIR}/{item.name}/"
        self.say(item, self.env.style(item.status, fg="green") +
                 (f" -> {where} ({', '.join(item.files)})" if not current else f"; {where} is up to date"))
        return True

    def wait_turn(self, item: Item, waiting: list[Item], why: str) -> None:
        item.status = "waiting"
        if item.shown != "waiting":
            item.shown = "waiting"
            self.say(item, f"waiting for a free slot ({why})")
        if item not in waiting:
            waiting.append(item)

    def try_submit(self, waiting: list[Item]) -> None:
        while waiting:
            item = waiting[0]
            try:
                self.submit(item)
            except _Busy:
                self.busy_until = clock() + self.busy_delay
                self.busy_delay = min(POLL_MAX, self.busy_delay * POLL_GROWTH)
                return
            except ApiError as exc:
                if _fatal(exc):
                    raise
                waiting.pop(0)
                self.failed_to_submit(item, exc)
                continue
            waiting.pop(0)
            item.due = clock() + item.delay
            self.save([item])

    def failed_to_submit(self, item: Item, exc: ApiError) -> None:
        item.error = exc.message
        if not item.job_id:  # else it exists (its schedule failed, say): keep its remote status
            item.status = "error"
        self.say(item, self.env.style(f"error: {exc.message}", fg="red"))

    def run(self, items: list[Item], timeout: float) -> None:
        deadline = clock() + timeout
        waiting: list[Item] = []
        for item in items:
            try:
                self.prepare(item)
                if not self.start(item, may_submit=not waiting):  # the server is full: wait in line
                    self.wait_turn(item, waiting, "the server is busy with this account's jobs")
                    continue
            except _Busy as busy:
                self.wait_turn(item, waiting, str(busy))
                self.busy_until = clock() + self.busy_delay
                continue
            except ApiError as exc:
                if _fatal(exc):
                    raise
                self.failed_to_submit(item, exc)
                continue
            item.due = clock() + item.delay
            self.save([item])
        if not self.wait:
            for item in waiting:
                item.status, item.error = "error", "not submitted: the server's limit of queued and running jobs " \
                                                   "is reached (push again later)"
            return
        for item in items:  # jobs found finished already
            if item.job_id and item.status in TERMINAL:
                self.finish(item)
                self.save([item])
        while True:
            active = [i for i in items if i.active]
            if not active and not waiting:
                break
            now = clock()
            if now >= deadline:
                for item in active + waiting:
                    item.error = f"timed out after {timeout:g}s ({item.status})"
                names = ", ".join(i.name for i in active + waiting)
                raise _Timeout(f"timed out after {timeout:g}s waiting for {names}")
            due = any(i.due <= now for i in active)
            freed = False
            for item in self.poll(active) if due else []:
                if self.finish(item):
                    freed = True
                    self.save([item])
            if waiting and (freed or clock() >= self.busy_until):
                self.try_submit(waiting)
            wake = [i.due for i in items if i.active] + ([self.busy_until] if waiting else [])
            pause = (min(wake) if wake else clock()) - clock()
            sleep(max(0.05, min(pause, deadline - clock(), POLL_MAX)))


class _Timeout(Exception):
    pass


def _fatal(exc: ApiError) -> bool:
    """Errors that would be the same for every job: stop at once."""
    return exc.status is None or exc.status in (401, 403, 429) or exc.status >= 500


def _file_name(url: str, default: str) -> str:
    from urllib.parse import unquote, urlsplit

    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    ok = name and not name.startswith(".") and name != RESULT and "/" not in name and "\\" not in name \
        and name.isprintable() and len(name) <= 100
    return name if ok else default


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def push(env: Environment, targets: Sequence[str], *, api_url: str | None = None, wait: bool = True,
         timeout: float = 3600.0) -> int:
    url, key = credentials(env, api_url)
    result, jobs = select(targets)
    started = clock()
    client = Client(url, key)
    pusher = Pusher(env, client, result.root, wait=wait)
    items = [Item(job) for job in jobs]
    timed_out = ""
    try:
        pusher.run(items, timeout)
    except _Timeout as exc:
        timed_out = str(exc)
    except KeyboardInterrupt:
        pusher.save(items)
        running = [i for i in items if i.active]
        env.error("afx: interrupted" + (f"; {len(running)} job(s) keep running on {pusher.api}: `afx push` again "
                                        "waits for them (afx.lock has their ids)" if running else ""))
        return int(ExitStatus.INTERRUPTED)
    finally:
        try:
            pusher.save(items)
        finally:
            client.close()
    errors = [i for i in items if i.error and i.status not in ("failed", "cancelled")]
    failed = [i for i in items if i.status in ("failed", "cancelled")]
    if env.json:
        env.emit_json({"api": pusher.api, "ok": not errors and not failed, "jobs": [i.to_dict() for i in items]})
    if timed_out:
        env.error(env.style("afx: error: ", fg="red", bold=True) + timed_out +
                  "\n  they keep running on the server; `afx push` again waits for them")
    elif errors or failed:
        env.error(env.style("afx: ", fg="red", bold=True) + f"{len(errors) + len(failed)} of {len(items)} "
                  f"job{'s' * (len(items) != 1)} did not complete")
        for item in errors + failed:
            env.error(f"  {item.name}: {item.error}")
    else:
        counts: dict[str, int] = {}
        for item in items:
            counts[item.status] = counts.get(item.status, 0) + 1
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        new = sum(i.new for i in items)
        env.info(f"{len(items)} job{'s' * (len(items) != 1)} on {pusher.api}: {states or 'none'} "
                 f"({new} submitted now) in {clock() - started:.1f}s")
    if errors or timed_out:
        return int(ExitStatus.REMOTE_ERROR)
    return int(ExitStatus.STAGE_FAILED if failed else ExitStatus.OK)
