"""`afx push`'s state machine: make the repo's jobs on an API and bring the results home.

Per selected job (matrices expand locally: one POST per combination):

1. Its local `file`, if any, is uploaded (POST /upload) with Idempotency-Key
   `afx-upload-<sha256>`; afx.lock remembers sha256 -> fileId per API, so an unchanged file
   is not sent again. A file the API's upload does not take is remuxed or transcoded first.
2. POST /jobs with job.to_api_body(file_ids) and the job's Idempotency-Key (afx/remote/items.py):
   pushing the same job twice creates nothing new, even without afx.lock. A spec's
   scheduledAt is then set with PATCH /jobs/:id/schedule.
3. afx.lock records the remote job per API (afx/remote/records.py). A later push finds it
   there and only waits for it; a job that failed or was cancelled remotely is submitted
   again (with a key of its own).
4. Unless `wait` is off: GET /jobs/:id with backoff (Polling: 0.5 s growing to 10 s) until
   complete, published, failed or cancelled; with many jobs waiting one GET /jobs serves
   them all. Then GET /jobs/:id/result into out/<job>/ (afx/remote/results.py).

A server that refuses a job for now (429 too_many_active_jobs) gets it again when one of
ours finishes, or after a backoff of its own. Errors that would be the same for every job
(no connection, 401, 403, a 429 of the rate limit, 5xx) stop the push at once: they raise.

A job with `clips` goes to afx serve as it is (the server makes its clip jobs); when it is
done, its clip jobs are followed and downloaded like the others, each into out/<job>-NN/.
For an API without clips, the job is made into its clip jobs here first (afx/remote/clips.py:
its stages up to its clips run locally, each clip is cut into a file of its own), and each
goes as an upload job `<job>-NN`.

Time is the injected `Clock`'s (deadlines and waits on its monotonic time, afx.lock's
stamps on its wall time); what happens is told to `on_event` (afx/remote/events.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afx import times
from afx.client import ApiError
from afx.digest import sha256_file
from afx.engine.lockfile import read_lock
from afx.errors import AfxError, UsageError
from afx.remote import events as ev
from afx.remote import records, results
from afx.remote.api import Api
from afx.remote.items import DONE, OUT_DIR, TERMINAL, Item, state

MAX_KEY_CHAIN = 100


@dataclass(frozen=True)
class Polling:
    start: float = 0.5  # seconds to a job's first poll, and to a full server's first retry
    growth: float = 1.5
    max: float = 10.0
    list_at: int = 4  # active jobs from which one GET /jobs replaces a GET per job


@dataclass
class Outcome:
    items: list[Item]
    timed_out: str = ""  # why the push stopped waiting, when it did

    @property
    def failed(self) -> list[Item]:
        """Remote jobs that ended failed or cancelled."""
        return [i for i in self.items if i.status in ("failed", "cancelled")]

    @property
    def errors(self) -> list[Item]:
        """Jobs an API error or the timeout left unfinished."""
        return [i for i in self.items if i.error and i.status not in ("failed", "cancelled")]


class Busy(Exception):
    """The server has too many of the account's jobs queued or running (a 429 without Retry-After)."""


def fatal(exc: ApiError) -> bool:
    """Errors that would be the same for every job: stop at once."""
    return exc.status is None or exc.status in (401, 403, 429) or exc.status >= 500


def _ignore(event: ev.Event) -> None:
    pass


class Pusher:
    def __init__(self, client: Api, root: Path, *, wait: bool, clock: times.Clock = times.SYSTEM,
                 polling: Polling = Polling(), on_event: Callable[[ev.Event], None] = _ignore,
                 config: Mapping[str, Any] | None = None) -> None:
        self.client, self.root, self.wait = client, root, wait
        self.config = dict(config or {})  # the repo's afx.yaml, for the stages a job with clips runs here
        self.items: list[Item] = []  # the push's items (run() keeps the caller's list here)
        self.clock, self.polling, self.emit = clock, polling, on_event
        self.api = client.api
        lock = read_lock(root)
        self.previous = records.remote_blocks(lock, self.api)
        self.uploads = records.uploads(lock, self.api)
        self.uploaded: dict[str, str] = {}  # sha256 -> fileId learned by this push
        self.forgotten: set[str] = set()
        self.busy_until = 0.0
        self.busy_delay = polling.start
        self._extensions: bool | None = None

    @property
    def extensions(self) -> bool:
        """Whether the API is an `afx serve`, which takes afx's extension fields."""
        if self._extensions is None:
            self._extensions = bool(self.client.afx_version())
        return self._extensions

    def now_iso(self) -> str:
        return times.iso(self.clock.time()) or ""

    def save(self, items: Sequence[Item]) -> None:
        records.save(self.root, self.api, items, uploaded=self.uploaded, forgotten=self.forgotten,
                     now=self.now_iso())

    # -- 0. jobs with clips, for an API without them ----------------------------------------
    def expand(self, items: list[Item]) -> None:
        """For an API that is not afx serve: each job with clips replaced, in `items`, by the
        upload jobs of its clips, made here (afx/remote/clips.py). A job whose stages fail here
        stays, failed; the others go on."""
        from afx.stages.clips import has_clips

        if not any(has_clips(i.job) for i in items) or self.extensions:
            return
        from afx.remote.clips import clip_jobs

        out: list[Item] = []
        for item in items:
            if not has_clips(item.job):
                out.append(item)
                continue
            try:
                out += [Item(job) for job in clip_jobs(item.job, self.root, self.config, self.emit)]
            except AfxError as exc:
                item.status, item.error = "failed", str(exc)
                self.emit(ev.Failed(item.name, "failed", str(exc)))
                out.append(item)
        items[:] = out

    def follow_clips(self, item: Item, result: Mapping[str, Any]) -> None:
        """An afx serve job with clips is done: its clip jobs (in its result) are followed
        from now on, as `<job>-NN`, each downloaded into out/<job>-NN/ when done."""
        from afx.stages.clips import clip_name

        known = {i.job_id for i in self.items if i.job_id}
        fields = {k: v for k, v in item.job.fields.items() if k != "clips"}
        added = []
        for clip in result.get("clips") or []:
            job_id, rank = (clip.get("jobId"), clip.get("rank")) if isinstance(clip, dict) else (None, None)
            if not isinstance(job_id, str) or not job_id or not isinstance(rank, int) or job_id in known:
                continue
            name = clip_name(item.name, rank)
            follower = Item(item.job.derive(name, {**fields, "name": name}), job_id=job_id, status="queued",
                            submitted=item.submitted)
            follower.delay, follower.due = self.polling.start, self.clock.monotonic()
            added.append(follower)
        if added:
            self.items.extend(added)
            self.emit(ev.Following(item.name, tuple(f.job_id for f in added)))

    # -- 1. upload and body ---------------------------------------------------------------
    def prepare(self, item: Item) -> None:
        job = item.job
        # To afx serve, afx's own fields go too (script, copy, render); to another API, only
        # the reference's POST /jobs fields.
        extensions = self.extensions
        dropped = job.local_only(extensions=extensions)
        if dropped:
            self.emit(ev.NotSent(item.name, tuple(dropped), extensions))
        file_ids = None
        if "file" in job.fields:
            path = job.local_path("file")
            if path is None or not path.is_file():
                raise UsageError(f"{job.source}: file {job['file']!r} is missing")
            item.file_sha = sha256_file(path)
            file_id = self.uploads.get(item.file_sha)
            item.file_remembered = file_id is not None
            if file_id is None:
                file_id = self.upload(item, self.sendable(item, path))
            file_ids = {job["file"]: file_id}
        item.set_body(job.to_api_body(file_ids, extensions=extensions))

    def sendable(self, item: Item, path: Path) -> Path:
        """The file as the API's upload takes it (MP4/MOV, at most 500 MB): remuxed or
        transcoded into .afx/push/ when needed (issue 12); UsageError when it cannot be."""
        # Imported here: only a push with a local file needs ffmpeg's wrappers.
        from afx.media.ffmpeg import MediaError
        from afx.media.normalize import for_upload

        try:
            sent, how = for_upload(path, self.root / ".afx" / "push" / item.file_sha[:16], item.job["file"])
        except MediaError as exc:
            raise UsageError(f"{item.job.source}: file: {exc}") from None
        if how:
            self.emit(ev.Converted(item.name, item.job["file"], how))
        return sent

    def upload(self, item: Item, path: Path) -> str:
        self.emit(ev.Uploading(item.name, item.job["file"], path.stat().st_size))
        answer = self.client.upload(path, idempotency_key=f"afx-upload-{item.file_sha}")
        file_id = answer.get("fileId")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(f"POST /upload: the answer has no fileId: {json.dumps(answer)[:200]}", method="POST",
                           path="/upload")
        self.uploads[item.file_sha] = self.uploaded[item.file_sha] = file_id
        self.forgotten.discard(item.file_sha)
        self.emit(ev.Uploaded(item.name, item.job["file"], file_id, self.client.replayed))
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
                self.emit(ev.Resubmitting(item.name, before["jobId"], ""))
            else:
                if view.get("status") not in ("failed", "cancelled"):
                    item.job_id, item.submitted = before["jobId"], before.get("submitted") or ""
                    item.status = state(view)
                    self.emit(ev.Found(item.name, item.job_id, item.status, item.submitted))
                    at = item.job.get("scheduledAt")
                    if at and item.status not in TERMINAL - {"complete"} and view.get("scheduledAt") != at:
                        self.schedule(item, at)  # a PATCH that did not happen last time
                    return True
                self.emit(ev.Resubmitting(item.name, before["jobId"], str(view.get("status"))))
                item.retry_of = before["jobId"]
        if not may_submit:
            return False
        self.submit(item)
        return True

    def schedule(self, item: Item, at: str) -> None:
        self.client.schedule(item.job_id, at)
        self.emit(ev.Scheduled(item.name, at))

    def submit(self, item: Item) -> None:
        assert item.body is not None
        base = item.base_key()
        refreshed = False
        while True:
            key = item.key_form(base)
            try:
                answer = self.client.submit_job(item.body, idempotency_key=key)
            except ApiError as exc:
                if exc.replayed and exc.status in (402, 429) and item.chain < MAX_KEY_CHAIN:
                    item.chain += 1  # that key's first use was refused, so it made nothing
                    continue
                if exc.status == 429 and exc.code == "too_many_active_jobs":
                    item.chain += 1  # the server stores this refusal under the key
                    raise Busy(exc.detail) from None
                if exc.status == 422 and exc.field("fileId") and item.file_remembered and not refreshed:
                    # A fileId from afx.lock this account (or server) does not know: upload again.
                    self.emit(ev.FileUnknown(item.name, str(item.body.get("fileId"))))
                    self.uploads.pop(item.file_sha, None)
                    self.forgotten.add(item.file_sha)
                    self.prepare(item)
                    base, refreshed, item.chain = item.base_key(), True, 0
                    continue
                raise
            break
        item.key = key
        item.job_id = str(answer.get("jobId") or "")
        if not item.job_id:
            raise ApiError(f"POST /jobs: the answer has no jobId: {json.dumps(answer)[:200]}", method="POST",
                           path="/v1/jobs")
        item.status = str(answer.get("status") or "queued")
        item.new, item.submitted = not self.client.replayed, self.now_iso()
        cost = answer.get("creditCost")
        self.emit(ev.Submitted(item.name, item.job_id, item.status, item.new,
                               cost if isinstance(cost, int) else None, answer.get("balance")))
        at = item.job.get("scheduledAt")
        if at:
            self.schedule(item, at)

    def failed_to_submit(self, item: Item, exc: ApiError) -> None:
        item.error = exc.message
        if not item.job_id:  # else it exists (its schedule failed, say): keep its remote status
            item.status = "error"
        self.emit(ev.NotSubmitted(item.name, exc.message))

    def wait_turn(self, item: Item, waiting: list[Item], why: str) -> None:
        item.status = "waiting"
        self.emit(ev.Waiting(item.name, why))
        if item not in waiting:
            waiting.append(item)

    def try_submit(self, waiting: list[Item]) -> None:
        """Submit the jobs waiting for a slot, in order, until the server is full again."""
        while waiting:
            item = waiting[0]
            try:
                self.submit(item)
            except Busy:
                self.busy_until = self.clock.monotonic() + self.busy_delay
                self.busy_delay = min(self.polling.max, self.busy_delay * self.polling.growth)
                return
            except ApiError as exc:
                if fatal(exc):
                    raise
                waiting.pop(0)
                self.failed_to_submit(item, exc)
                continue
            waiting.pop(0)
            item.due = self.clock.monotonic() + item.delay
            self.save([item])

    # -- 3. wait and download -------------------------------------------------------------
    def poll(self, active: Sequence[Item]) -> list[Item]:
        """Refresh the status of the items that are due; returns those that reached a final state.

        With many jobs waiting, one GET /jobs (the newest 100) refreshes them all at once, which
        keeps a big push inside the API's request rate; the rest get a GET /jobs/:id when due.
        """
        finished = []
        views: dict[Any, dict[str, Any]] = {}  # by jobId, as the listing gives it
        if len(active) >= self.polling.list_at:
            listing = self.client.list_jobs(limit=100)
            views = {j.get("jobId"): j for j in listing.get("jobs") or [] if isinstance(j, dict)}
        now = self.clock.monotonic()
        for item in active:
            view = views.get(item.job_id)
            if view is None:
                if item.due > now:
                    continue
                view = self.client.get_job(item.job_id)
            item.status = state(view)
            if item.status in TERMINAL:
                if item.status not in DONE:
                    item.error = str(view.get("error") or item.status)
                finished.append(item)
                continue
            item.delay = min(self.polling.max, item.delay * self.polling.growth)
            item.due = self.clock.monotonic() + item.delay
            running = view.get("stage") and "running" in (view.get("status"), view.get("publishing"))
            pct = view.get("progress")
            self.emit(ev.Progress(item.name, item.status, str(view["stage"]) if running else "",
                                  float(pct) if isinstance(pct, (int, float)) else None, item.delay))
        return finished

    def finish(self, item: Item) -> bool:
        """Fetch a finished job's result into out/<job>/. False: not ready yet (poll again)."""
        if item.status not in DONE:
            self.emit(ev.Failed(item.name, item.status, item.error))
            return True
        code, result = self.client.get_result(item.job_id)
        if code == 202:
            item.status, item.due = str(result.get("status") or "running"), self.clock.monotonic() + item.delay
            return False
        current = results.download(self.client, self.root, item, result, self.previous.get(item.name))
        self.emit(ev.Downloaded(item.name, item.status, f"{OUT_DIR}/{item.name}/", tuple(item.files), current))
        if self.extensions and isinstance(result.get("clips"), list) and not result.get("videoUrl"):
            self.follow_clips(item, result)  # (its result is its clips: theirs are to come)
        return True

    # -- the whole push ---------------------------------------------------------------------
    def run(self, items: list[Item], timeout: float) -> Outcome:
        """Submit every item, then (when waiting) follow them to the end or for `timeout`
        seconds of the clock's. API errors that concern every job raise; KeyboardInterrupt
        passes through (save() then keeps what was learned)."""
        self.items = items
        self.expand(items)  # (the work done here for jobs with clips is not waiting: not timed)
        deadline = self.clock.monotonic() + timeout
        for item in items:
            item.delay = self.polling.start
        waiting = self.submit_all(items)
        if not self.wait:
            for item in waiting:
                item.status, item.error = "error", "not submitted: the server's limit of queued and running jobs " \
                                                   "is reached (push again later)"
            return Outcome(items)
        for item in items:  # jobs found finished already
            if item.job_id and item.status in TERMINAL:
                self.finish(item)
                self.save([item])
        return self.follow(items, waiting, deadline, timeout)

    def submit_all(self, items: list[Item]) -> list[Item]:
        """Prepare and submit (or find) each item; returns those waiting for a free slot."""
        waiting: list[Item] = []
        for item in items:
            if item.status == "failed":  # (a job with clips whose stages failed here)
                continue
            try:
                self.prepare(item)
                if not self.start(item, may_submit=not waiting):  # the server is full: wait in line
                    self.wait_turn(item, waiting, "the server is busy with this account's jobs")
                    continue
            except Busy as busy:
                self.wait_turn(item, waiting, str(busy))
                self.busy_until = self.clock.monotonic() + self.busy_delay
                continue
            except ApiError as exc:
                if fatal(exc):
                    raise
                self.failed_to_submit(item, exc)
                continue
            item.due = self.clock.monotonic() + item.delay
            self.save([item])
        return waiting

    def follow(self, items: list[Item], waiting: list[Item], deadline: float, timeout: float) -> Outcome:
        """Poll the active items and submit the waiting ones as slots free, until none is left."""
        clock = self.clock
        while True:
            active = [i for i in items if i.active]
            if not active and not waiting:
                return Outcome(items)
            now = clock.monotonic()
            if now >= deadline:
                for item in active + waiting:
                    item.error = f"timed out after {timeout:g}s ({item.status})"
                names = ", ".join(i.name for i in active + waiting)
                return Outcome(items, timed_out=f"timed out after {timeout:g}s waiting for {names}")
            due = any(i.due <= now for i in active)
            freed = False
            for item in self.poll(active) if due else []:
                if self.finish(item):
                    freed = True
                    self.save([item])
            if waiting and (freed or clock.monotonic() >= self.busy_until):
                self.try_submit(waiting)
            wake = [i.due for i in items if i.active] + ([self.busy_until] if waiting else [])
            pause = (min(wake) if wake else clock.monotonic()) - clock.monotonic()
            clock.sleep(max(0.05, min(pause, deadline - clock.monotonic(), self.polling.max)))
