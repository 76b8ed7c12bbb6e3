"""The server's database: SQLAlchemy Core tables, migrations, and how transactions begin.

SQLite (WAL, a file in the data dir) by default; any SQLAlchemy Postgres URL through
AFX_DATABASE_URL (`postgresql+psycopg://user@host/db`). Both get the same tables from the
same numbered migrations, recorded in `schema_migrations`.

Writes that must not race (a submission checks the balance and the active-job count, then
debits and inserts) run in `write()`: on SQLite a BEGIN IMMEDIATE transaction (one writer at
a time, readers unaffected under WAL), on Postgres a transaction that locks the account row.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import ConnectionPoolEntry

metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("id", String(40), primary_key=True),
    Column("plan", String(20), nullable=False),
    Column("included", Integer, nullable=False),  # credits the plan came with
    Column("balance", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(40), primary_key=True),  # the key's public part (af_live_<id>_...)
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_hash", String(64), nullable=False),  # sha256 of the whole key; the key itself is never stored
    Column("created", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# Append-only. One debit and at most one refund per job, by constraint: a retried request or
# a crashed worker can never charge or refund twice.
credit_events = Table(
    "credit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("job_id", String(40)),
    Column("kind", String(10), nullable=False),  # grant | debit | refund
    Column("amount", Integer, nullable=False),  # signed: debits are negative
    Column("reason", Text),
    Column("created", Float, nullable=False),
    UniqueConstraint("job_id", "kind", name="one_event_per_job_and_kind"),
)

uploads = Table(
    "uploads", metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("stored", String(200), nullable=False),  # file name under the uploads dir (generated)
    Column("filename", String(255)),  # the client's name, for display only
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created", Float, nullable=False),
)

templates = Table(
    "templates", metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200)),
    Column("body", Text, nullable=False),  # JSON, as validated
    Column("created", Float, nullable=False),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("status", String(20), nullable=False),  # queued | running | complete | published | failed | cancelled
    Column("run_kind", String(10), nullable=False, default="build"),  # build | publish (after approve / schedule)
    Column("body", Text, nullable=False),  # the request as sent (JSON)
    Column("fields", Text, nullable=False),  # the resolved job (JSON): what the worker runs
    Column("upload_id", String(40)),
    Column("credit_cost", Integer, nullable=False),
    Column("staging", Boolean, nullable=False, default=False),
    Column("scheduled_at", String(40)),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("started", Float),
    Column("finished", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("worker", String(80)),  # host:pid:starttime of the child running it
    Column("stage", String(20)),
    Column("progress", Float),
    Column("error", Text),
    Column("error_kind", String(10)),  # job (the input's fault) | server
    Column("result", Text),  # JSON: out/<job>/result.json when complete (a job with clips: its clips.json)
    Column("score", Integer),
    # Clips (v4, afx.server.clips). A job with `clips` (a parent) has clip_count; each of its
    # clip jobs, made with it at submission, has parent_id and clip_rank, and waiting_for (the
    # parent's id) while its fields are not known: a worker claims no job that is waiting.
    Column("parent_id", String(40)),
    Column("clip_rank", Integer),
    Column("waiting_for", String(40)),
    Column("clip_count", Integer),
    Column("clip", Text),  # JSON: a clip job's cut ({source, start, end, seconds, score}), once known
    # PostgreSQL (v5, afx.server.queue): the id of the procrastinate job that delivers it last
    Column("queue_id", BigInteger),
)
Index("jobs_account_created", jobs.c.account_id, jobs.c.created)
Index("jobs_status", jobs.c.status)
Index("jobs_parent", jobs.c.parent_id)

idempotency = Table(
    "idempotency", metadata,
    Column("account_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request", String(64), nullable=False),  # sha256 of method, path and body
    Column("state", String(10), nullable=False),  # in_flight | done
    Column("status_code", Integer),
    Column("response", Text),
    Column("created", Float, nullable=False),
    Column("owner", String(80)),  # the server process handling it (v2): a dead owner's key is freed
)

# Requests per key and minute (window = epoch seconds // 60), shared by every server on the
# database: afx.server.limits. Rows older than the previous minute are deleted as it goes.
rate_counts = Table(
    "rate_counts", metadata,
    Column("key", String(80), primary_key=True),  # an API key's public id, or ip:<address>
    Column("window", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", Float, nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[accounts, api_keys, credit_events, uploads, templates, jobs, idempotency])


def _v2(conn: Connection) -> None:
    # v1 databases lack idempotency.owner (a new database got it from create_all in v1).
    if "owner" not in {c["name"] for c in inspect(conn).get_columns("idempotency")}:
        conn.execute(text("ALTER TABLE idempotency ADD COLUMN owner VARCHAR(80)"))


def _v3(conn: Connection) -> None:
    rate_counts.create(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    # Clips (issue 14): a job with clips and the clip jobs it is made into.
    if not inspect(conn).has_table("jobs"):
        jobs.create(conn)  # (with them already)
        return
    have = {c["name"] for c in inspect(conn).get_columns("jobs")}
    for name, kind in (("parent_id", "VARCHAR(40)"), ("clip_rank", "INTEGER"), ("waiting_for", "VARCHAR(40)"),
                       ("clip_count", "INTEGER"), ("clip", "TEXT")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {kind}"))
    if "jobs_parent" not in {i["name"] for i in inspect(conn).get_indexes("jobs")}:
        conn.execute(text("CREATE INDEX jobs_parent ON jobs (parent_id)"))


def _v5(conn: Connection) -> None:
    # The queue on PostgreSQL (issue 15): procrastinate's schema, and a procrastinate job for
    # every job queued before it (a waiting clip job gets one when its parent settles it).
    from afx.server import queue

    if "queue_id" not in {c["name"] for c in inspect(conn).get_columns("jobs")}:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN queue_id BIGINT"))
    if not is_postgres(conn):
        return
    queue.apply_schema(conn)
    for (job_id,) in conn.execute(select(jobs.c.id).where(jobs.c.status == "queued", jobs.c.waiting_for.is_(None),
                                                           jobs.c.queue_id.is_(None)).order_by(jobs.c.created)).all():
        queue.enqueue(conn, job_id)


# Append only: a released migration is never edited; a change is a new function, written so
# it also runs on a database that v1 created from newer table definitions.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]


def connect(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's begin event decides how to begin
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("afx_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> int:
    """Apply the migrations not yet applied; returns the schema version."""
    with engine.connect().execution_options(afx_write=True) as conn, conn.begin():
        if is_postgres(conn):  # two servers starting at once: one migrates, the other waits
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7340301)")
        schema_migrations.create(conn, checkfirst=True)
        done = {row[0] for row in conn.execute(select(schema_migrations.c.version))}
        for version, step in enumerate(MIGRATIONS, start=1):
            if version not in done:
                step(conn)
                conn.execute(schema_migrations.insert().values(version=version, applied=time.time()))
    return len(MIGRATIONS)


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A transaction for a read-check-write: serialised against other writers (see above).

    On SQLite, this process's writers also queue on a lock of their own first: SQLite's busy
    handler retries with sleeps of up to 100 ms and no order, so eight threads writing at
    once saw answers take up to a second (issue 11, POSTs resolved off the event loop)."""
    lock: Any = nullcontext()
    if engine.dialect.name == "sqlite":
        with _guard:
            lock = _sqlite_locks.setdefault(engine, threading.RLock())
    with lock, engine.connect().execution_options(afx_write=True) as conn, conn.begin():
        yield conn


_sqlite_locks: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"
