"""Stage 5, publish: per-platform publish records, through the ledger (issue 6).

Never cached blindly: the stage's fingerprint includes the ledger's state for the job and
whether its scheduled time has come, so approving, requesting, rescheduling or the clock
passing scheduledAt makes it run again; the ledger makes running it again harmless.

Per platform: `staging: true` and not approved -> staged; publishMode manual and not
requested (`afx publish JOB`) -> manual; scheduled and the time (afx schedule, else
scheduledAt) not yet come -> scheduled; otherwise published through the platform's
publisher (afx.yaml `publish.<platform>`: outbox by default), once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx import times
from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job, thaw

if TYPE_CHECKING:
    from afx.publish.ledger import Ledger

log = logging.getLogger("afx.publish")


def schedule_of(job: Job, controls: Mapping[str, Any]) -> str | None:
    """The publish time in force: `afx schedule` (or the API's PATCH) wins over the spec."""
    if controls.get("schedule_set"):
        return controls.get("schedule")
    return job.get("scheduledAt")


def decide(job: Job, controls: Mapping[str, Any], now: float) -> tuple[str, str | None]:
    """('publish' | 'staged' | 'manual' | 'scheduled' | 'unscheduled', the schedule)."""
    at = schedule_of(job, controls)
    if job.get("staging") and not controls.get("approved_at"):
        return "staged", at
    mode = job.get("publishMode", "immediate")
    if controls.get("requested_at"):
        return "publish", at
    if mode == "manual":
        return "manual", at
    if mode == "scheduled" or (controls.get("schedule_set") and at):
        ts = times.timestamp(at)
        if ts is None:
            return "unscheduled", None
        return ("publish" if now >= ts else "scheduled"), at
    return "publish", at


class PublishStage:
    name = "publish"
    version = "4"
    after: tuple[str, ...] = ("render", "package")

    def begin_run(self) -> None:
        """A new run: the repo's jobs are read again when needed (the engine calls this)."""
        _CONTENTS.clear()

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "platforms", "publishMode", "staging", "scheduledAt", "format")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def settings(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"publish": thaw(config.get("publish") or {})}

    def state(self, job: Job) -> Mapping[str, Any]:
        # Read-only, and once per run for all jobs (planning must not create files, and a
        # 200-job plan must not open the ledger 200 times).
        from afx.publish.ledger import Ledger

        controls = _controls_cache(job.root).get(job.name) or {
            "approved_at": None, "requested_at": None, "schedule": None, "schedule_set": 0, "republish_at": None}
        status, _ = decide(job, controls, time.time())
        # Publishing is per job, not per content: two jobs (or two accounts of afx serve)
        # with equal inputs share every other stage, but each publishes, into its own ledger.
        return {"ledger": Ledger.token_of(controls), "decision": status, "job": job.name, "repo": str(job.root)}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.engine.lockfile import retire_published
        from afx.publish.base import PublishError
        from afx.publish.ledger import Ledger

        job = ctx.job
        render, package = ctx.inputs["render"], ctx.inputs["package"]
        results, errors = [], []
        with Ledger(job.root) as ledger:
            controls = ledger.controls(job.name)
            status, at = decide(job, controls, time.time())
            repo = _Repo(job, _lock(job.root))
            remembered = _published_in(repo.lock["jobs"], job.name)
            for platform in job.get("platforms", ()):
                row = ledger.row(job.name, platform)
                kept = remembered.get(platform)
                if row and row["state"] == "published" and repo.moved(row, ledger, platform):
                    # This name's post is another job's now (see _Repo.moved): this job is new
                    # here. The post is kept, retired, for the job with its content.
                    ledger.retire_row(job.name, platform)
                    row = None
                if kept and repo.moved(kept, ledger, platform):
                    retire_published(job.root, job.name, platform)
                    remembered.pop(platform)
                elif (not row or row["state"] != "published") and kept:
                    # afx.lock (from git) says it went out; this ledger did not know (a fresh
                    # clone, a CI runner, a deleted .afx/): never a second time.
                    row = ledger.adopt(job.name, platform, kept, "afx.lock")
                if row and row["state"] == "published" and status == "publish" and _asked_again(controls, row) \
                        and older(row, repo.content, _video(render, platform)[1]):
                    row = self._supersede(job, ledger, row, remembered.get(platform), repo.content)
                if row and row["state"] == "published":
                    result = _result(platform, row)
                    kept = remembered.get(platform)
                    if (not kept or (not kept.get("content") and row.get("content"))) \
                            and row.get("remote_id") not in repo.superseded:
                        # published here before afx.lock kept them (or kept what they were made from)
                        _remember(job, result, row)
                    results.append(result)
                    continue
                if status != "publish":
                    results.append({"platform": platform, "status": status, "scheduledAt": at})
                    continue
                if not ctx.config.get("publishEveryJob"):
                    earlier = repo.published_elsewhere(ledger, platform)
                    if earlier is not None:
                        # A renamed job: the same content went out under its old name. (Two jobs
                        # of the repo with the same content each publish: both were asked for.)
                        other, record = earlier
                        row = ledger.adopt(job.name, platform, record, f"job {other}") or {}
                        log.warning("%s: %s: this was already published as job %r (%s), since renamed or removed; "
                                    "recorded as published, not posted again", job.name, platform, other,
                                    record.get("url") or record.get("remoteId"))
                        result = _result(platform, row)
                        _remember(job, result, row)
                        results.append(result)
                        continue
                try:
                    results.append(self._publish(ctx, ledger, platform, render, package, repo.content))
                except (PublishError, OSError, ValueError) as exc:
                    message = (exc.message + (f" ({exc.hint})" if exc.hint else "")
                               if isinstance(exc, PublishError) else str(exc))
                    errors.append(f"{platform}: {message}")
                    results.append({"platform": platform, "status": "failed", "error": message})
            if status == "publish" and controls.get("republish_at"):
                # acted on: a superseded post that failed is an unpublished row now, retried as any
                ledger.republished(job.name, controls["republish_at"])
        ctx.output("publish.json", export="publish.json").write_text(json.dumps(results, indent=2) + "\n")
        if errors:
            raise StageError("publishing failed: " + "; ".join(errors))
        return {"results": results, "decision": status}

    @staticmethod
    def _supersede(job: Job, ledger: Ledger, row: dict[str, Any], kept: Mapping[str, Any] | None,
                   content: str) -> dict[str, Any] | None:
        """`afx publish --again` and the post is of an older version: afx.lock forgets it
        first (so it cannot come back from there), then the ledger. None: publish anew."""
        from afx.engine.lockfile import forget_published

        platform = row["platform"]
        if kept and kept.get("content") == content:  # a clone posted this version already
            ledger.supersede(job.name, platform)
            return ledger.adopt(job.name, platform, dict(kept), "afx.lock")
        forget_published(job.root, job.name, platform)
        ledger.supersede(job.name, platform)
        if row.get("publisher") == "outbox":
            log.warning("%s: %s: the outbox folder gets the new version", job.name, platform)
        else:
            log.warning("%s: %s: publishing the new version as a new post; the earlier post (%s) stays up: "
                        "remove it there if it should go", job.name, platform, row.get("url") or row.get("remote_id"))
        return None

    def _publish(self, ctx: StageContext, ledger: Ledger, platform: str, render: Any, package: Any,
                 content: str) -> dict:
        from afx.publish.base import Item, PublishError
        from afx.publish.publishers import for_platform

        job = ctx.job
        video, digest = _video(render, platform)
        publisher = for_platform(platform, ctx.config)
        row = ledger.claim(job.name, platform, publisher.name, digest, content)
        if row is None:
            return {"platform": platform, "status": "in progress", "error": "another afx is publishing it"}
        if row["state"] == "published":
            return _result(platform, row)
        copy = dict((package.meta.get("copy") or {}).get(platform) or package.meta.get("publishCopy") or {})
        item = Item(job=job.name, platform=platform, video=video,
                    thumbnail=package.path("thumb.jpg") if "thumb.jpg" in package.files else None,
                    copy=copy, digest=digest, seconds=float(render.meta.get("seconds", 0.0)),
                    format=job.get("format", "short"), root=job.root, config=ctx.config)
        session = dict(row.get("session") or {})

        def save(s: dict) -> None:
            ledger.save(job.name, platform, state="uploading", session=s, event="progress")

        ledger.save(job.name, platform, state="uploading", event="attempt")
        try:
            done = publisher.publish(item, session, save)
        except PublishError as exc:
            ledger.save(job.name, platform, state="failed", error=exc.message, event="failed")
            ledger.release(job.name, platform)
            raise
        ledger.save(job.name, platform, state="published", remote_id=done.remote_id, url=done.url, event="published")
        ledger.release(job.name, platform)
        row = ledger.row(job.name, platform) or {}
        result = _result(platform, row)
        _remember(job, result, row)  # at once: a later platform's failure must not lose it
        return result


_CONTROLS: dict[Path, tuple[list, dict]] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is written (mtime alone moves in clock ticks: two writes in
    one tick look the same), or None when it is not there."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _controls_cache(root: Path) -> dict[str, dict[str, Any]]:
    """Controls of every job, re-read when the ledger file changed (its mtime)."""
    from afx.publish.ledger import ledger_path, read_controls

    path = ledger_path(root)
    stamp = [_stamp(path), _stamp(path.with_name(path.name + "-wal"))]
    hit = _CONTROLS.get(root)
    if hit is None or hit[0] != stamp:
        hit = _CONTROLS[root] = (stamp, read_controls(root))
    return hit[1]


PUBLISH_ONLY = frozenset({"name", "platforms", "publishMode", "staging", "scheduledAt"})


def content_digest(job: Job, file_digest: Callable[[Path], str] | None = None) -> str:
    """What a post is made from: the job's resolved fields but its name and publish settings,
    and the content of its local files. Equal for a renamed job and on every clone (a video's
    own bytes are not: the neural voice is not bit-for-bit repeatable)."""
    from afx.engine.store import digest_of
    from afx.spec.resolve import PATH_FIELDS

    fields = {k: v for k, v in thaw(job.fields).items() if k not in PUBLISH_ONLY}
    for at in PATH_FIELDS:  # a path's text changes when a spec moves; the file's content counts
        parent = fields
        for key in at[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None  # type: ignore[assignment]
        if isinstance(parent, dict):
            parent.pop(at[-1], None)
    files = {"/".join(map(str, at)): (file_digest or _file_sha256)(path)
             for at, path in sorted(job.paths.items(), key=lambda kv: tuple(map(str, kv[0]))) if path.is_file()}
    return digest_of({"fields": fields, "files": files})


_HASHED: dict[tuple[str, tuple | None], str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by its stat for the life of the process."""
    from afx.engine.store import sha256_file

    key = (str(path), _stamp(path))
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def older(row: Mapping[str, Any], content: str, video: str | None = None) -> bool:
    """Whether a published row is of another version of the job than `content`. A row from
    before afx kept `content` is older unless its video is this very file."""
    if row.get("content"):
        return row["content"] != content
    return not (video and row.get("video_digest") == video)


def _asked_again(controls: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """`afx publish --again` came after this post."""
    again = controls.get("republish_at")
    return bool(again) and (row.get("published_at") or 0) < again


_LOCKS: dict[Path, tuple[tuple | None, dict[str, Any]]] = {}


def _lock(root: Path) -> dict[str, Any]:
    """afx.lock, read only when it changed (a 200-job afx.lock is half a megabyte: 200
    publish stages must not parse it 200 times). Not to be modified. One that cannot be
    read (say, git's conflict markers in it) stops the publish: it may be all that knows a
    job went out already."""
    from afx.engine.lockfile import LOCK_NAME, LockFileError, read_lock

    stamp = _stamp(root / LOCK_NAME)
    hit = _LOCKS.get(root)
    if hit is not None and stamp and hit[0] == stamp:
        return hit[1]
    try:
        data = read_lock(root)
        _LOCKS[root] = (stamp, data)
        return data
    except (LockFileError, OSError) as exc:
        raise StageError(f"not publishing: {exc}", hint="afx.lock remembers what was published; "
                         "restore it (resolve the conflict) before publishing") from None


def _published_in(lock_jobs: Mapping[str, Any], job: str) -> dict[str, dict[str, Any]]:
    """afx.lock's record of where `job` was published, by platform: the well-formed records
    only (a hand edit cannot put a bad time or a control character into the ledger)."""
    block = lock_jobs.get(job)
    published = block.get("published") if isinstance(block, dict) else None
    if not isinstance(published, dict):
        return {}
    out = {}
    for platform, record in published.items():
        if isinstance(record, dict):
            clean = _clean_record(record)
            if clean.get("remoteId") or clean.get("url"):
                out[str(platform)] = clean
    return out


class _Repo:
    """What one publish-stage run knows of the spec repo and afx.lock, each part read when
    first needed: the job's content, other current jobs' content, afx.lock's retired and
    superseded posts."""

    def __init__(self, job: Job, lock: Mapping[str, Any]) -> None:
        self.job, self.lock = job, lock
        self._content: str | None = None
        self._contents: dict[str, str] | None = None
        retired = lock.get("retired") if isinstance(lock.get("retired"), list) else []
        self.retired = [(str(e.get("job")), _clean_record(e), str(e.get("platform")))
                        for e in retired if isinstance(e, dict)]
        block = lock["jobs"].get(job.name)
        superseded = block.get("superseded") if isinstance(block, dict) else None
        self.superseded = {str(x) for x in superseded} if isinstance(superseded, list) else set()

    @property
    def content(self) -> str:
        if self._content is None:
            self._content = content_digest(self.job)
        return self._content

    def content_of(self, name: str) -> str | None:
        """The content of the repo's current job `name` (None: no such job now)."""
        if name == self.job.name:
            return self.content
        return self.contents().get(name)

    def contents(self) -> dict[str, str]:
        """Every current job of the repo -> its content."""
        if self._contents is None:
            self._contents = _current_contents(self.job.root)
        return self._contents

    def moved(self, record: Mapping[str, Any], ledger: Ledger, platform: str) -> bool:
        """Whether a post recorded under this job's name is not this job's now:
        - afx.lock (another clone's full run) retired it under this name, and this job's
          content is not its content (the name taken by a new job); or
        - this job's content changed, another current job has the post's content (and no
          post of that content but this one), and a post of this job's content is there
          for it to take: two jobs swapped names.
        Otherwise a job edited since its post keeps it: an older version, for --again (a
        job renamed away and its name reused in the same change is one such)."""
        remote = record.get("remote_id") or record.get("remoteId")
        theirs = record.get("content")
        if not remote or not self.retired and not theirs:
            return False
        if any(name == self.job.name and r.get("remoteId") == remote and r.get("content") == theirs
               for name, r, _ in self.retired):
            return theirs != self.content
        if not theirs or theirs == self.content:
            return False
        for name, content in self.contents().items():
            if name != self.job.name and content == theirs:
                row = ledger.row(name, platform)
                if not (row and row["state"] == "published" and row.get("content") == theirs
                        and (row.get("remote_id") or row.get("url")) != remote):
                    return self.published_elsewhere(ledger, platform) is not None
        return False

    def published_elsewhere(self, ledger: Ledger, platform: str) -> tuple[str, dict[str, Any]] | None:
        """(old job name, record) of a post of this job's content on `platform` by a job that
        is no longer a job with that content (renamed or removed): in this ledger (retired
        rows too), in afx.lock's jobs, or in its retired records."""
        content = self.content
        found = [(row["job"], {"publisher": row["publisher"], "remoteId": row["remote_id"], "url": row["url"],
                               "publishedAt": times.iso(row["published_at"]), "video": row["video_digest"],
                               "content": content})
                 for row in ledger.published_content(platform, content, besides=self.job.name)]
        for other in sorted(self.lock["jobs"]):
            if other != self.job.name:
                record = _published_in(self.lock["jobs"], other).get(platform)
                if record and record.get("content") == content:
                    found.append((other, record))
        for name, record, where in self.retired:
            if where == platform and record.get("content") == content and (record.get("remoteId") or record.get("url")):
                found.append((f"{name}#retired-", record))
        for other, record in found:
            name = other.split("#retired-")[0]
            if other != name or name == self.job.name or self.content_of(name) != content:
                return name, record  # not a current job with this content: the post is free to take
        return None


_CONTENTS: dict[Path, dict[str, str]] = {}


def _current_contents(root: Path) -> dict[str, str]:
    """Every current job of the spec repo -> its content, read once per run (begin_run): an
    edit to 200 published jobs reruns 200 publish stages, and resolves the repo once."""
    from afx.spec.resolve import resolve

    if root not in _CONTENTS:
        found = resolve([], cwd=root)
        if not found.ok:
            raise StageError("not publishing: the specs cannot be read to tell whether another job "
                             "published this one's content", hint="afx validate")
        _CONTENTS[root] = {j.name: content_digest(j) for j in found.jobs}
    return _CONTENTS[root]


def _clean_record(record: Mapping[str, Any]) -> dict[str, Any]:
    def text(value: Any, limit: int = 2000) -> str | None:
        if not isinstance(value, str) or not value or len(value) > limit:
            return None
        return value if all(c.isprintable() for c in value) else None

    url = text(record.get("url"))
    if url and re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url) and not url.lower().startswith(("http://", "https://")):
        url = None  # a web address or a path (the outbox's), never javascript: and the like
    at = times.timestamp(text(record.get("publishedAt"), 40))
    if at is not None and not (946684800 <= at <= time.time() + 86400):  # 2000-01-01 .. tomorrow
        at = None
    def sha(value: Any) -> str | None:
        return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else None

    return {"publisher": text(record.get("publisher"), 40), "remoteId": text(record.get("remoteId")), "url": url,
            "publishedAt": times.iso(at) if at else None, "video": sha(record.get("video")),
            "content": sha(record.get("content"))}


def _remember(job: Job, result: Mapping[str, Any], row: Mapping[str, Any]) -> None:
    from afx.engine.lockfile import record_published

    record = {k: result.get(k) for k in ("publisher", "remoteId", "url", "publishedAt")}
    for key, column in (("content", "content"), ("video", "video_digest")):
        if row.get(column):  # what the post was made from: a renamed job is known by it
            record[key] = row[column]
    record_published(job.root, job.name, str(result["platform"]), record)


def _video(render: Any, platform: str) -> tuple[Path, str]:
    """The rendered file that goes to `platform`, and its sha256."""
    name = "video.mp4"
    for candidate, info in (render.meta.get("outputs") or {}).items():
        if any(p.startswith(platform) for p in info.get("profiles", [])):
            name = candidate
            break
    video = render.path(name)
    return video, video.parent.name + video.name  # stored objects are named by their sha256


def _result(platform: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"platform": platform, "status": row.get("state"), "publisher": row.get("publisher"),
            "remoteId": row.get("remote_id"), "url": row.get("url"), "publishedAt": times.iso(row.get("published_at"))}
