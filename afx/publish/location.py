"""Where a spec repo's publish ledger lives, read without SQLAlchemy (planning reads the
controls of every job, and a no-op `afx run` must not pay for importing it).

- Local (the default): `<spec repo>/.afx/ledger.sqlite`, apart from the cache (cache gc and
  AFX_CACHE_DIR never touch it).
- Shared: a PostgreSQL database, `AFX_LEDGER_URL` or afx.yaml `publish.ledger` (`afx serve`
  passes its AFX_DATABASE_URL), so two machines (CI runners, server workers) never publish
  one job twice. A repo's rows are kept under its name there (`publish.ledgerName`, by default
  its git remote, the same on every clone), an account's under `account:<id>`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afx.errors import UsageError


@dataclass(frozen=True)
class Location:
    """A ledger: the repo's own file (url None), or a shared database and the owner whose rows
    are this repo's (or this account's)."""

    root: Path
    url: str | None = None
    owner: str = ""

    @property
    def shared(self) -> bool:
        return self.url is not None

    @property
    def path(self) -> Path:
        return ledger_path(self.root)


def ledger_path(root: Path) -> Path:
    return Path(root) / ".afx" / "ledger.sqlite"


def locate(root: Path, config: Mapping[str, Any] | None = None,
           environ: Mapping[str, str] | None = None) -> Location:
    """The ledger of the spec repo at `root`: AFX_LEDGER_URL, else afx.yaml's
    `publish.ledger` (a database URL), else the repo's own file. A shared ledger keeps this
    repo's rows under `publish.ledgerName`, by default its git remote (the same on every clone
    and CI runner), else its folder's absolute path."""
    environ = os.environ if environ is None else environ
    publish = (config or {}).get("publish")
    publish = publish if isinstance(publish, Mapping) else {}
    url = environ.get("AFX_LEDGER_URL") or publish.get("ledger") or None
    if not url:
        return Location(Path(root))
    name = publish.get("ledgerName") or repo_name(Path(root))
    return Location(Path(root), database_url(str(url)), str(name))


def database_url(url: str) -> str:
    """A SQLAlchemy URL for a ledger database: PostgreSQL (through psycopg) or, for one
    machine's repos, a SQLite file."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    if url.startswith(("postgresql+", "sqlite:///")):
        return url
    shown = re.sub(r"//[^@/]*@", "//***@", url)  # never print a password
    raise UsageError(f"publish ledger {shown!r}: not a PostgreSQL URL",
                     hint="AFX_LEDGER_URL / publish.ledger: postgresql://user:password@host/database")


def repo_name(root: Path) -> str:
    """What a repo's rows are kept under in a shared ledger: its git remote `origin`, without
    credentials, scheme or `.git` (the ssh and https forms name one repo), else its path."""
    try:
        found = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                               capture_output=True, text=True, timeout=10)
        remote = found.stdout.strip() if found.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        remote = ""
    if not remote:
        return "path:" + str(Path(root).resolve())
    # scheme://, user:token@ and a port go; host:path (scp form) and host/path are one
    m = re.match(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?([^/:]+)(?::\d+)?[:/]+(.*)$", remote, re.I)
    if m is None:  # a local path
        return "git:" + remote
    return "git:" + m[1].lower() + "/" + re.sub(r"(\.git)?/*$", "", m[2])


def read_controls(location: Location) -> dict[str, dict[str, Any]]:
    """Every job's controls in a local ledger, read once (plans fingerprint 200 jobs: one
    query, not 200 opens), without creating anything. (A shared one: Ledger.all_controls.)"""
    path = location.path
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return {r["job"]: {k: r[k] for k in r.keys() if k != "owner"} for r in db.execute("SELECT * FROM controls")}
    except sqlite3.OperationalError:  # created but not yet initialised
        return {}
    finally:
        db.close()
