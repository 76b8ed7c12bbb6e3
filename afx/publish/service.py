"""One spec repo's publishing: its ledger, its publish records, and the publishers (issue 6).

`PublishService(root)` is what the publish stage calls to publish a built job, what `afx
publish` / `approve` / `schedule` and the server use to read and change a job's publish
controls, and what a full `afx run` calls to retire jobs gone from the specs. It writes the
ledger (the repo's `.afx/ledger.sqlite`, or the shared database its Location names:
afx.publish.location) and calls publishers; it never writes afx.lock: what afx.lock
must remember (where a job went, a post replaced or retired) goes to the `remember`
callback, and the engine writes it when the job ends.

Per platform, in order (see `publish`):
1. a post recorded under this job's name that is another job's now (renamed, swapped) is
   retired from the ledger or afx.lock;
2. a post afx.lock knows of (from git: a fresh clone, a CI runner, a deleted .afx/) and the
   ledger does not is adopted, never posted a second time;
3. `afx publish --again` on a post of an older version supersedes it;
4. a published row is reported as it is; a job not due (staged, manual, scheduled) says so;
5. the same content published under a job's old name (a renamed job) is adopted;
6. otherwise the platform's publisher posts it, once (the ledger's claim).

The caches (the ledger's controls, the current jobs' contents, file digests) live as long
as the service: one run (the publish stage makes a new service when a run begins).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx import times
from afx.digest import sha256_file
from afx.errors import StageError
from afx.publish import policy
from afx.publish.location import Location, locate, read_controls
from afx.spec.job import Job

if TYPE_CHECKING:  # (imported when a ledger is opened: planning reads without SQLAlchemy)
    from afx.publish.ledger import Ledger

log = logging.getLogger("afx.publish")

# (op, platform, record): what afx.lock must remember; op is "published", "forget" or "retire"
Remember = Callable[[str, str, Mapping[str, Any] | None], None]
_EARLIEST = 946684800  # 2000-01-01: a publish time before it (or after tomorrow) is not believed


class PublishService:
    def __init__(self, root: Path, file_digest: Callable[[Path], str] | None = None,
                 location: Location | None = None) -> None:
        """file_digest: how to hash a job's local files (afx jobs passes the store's, which
        remembers digests across runs); by default, sha256 remembered for the service's life.
        location: the ledger (afx.publish.location.locate); by default the repo's own file."""
        self.root = Path(root)
        self.location = location or Location(self.root)
        self._file_digest = file_digest
        self._controls: tuple[list[Any], dict[str, dict[str, Any]]] | None = None
        self._ledger_files: tuple[str, str] | None = None
        self._contents: dict[str, str] | None = None
        self._hashed: dict[tuple[str, tuple[int, int, int] | None], str] = {}

    @classmethod
    def for_repo(cls, root: Path, config: Mapping[str, Any] | None,
                 file_digest: Callable[[Path], str] | None = None) -> PublishService:
        """The service of the repo at `root` on the ledger its config (afx.yaml) and
        AFX_LEDGER_URL name."""
        return cls(root, file_digest, locate(root, config))

    # -- reading ------------------------------------------------------------------------
    def controls(self, job: str, recheck: bool = True) -> dict[str, Any]:
        """A job's publish controls, read without writing (planning must not create files),
        once for all jobs and again only when the ledger changed (recheck=False: as last
        read, when they have been read)."""
        if not recheck and self._controls is not None:
            return self._controls[1].get(job) or dict(policy.NO_CONTROLS)
        if self.location.shared:
            with self.ledger() as ledger:
                stamp: list[Any] = list(ledger.stamp())
                if self._controls is None or self._controls[0] != stamp:
                    self._controls = (stamp, ledger.all_controls())
        else:
            if self._ledger_files is None:  # (asked for every job of a run: no pathlib each time)
                path = str(self.location.path)
                self._ledger_files = (path, path + "-wal")
            stamp = [_stamp(self._ledger_files[0]), _stamp(self._ledger_files[1])]
            if self._controls is None or self._controls[0] != stamp:
                self._controls = (stamp, read_controls(self.location))
        return self._controls[1].get(job) or dict(policy.NO_CONTROLS)

    def state(self, job: Job, now: float, recheck: bool = True) -> dict[str, Any]:
        """What the publish stage's key includes: a change to the job's controls, or the
        clock passing its time, makes it run again."""
        controls = self.controls(job.name, recheck)
        status, _ = policy.decide(job, controls, now)
        # Publishing is per job, not per content: two jobs (or two accounts of afx serve)
        # with equal inputs share every other stage, but each publishes, into its own ledger.
        return {"ledger": policy.ledger_token(controls), "decision": status, "job": job.name, "repo": str(self.root)}

    def ledger(self) -> Ledger:
        from afx.publish.ledger import Ledger

        return Ledger(self.location)

    def _has_ledger(self) -> bool:
        """Whether there is a ledger to read (a repo that never published has no file)."""
        return self.location.shared or self.location.path.exists()

    def content(self, job: Job) -> str:
        return policy.content_digest(job, self.file_digest)

    def file_digest(self, path: Path) -> str:
        """sha256 of a file, remembered by its stat for the life of the service."""
        if self._file_digest is not None:
            return self._file_digest(path)
        key = (str(path), _stamp(path))
        if key not in self._hashed:
            self._hashed[key] = sha256_file(path)
        return self._hashed[key]

    def contents(self) -> dict[str, str]:
        """Every current job of the spec repo -> its content, resolved once per service: an
        edit to 200 published jobs reruns 200 publish stages, and resolves the repo once."""
        if self._contents is None:
            from afx.spec.resolve import resolve

            found = resolve([], cwd=self.root)
            if not found.ok:
                raise StageError("not publishing: the specs cannot be read to tell whether another job "
                                 "published this one's content", hint="afx validate")
            self._contents = {j.name: self.content(j) for j in found.jobs}
        return self._contents

    # -- publishing ---------------------------------------------------------------------
    def publish(self, job: Job, video: Callable[[str], tuple[Path, str]], make_item: Callable[..., Any],
                lock: Mapping[str, Any], config: Mapping[str, Any], remember: Remember,
                results: list[dict[str, Any]]) -> tuple[str, list[str]]:
        """Publish `job` where it is due; returns (decision, errors). `results` gets each
        platform's result as it is known, so a caller has them even if a later one raises.
        `video(platform)` is the rendered file for a platform and its digest; `make_item`
        builds the publisher's Item; `lock` is afx.lock as the run sees it."""
        errors: list[str] = []
        with self.ledger() as ledger:
            controls = ledger.controls(job.name)
            status, at = policy.decide(job, controls, time.time())
            repo = _Repo(self, job, lock)
            remembered = published_in(repo.lock["jobs"], job.name)
            for platform in job.get("platforms", ()):
                result = self._platform(job, platform, ledger, controls, status, at, repo, remembered,
                                        video, make_item, config, remember)
                results.append(result)
                if result.get("status") == "failed":
                    errors.append(f"{platform}: {result['error']}")
            if status == "publish" and controls.get("republish_at"):
                # acted on: a superseded post that failed is an unpublished row now, retried as any
                ledger.republished(job.name, controls["republish_at"])
        return status, errors

    def _platform(self, job: Job, platform: str, ledger: Ledger, controls: Mapping[str, Any], status: str,
                  at: str | None, repo: _Repo, remembered: dict[str, dict[str, Any]],
                  video: Callable[[str], tuple[Path, str]], make_item: Callable[..., Any],
                  config: Mapping[str, Any], remember: Remember) -> dict[str, Any]:
        # Steps 1-6 of the module docstring, for one platform: each may end it. Kept in one
        # function (over 60 lines) because the order of the checks is the whole policy.
        from afx.publish.base import PublishError

        row = ledger.row(job.name, platform)
        kept = remembered.get(platform)
        if row and row["state"] == "published" and repo.moved(row, ledger, platform):
            # This name's post is another job's now (see _Repo.moved): this job is new here.
            # The post is kept, retired, for the job with its content.
            ledger.retire_row(job.name, platform)
            row = None
        if kept and repo.moved(kept, ledger, platform):
            remember("retire", platform, None)
            remembered.pop(platform)
        elif (not row or row["state"] != "published") and kept:
            # afx.lock (from git) says it went out; this ledger did not know: never a second time.
            row = ledger.adopt(job.name, platform, kept, "afx.lock")
        if row and row["state"] == "published" and status == "publish" and policy.asked_again(controls, row) \
                and policy.older(row, repo.content, video(platform)[1]):
            row = self._supersede(job, ledger, row, remembered.get(platform), repo.content, remember)
        if row and row["state"] == "published":
            result = _result(platform, row)
            kept = remembered.get(platform)
            if (not kept or (not kept.get("content") and row.get("content"))) \
                    and row.get("remote_id") not in repo.superseded:
                # published here before afx.lock kept them (or kept what they were made from)
                remember("published", platform, _record(result, row))
            return result
        if status != "publish":
            return {"platform": platform, "status": status, "scheduledAt": at}
        if not config.get("publishEveryJob"):
            earlier = repo.published_elsewhere(ledger, platform)
            if earlier is not None:
                # A renamed job: the same content went out under its old name. (Two jobs of the
                # repo with the same content each publish: both were asked for.)
                other, record = earlier
                row = ledger.adopt(job.name, platform, record, f"job {other}") or {}
                log.warning("%s: %s: this was already published as job %r (%s), since renamed or removed; "
                            "recorded as published, not posted again", job.name, platform, other,
                            record.get("url") or record.get("remoteId"))
                result = _result(platform, row)
                remember("published", platform, _record(result, row))
                return result
        try:
            return self._post(job, ledger, platform, video, make_item, config, repo.content, remember)
        except (PublishError, OSError, ValueError) as exc:
            message = (exc.message + (f" ({exc.hint})" if exc.hint else "")
                       if isinstance(exc, PublishError) else str(exc))
            return {"platform": platform, "status": "failed", "error": message}

    @staticmethod
    def _supersede(job: Job, ledger: Ledger, row: dict[str, Any], kept: Mapping[str, Any] | None,
                   content: str, remember: Remember) -> dict[str, Any] | None:
        """`afx publish --again` and the post is of an older version: afx.lock forgets it
        first (so it cannot come back from there), then the ledger. None: publish anew."""
        platform = row["platform"]
        if kept and kept.get("content") == content:  # a clone posted this version already
            ledger.supersede(job.name, platform)
            return ledger.adopt(job.name, platform, dict(kept), "afx.lock")
        remember("forget", platform, None)
        ledger.supersede(job.name, platform)
        if row.get("publisher") == "outbox":
            log.warning("%s: %s: the outbox folder gets the new version", job.name, platform)
        else:
            log.warning("%s: %s: publishing the new version as a new post; the earlier post (%s) stays up: "
                        "remove it there if it should go", job.name, platform, row.get("url") or row.get("remote_id"))
        return None

    @staticmethod
    def _post(job: Job, ledger: Ledger, platform: str, video: Callable[[str], tuple[Path, str]],
              make_item: Callable[..., Any], config: Mapping[str, Any], content: str,
              remember: Remember) -> dict[str, Any]:
        from afx.publish.base import PublishError
        from afx.publish.publishers import for_platform

        path, digest = video(platform)
        publisher = for_platform(platform, config)
        row = ledger.claim(job.name, platform, publisher.name, digest, content)
        if row is None:
            return {"platform": platform, "status": "in progress", "error": "another afx is publishing it"}
        if row["state"] == "published":
            return _result(platform, row)
        item = make_item(platform, path, digest)
        session = dict(row.get("session") or {})

        def save(s: dict[str, Any]) -> None:
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
        remember("published", platform, _record(result, row))
        return result

    # -- what people (afx publish / approve / schedule, the API) ask for -------------------
    def approve(self, jobs: Iterable[str], *, request: bool = False) -> None:
        """Release staged jobs; `request` also asks for the publish now (a manual job, or a
        retry of a publish that failed)."""
        with self.ledger() as ledger:
            for job in jobs:
                ledger.approve(job)
                if request:
                    ledger.request(job)

    def request(self, jobs: Iterable[str], *, again: bool = False) -> None:
        """Ask for a publish now (`afx publish JOB`); `again`: post the current version where
        an older one went out (`--again`)."""
        with self.ledger() as ledger:
            for job in jobs:
                (ledger.republish if again else ledger.request)(job)

    def schedule(self, jobs: Iterable[str], at: str | None) -> None:
        """Set (RFC 3339 UTC) or clear (None) the publish time; it wins over scheduledAt."""
        with self.ledger() as ledger:
            for job in jobs:
                ledger.schedule(job, at)

    def due(self, jobs: Sequence[Job], now: float) -> list[Job]:
        """The jobs `afx publish --due` publishes: their time has come, and a platform of
        theirs is not published (a failed one is tried again)."""
        with self.ledger() as ledger:
            out = []
            for job in jobs:
                states = {r["platform"]: r["state"] for r in ledger.rows(job.name)}
                if policy.due(job, ledger.controls(job.name), [states.get(p) for p in job.get("platforms", ())], now):
                    out.append(job)
            return out

    def standing(self, job: Job, now: float) -> dict[str, Any]:
        """Where a job stands per platform, for `afx jobs`: its decision and time, each
        platform's state (its row's, or the decision when never tried), and the platforms
        whose post is of an older version of the job. Read-only: no ledger, no file made."""
        rows = {}
        if self._has_ledger():
            with self.ledger() as ledger:
                controls = ledger.controls(job.name)
                rows = {r["platform"]: r for r in ledger.rows(job.name)}
        else:
            controls = dict(policy.NO_CONTROLS)
        status, at = policy.decide(job, controls, now)
        content = self.content(job) if rows else ""
        platforms, older = {}, []
        for p in job.get("platforms", ()):
            row = rows.get(p)
            platforms[p] = row["state"] if row else status
            if row and row["state"] == "published" and row.get("content") and row["content"] != content:
                older.append(p)  # the job changed since: `afx publish JOB --again` posts it
        return {"decision": status, "scheduledAt": at, "platforms": platforms, "olderPosts": older}

    # -- jobs leaving the specs -----------------------------------------------------------
    def retire(self, keep: set[str]) -> None:
        """Jobs not in `keep` left the specs: their ledger rows are retired (a renamed job
        finds its posts there). Nothing to do for a repo that never published."""
        if self._has_ledger():
            with self.ledger() as ledger:
                ledger.retire(keep)


class _Repo:
    """What one job's publish knows of the spec repo and afx.lock, each part read when first
    needed: the job's content, other current jobs' content, afx.lock's retired and superseded
    posts."""

    def __init__(self, service: PublishService, job: Job, lock: Mapping[str, Any]) -> None:
        self.service, self.job, self.lock = service, job, lock
        self._content: str | None = None
        listed = lock.get("retired")
        retired: list[Any] = listed if isinstance(listed, list) else []
        self.retired = [(str(e.get("job")), clean_record(e), str(e.get("platform")))
                        for e in retired if isinstance(e, dict)]
        block = lock["jobs"].get(job.name)
        superseded = block.get("superseded") if isinstance(block, dict) else None
        self.superseded = {str(x) for x in superseded} if isinstance(superseded, list) else set()

    @property
    def content(self) -> str:
        if self._content is None:
            self._content = self.service.content(self.job)
        return self._content

    def content_of(self, name: str) -> str | None:
        """The content of the repo's current job `name` (None: no such job now)."""
        if name == self.job.name:
            return self.content
        return self.service.contents().get(name)

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
            return bool(theirs != self.content)
        if not theirs or theirs == self.content:
            return False
        for name, content in self.service.contents().items():
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
                record = published_in(self.lock["jobs"], other).get(platform)
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


def published_in(lock_jobs: Mapping[str, Any], job: str) -> dict[str, dict[str, Any]]:
    """afx.lock's record of where `job` was published, by platform: the well-formed records
    only (a hand edit cannot put a bad time or a control character into the ledger)."""
    block = lock_jobs.get(job)
    published = block.get("published") if isinstance(block, dict) else None
    if not isinstance(published, dict):
        return {}
    out = {}
    for platform, record in published.items():
        if isinstance(record, dict):
            clean = clean_record(record)
            if clean.get("remoteId") or clean.get("url"):
                out[str(platform)] = clean
    return out


def clean_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A publish record from afx.lock (a file people edit and merge), with only the values
    that can be believed: short printable text, a web address, a sane time, sha256s."""
    def text(value: Any, limit: int = 2000) -> str | None:
        if not isinstance(value, str) or not value or len(value) > limit:
            return None
        return value if all(c.isprintable() for c in value) else None

    def sha(value: Any) -> str | None:
        return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else None

    url = text(record.get("url"))
    if url and re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url) and not url.lower().startswith(("http://", "https://")):
        url = None  # a web address or a path (the outbox's), never javascript: and the like
    at = times.timestamp(text(record.get("publishedAt"), 40))
    if at is not None and not (_EARLIEST <= at <= time.time() + 86400):
        at = None
    return {"publisher": text(record.get("publisher"), 40), "remoteId": text(record.get("remoteId")), "url": url,
            "publishedAt": times.iso(at) if at else None, "video": sha(record.get("video")),
            "content": sha(record.get("content"))}


def _record(result: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """afx.lock's record of a post: where it is, and what it was made from (a renamed job is
    known by its content)."""
    record = {k: result.get(k) for k in ("publisher", "remoteId", "url", "publishedAt")}
    for key, column in (("content", "content"), ("video", "video_digest")):
        if row.get(column):
            record[key] = row[column]
    return record


def _result(platform: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"platform": platform, "status": row.get("state"), "publisher": row.get("publisher"),
            "remoteId": row.get("remote_id"), "url": row.get("url"), "publishedAt": times.iso(row.get("published_at"))}


def _stamp(path: Path | str) -> tuple[int, int, int] | None:
    """What changes when a file is written (mtime alone moves in clock ticks: two writes in
    one tick look the same), or None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
