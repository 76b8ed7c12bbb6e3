"""Stage 5, publish: per-platform publish records, through the ledger (issue 6).

Never cached blindly: the stage's fingerprint includes the ledger's state for the job and
whether its scheduled time has come, so approving, requesting, rescheduling or the clock
passing scheduledAt makes it run again; the ledger makes running it again harmless.

Per platform: `staging: true` and not approved -> staged; publishMode manual and not
requested (`afx publish JOB`) -> manual; scheduled and the time (afx schedule, else
scheduledAt) not yet come -> scheduled; otherwise published through the platform's
publisher (afx.yaml `publish.<platform>`: outbox by default), once.

The ledger is the repo's own file, or the shared database that AFX_LEDGER_URL or afx.yaml's
`publish.ledger` names (afx serve sets it per account in the config it runs jobs with):
afx.publish.location.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from afx.errors import AfxError, StageError
from afx.publish.location import locate
from afx.publish.service import PublishService
from afx.spec.job import Job, thaw
from afx.stages.base import LockChange, StageContext, pick


class PublishStage:
    name = "publish"
    version = "4"
    after: tuple[str, ...] = ("render", "package")

    def __init__(self) -> None:
        self._services: dict[tuple[Path, Any, Any], PublishService] = {}
        self._config: Mapping[str, Any] | None = None  # the run's afx.yaml, as settings() last saw it
        self._held = 0  # inside hold(): each ledger read once (the services in _read)
        self._read: set[int] = set()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """The engine's pass over cached jobs, which publishes nothing: each ledger is asked
        once for all of its jobs (its file stat'ed, or the shared database queried), not once
        a job."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self._read.clear()

    def begin_run(self) -> None:
        """A new run: the repo's jobs and ledger are read again when needed (the engine calls this)."""
        self._services.clear()

    def service(self, root: Path, config: Mapping[str, Any] | None = None) -> PublishService:
        """The repo's service, on the ledger its config names. state() and retire_jobs() are
        given no config: they use the run's, which the engine passed to settings() when it
        fingerprinted the stage (else afx.yaml, read here)."""
        if config is None:
            config = self._config if self._config is not None else _repo_config(root)
        publish = config.get("publish") or {}
        key = (root, publish.get("ledger"), publish.get("ledgerName"))
        if key not in self._services:
            self._services[key] = PublishService(root, location=locate(root, config))
        return self._services[key]

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "platforms", "publishMode", "staging", "scheduledAt", "format")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def settings(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        self._config = config
        # Where the ledger is is not what a publish is made of: moving a repo to a shared
        # ledger (or rotating its password) does not make every publish stage stale.
        publish = {k: v for k, v in thaw(config.get("publish") or {}).items() if k not in ("ledger", "ledgerName")}
        return {"publish": publish}

    def state(self, job: Job) -> Mapping[str, Any]:
        # Read-only, and once per run for all jobs (planning must not create files, and a
        # 200-job plan must not open the ledger 200 times).
        service = self.service(job.root)
        recheck = not self._held or id(service) not in self._read
        if self._held:
            self._read.add(id(service))  # (services live as long as the run: ids are not reused)
        return service.state(job, time.time(), recheck=recheck)

    def retire_jobs(self, root: Path, keep: set[str]) -> None:
        self.service(root).retire(keep)

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        job = ctx.job
        render, package = ctx.inputs["render"], ctx.inputs["package"]
        try:
            lock = ctx.read_lock()
        except (AfxError, OSError) as exc:
            # One that cannot be read (git's conflict markers in it) stops the publish: it may
            # be all that knows a job went out already.
            raise StageError(f"not publishing: {exc}", hint="afx.lock remembers what was published; "
                             "restore it (resolve the conflict) before publishing") from None

        def remember(op: str, platform: str, record: Mapping[str, Any] | None) -> None:
            ctx.lock_changes.append(LockChange(op, platform, dict(record) if record is not None else None))

        def item(platform: str, video: Path, digest: str) -> Any:
            from afx.publish.base import Item

            copy = dict((package.meta.get("copy") or {}).get(platform) or package.meta.get("publishCopy") or {})
            return Item(job=job.name, platform=platform, video=video,
                        thumbnail=package.path("thumb.jpg") if "thumb.jpg" in package.files else None,
                        copy=copy, digest=digest, seconds=float(render.meta.get("seconds", 0.0)),
                        format=job.get("format", "short"), root=job.root, config=ctx.config)

        results: list[dict[str, Any]] = []
        ctx.partial["results"] = results  # what went out, should a later platform fail
        service = self.service(job.root, ctx.config)
        status, errors = service.publish(job, lambda p: _video(render, p), item, lock, ctx.config, remember, results)
        ctx.output("publish.json", export="publish.json").write_text(json.dumps(results, indent=2) + "\n")
        if errors:
            raise StageError("publishing failed: " + "; ".join(errors))
        return {"results": results, "decision": status}


def _video(render: Any, platform: str) -> tuple[Path, str]:
    """The rendered file that goes to `platform`, and its sha256."""
    name = "video.mp4"
    for candidate, info in (render.meta.get("outputs") or {}).items():
        if any(p.startswith(platform) for p in info.get("profiles", [])):
            name = candidate
            break
    video = render.path(name)
    return video, video.parent.name + video.name  # stored objects are named by their sha256


def _repo_config(root: Path) -> Mapping[str, Any]:
    from afx.spec.repo import CONFIG_NAME, load_config

    path = Path(root) / CONFIG_NAME
    return load_config(path)[0] if path.is_file() else {}
