"""afx serve / afx worker / afx keys: the AuraFlux v1 API (issue 7) and its job workers (issue 15).

`afx serve` answers the API and, unless --no-workers, runs jobs too; `afx worker` runs jobs
only, on any machine that reaches the database and the object store (AFX_STORAGE_URL; or,
without one, a data dir they share). The queue follows the database: SQLite's jobs table, or
procrastinate on PostgreSQL (AFX_DATABASE_URL). docs/scale.md has the topology.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx.cli.env import Environment
from afx.errors import ExitStatus, SpecError, UsageError

if TYPE_CHECKING:  # the server is imported when afx serve runs
    from afx.server.settings import Settings


def settings_for(data_dir: str | None, **overrides: Any) -> Settings:
    from afx.server.settings import Settings

    kwargs = {k: v for k, v in overrides.items() if v is not None}
    if data_dir:
        kwargs["data_dir"] = Path(data_dir)
    return Settings(**kwargs)


def _config(path: Path | None, data_dir: Path) -> dict[str, Any]:
    """afx.yaml-style settings for the server's jobs: fetch allow-list, publishers."""
    from afx.spec.repo import load_config

    path = path or (data_dir / "afx.yaml")
    if not path.is_file():
        return {}
    config, diags = load_config(path)
    if diags:
        raise SpecError(diags)
    return config


def serve(env: Environment, *, host: str, port: int, data_dir: str | None, workers: int, rate_limit: int,
          max_active: int, config: str | None, max_upload: int, attempts: int, tick: float,
          no_workers: bool = False, heartbeat: float | None = None, stalled: float | None = None) -> int:
    import uvicorn

    from afx.server.app import create_app

    settings = settings_for(data_dir, workers=workers, rate_limit=rate_limit, max_active=max_active,
                            max_upload=max_upload, attempts=attempts, tick=tick, heartbeat=heartbeat,
                            stalled=stalled)
    _job_settings(settings, config)
    app = create_app(settings, run_jobs=not no_workers)
    env.info(f"afx serve: http://{host}:{port}/v1 (docs at /docs), data in {settings.data_dir}"
             + ("; jobs run by `afx worker`" if no_workers else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning" if env.verbosity <= 0 else "info",
                access_log=env.verbosity > 0, timeout_graceful_shutdown=5)
    return int(ExitStatus.OK)


def _job_settings(settings: Settings, config: str | None) -> None:
    import os

    settings.config = _config(Path(config) if config else None, settings.data_dir)
    settings.pipeline = os.environ.get("AFX_PIPELINE") or None
    from afx.server import storage

    shared = storage.from_settings(settings)
    if shared is not None:  # ObjectStoreError (exit 4) now, not a failed upload or job later
        shared.objects.check()


def worker(env: Environment, *, data_dir: str | None, workers: int, config: str | None, attempts: int,
           tick: float, heartbeat: float | None, stalled: float | None) -> int:
    """Run jobs of the shared queue until SIGTERM or SIGINT (running jobs go back to it)."""
    import signal

    from afx.server import db
    from afx.server.app import job_workers

    settings = settings_for(data_dir, workers=workers, attempts=attempts, tick=tick, heartbeat=heartbeat,
                            stalled=stalled)
    _job_settings(settings, config)
    try:
        engine = db.connect(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - any driver's error: the database cannot be reached
        env.error(f"afx worker: cannot open the database: {exc}")
        return int(ExitStatus.REMOTE_ERROR)
    pool = job_workers(engine, settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pool.stopping.set())
    try:
        pool.start()
        queue = "procrastinate" if engine.dialect.name == "postgresql" else "SQLite"
        env.info(f"afx worker: {settings.workers} job(s) at once from the {queue} queue, data in "
                 f"{settings.data_dir}")
        pool.wait()
    finally:
        pool.stop()
        engine.dispose()
    if getattr(pool, "failed", None) is not None:
        env.error(f"afx worker: the queue stopped: {pool.failed}")  # type: ignore[union-attr]
        return int(ExitStatus.REMOTE_ERROR)
    return int(ExitStatus.OK)


def create_key(env: Environment, *, data_dir: str | None, plan: str, credits: int | None,
               account: str | None) -> int:
    from afx.server import accounts, db

    settings = settings_for(data_dir)
    engine = db.connect(settings.database_url)
    try:
        if account:
            acct_id = account
        else:
            acct_id = accounts.create_account(engine, plan, credits).id
        try:
            key = accounts.create_key(engine, acct_id)
        except LookupError as exc:
            raise UsageError(str(exc), hint="omit --account to create a new account") from None
        info = accounts.summary(engine, acct_id)
    finally:
        engine.dispose()
    if env.json:
        env.emit_json({"key": key, **info})
    else:
        env.out(key)
        env.info(f"account {info['accountId']} ({info['planTier']}, {info['credits']['balance']} credits); "
                 "the key is shown once: only its hash is kept")
    return int(ExitStatus.OK)
