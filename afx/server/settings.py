"""Server settings: flags of `afx serve` and `afx worker`, else AFX_* variables, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "afx" / "server"


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("AFX_DATA_DIR") or default_data_dir()))
    database_url: str = ""  # default: SQLite in data_dir
    workers: int = 2  # jobs run at once
    rate_limit: int = 60  # requests per minute per key (the API reference)
    max_active: int = 10  # queued + running jobs per account (the API reference)
    max_upload: int = 500 * 1024 * 1024  # bytes (the API reference)
    attempts: int = 3  # runs a job gets when the server keeps dying under it; then failed + refund
    tick: float = 1.0  # seconds between scheduler checks
    # PostgreSQL queue (afx.server.pgworker): a worker beats every `heartbeat` seconds; a job
    # whose worker has been silent for `stalled` seconds is taken back (requeued, or given up)
    heartbeat: float = field(default_factory=lambda: float(os.environ.get("AFX_WORKER_HEARTBEAT") or 5.0))
    stalled: float = field(default_factory=lambda: float(os.environ.get("AFX_STALLED_AFTER") or 30.0))
    resolvers: int = 2  # processes resolving POST /jobs bodies (afx.server.resolver)
    resolve_budget: float = field(default_factory=lambda: float(os.environ.get("AFX_RESOLVE_BUDGET") or 2.0))
    pipeline: str | None = None  # AFX_PIPELINE (tests run cheap stages)
    config: dict[str, Any] = field(default_factory=dict)  # afx.yaml-style: fetch allow-list, publishers
    # AFX_STORAGE_URL: uploads, job outputs and the stage cache in a shared object store
    # (s3://bucket/prefix; afx.server.storage), for fronts and workers on several machines
    storage_url: str = field(default_factory=lambda: os.environ.get("AFX_STORAGE_URL") or "")

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.database_url:
            self.database_url = os.environ.get("AFX_DATABASE_URL") or f"sqlite:///{self.data_dir / 'afx.sqlite'}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def accounts_dir(self) -> Path:
        return self.data_dir / "accounts"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def account_config(self, account_id: str) -> dict[str, Any]:
        """The afx.yaml-style config an account's jobs and publishes run with: its publish
        ledger is kept under `account:<id>`, in this database when it is PostgreSQL (every
        server and worker on it then shares one ledger), else AFX_LEDGER_URL's, else in the
        account's folder."""
        publish = dict(self.config.get("publish") or {})
        if not self.database_url.startswith("sqlite"):
            publish.setdefault("ledger", self.database_url)
        publish["ledgerName"] = f"account:{account_id}"
        return {**self.config, "publish": publish}

    def account_root(self, account_id: str) -> Path:
        """The account's work folder: the engine's repo root (out/, outbox/, the publish ledger)."""
        return self.accounts_dir / account_id
