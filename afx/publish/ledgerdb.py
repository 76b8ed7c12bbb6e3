"""The publish ledger's tables (SQLAlchemy Core), the same on either backend (see
afx.publish.location for which one a repo uses).

- Local: SQLite in WAL mode, the repo's own file; its rows' owner is "" (the file is the
  namespace).
- Shared: PostgreSQL. The tables live in the schema `afx_ledger`, apart from the server's
  and procrastinate's; every row carries its owner (a repo's name, or `account:<id>` on the
  server), so two owners' jobs of one name never meet.

Both get the same tables from the same definitions. A local file is brought up to date
when it is opened (an older afx's file gets the new columns); the shared tables are created
idempotently under an advisory lock by the first process to open them, so nothing has to
run a migration first. Engines are kept per process and URL (a forked child makes its own).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from afx.publish.location import Location

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import ConnectionPoolEntry

SCHEMA = "afx_ledger"  # the shared database's schema for the ledger's tables
SCHEMA_LOCK = 7340315  # pg_advisory_xact_lock key: one process creates the tables, the others wait

metadata = MetaData()

publishes = Table(
    "publishes", metadata,
    Column("owner", Text, nullable=False, server_default=""),
    Column("job", Text, nullable=False),
    Column("platform", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),  # pending | uploading | published | failed
    Column("publisher", Text), Column("remote_id", Text), Column("url", Text), Column("session", Text),
    Column("video_digest", Text),
    Column("content", Text),  # what the post was made from: afx.publish.policy.content_digest
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("claimed_by", Text), Column("claimed_at", Float), Column("updated", Float), Column("published_at", Float),
    PrimaryKeyConstraint("owner", "job", "platform"),
)
Index("publishes_content", publishes.c.owner, publishes.c.platform, publishes.c.content)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", Text, nullable=False, server_default=""),
    Column("job", Text, nullable=False), Column("platform", Text), Column("time", Float, nullable=False),
    Column("kind", Text, nullable=False), Column("detail", Text),
    sqlite_autoincrement=True,
)
Index("events_job", events.c.owner, events.c.job, events.c.id)

controls = Table(
    "controls", metadata,
    Column("owner", Text, nullable=False, server_default=""),
    Column("job", Text, nullable=False),
    Column("approved_at", Float), Column("requested_at", Float), Column("schedule", Text),
    Column("schedule_set", Integer, server_default="0"), Column("republish_at", Float),
    PrimaryKeyConstraint("owner", "job"),
)

# Columns a local file written by an older afx lacks (its primary keys stay (job, platform)
# and (job): one owner per file, so they are as unique).
_ADDED = {"controls": ("republish_at REAL", "owner TEXT NOT NULL DEFAULT ''"),
          "publishes": ("content TEXT", "owner TEXT NOT NULL DEFAULT ''"),
          "events": ("owner TEXT NOT NULL DEFAULT ''",)}


# -- engines -------------------------------------------------------------------------------
_engines: dict[tuple[int, str], Engine] = {}
_guard = threading.Lock()


def engine_for(location: Location) -> Engine:
    """This process's engine for a ledger, its tables made ready on first use."""
    url = location.url or f"sqlite:///{location.path}"
    key = (os.getpid(), url)
    with _guard:
        engine = _engines.get(key)
        if engine is None:
            engine = _sqlite(location.path) if location.url is None or url.startswith("sqlite") else _postgres(url)
            _prepare(engine)
            _engines[key] = engine
    return engine


def _sqlite(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    # NullPool: a connection per Ledger, closed with it (the server opens many accounts' files)
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool,
                           connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi.isolation_level = None  # the begin event below decides how a transaction begins
        # Several processes opening a new ledger at once (afx serve's jobs of one account):
        # the switch to WAL does not wait for a lock as statements do, so it is tried again.
        for attempt in range(100):
            try:
                dbapi.execute("PRAGMA journal_mode=WAL")
                break
            except Exception as exc:  # sqlite3.OperationalError
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05 + 0.05 * random.random())
        dbapi.execute("PRAGMA synchronous=FULL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A write takes the file's write lock first, so a read-check-write cannot interleave.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("afx_write") else "BEGIN")

    return engine


def _postgres(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8,
                         execution_options={"schema_translate_map": {None: SCHEMA}})


def _prepare(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine)
        return
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        metadata.create_all(conn, checkfirst=True)


def _prepare_sqlite(engine: Engine) -> None:
    for attempt in range(100):
        try:
            with engine.connect().execution_options(afx_write=True) as conn, conn.begin():
                have = set(inspect(conn).get_table_names())
                if "controls" not in have:
                    metadata.create_all(conn)
                    return
                for table, columns in _ADDED.items():
                    names = {c["name"] for c in inspect(conn).get_columns(table)}
                    for column in columns:
                        if column.split()[0] not in names:
                            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))
            return
        except OperationalError as exc:
            # Two processes creating one new file: the loser finds the tables made.
            if "already exists" not in str(exc) or attempt == 99:
                raise
