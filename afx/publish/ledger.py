"""The publish ledger: every attempt and result, so a job is never published twice (issue 6).

SQLite (WAL) at `<spec repo>/.afx/ledger.sqlite`, apart from the cache (cache gc and
AFX_CACHE_DIR never touch it). One row per (job, platform) with its state; an append-only
event log of every attempt; per-job controls (approved, publish requested, schedule
override). A publisher claims a row before it uploads; a claim held by a live process on
this machine is respected, one held by a dead process is taken over, and a resumable
upload's session is saved as it progresses so the next attempt resumes.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from afx import procs, times

SCHEMA = """
CREATE TABLE IF NOT EXISTS publishes (
    job TEXT NOT NULL, platform TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | uploading | processing | published | failed
    publisher TEXT, remote_id TEXT, url TEXT, session TEXT, video_digest TEXT,
    content TEXT,                            -- what the post was made from: afx.publish.policy.content_digest
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    claimed_by TEXT, claimed_at REAL, updated REAL, published_at REAL,
    PRIMARY KEY (job, platform));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, platform TEXT, time REAL NOT NULL,
    kind TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS controls (
    job TEXT PRIMARY KEY, approved_at REAL, requested_at REAL, schedule TEXT, schedule_set INTEGER DEFAULT 0,
    republish_at REAL);
"""


def ledger_path(root: Path) -> Path:
    return Path(root) / ".afx" / "ledger.sqlite"


def owner_id() -> str:
    return procs.name()  # host:pid:start time


def _alive(owner: str | None) -> bool:
    """Whether a claim's holder still runs. Another machine's claim is trusted (until its
    lease runs out); here, a zombie is dead (a killed afx run's worker may stay one for good
    where the first process never reaps), and so is a later process that got its pid."""
    if not owner:
        return False
    host, pid, started = procs.parse(owner)
    if host != procs.HOST or pid is None:
        return True
    if not started:  # a claim written before claims carried a start time
        owner = procs.name(pid)
    return procs.alive_here(owner)


def read_controls(root: Path) -> dict[str, dict[str, Any]]:
    """Every job's controls, read once (plans fingerprint 200 jobs: one query, not 200 opens)."""
    path = ledger_path(root)
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return {r["job"]: dict(r) for r in db.execute("SELECT * FROM controls")}
    except sqlite3.OperationalError:  # created but not yet initialised
        return {}
    finally:
        db.close()


class Ledger:
    LEASE = 6 * 3600  # seconds a claim by another machine holds

    def __init__(self, root: Path) -> None:
        self.path = ledger_path(root)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        # Several processes opening a new ledger at once (afx serve's jobs of one account):
        # the switch to WAL does not wait for a lock as statements do, so it is tried again.
        for attempt in range(100):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    self.db.close()
                    raise
                time.sleep(0.05 + 0.05 * random.random())
        self.db.execute("PRAGMA synchronous=FULL")
        if self.db.execute("SELECT count(*) FROM sqlite_master WHERE name='controls'").fetchone()[0] == 0:
            self.db.executescript(SCHEMA)
        self._add_column("controls", "republish_at REAL")
        self._add_column("publishes", "content TEXT")

    def _add_column(self, table: str, column: str) -> None:
        """A ledger from an older afx gets the column (once, whichever process is first)."""
        name = column.split()[0]
        if name in {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}:
            return
        try:
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- rows -----------------------------------------------------------------------------
    def row(self, job: str, platform: str) -> dict[str, Any] | None:
        r = self.db.execute("SELECT * FROM publishes WHERE job=? AND platform=?", (job, platform)).fetchone()
        if r is None:
            return None
        out = dict(r)
        out["session"] = json.loads(out["session"]) if out["session"] else {}
        return out

    def rows(self, job: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT job, platform FROM publishes" + (" WHERE job=?" if job else "") + " ORDER BY job, platform"
        return [self.row(r["job"], r["platform"]) for r in self.db.execute(q, (job,) if job else ())]  # type: ignore

    def claim(self, job: str, platform: str, publisher: str, digest: str, content: str | None = None
              ) -> dict[str, Any] | None:
        """The row, now held by this process; None if another live process holds it.
        A published row comes back as it is (nothing to do)."""
        me = owner_id()
        now = time.time()
        with self._tx() as db:
            r = db.execute("SELECT * FROM publishes WHERE job=? AND platform=?", (job, platform)).fetchone()
            if r is not None and r["state"] == "published":
                return self.row(job, platform)
            if r is not None and r["claimed_by"] and r["claimed_by"] != me and _alive(r["claimed_by"]) \
                    and now - (r["claimed_at"] or 0) < self.LEASE:
                return None
            if r is None:
                db.execute("INSERT INTO publishes (job, platform, state, publisher, video_digest, content, "
                           "claimed_by, claimed_at, updated) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                           (job, platform, publisher, digest, content, me, now, now))
            else:
                db.execute("UPDATE publishes SET claimed_by=?, claimed_at=?, attempts=attempts+1, updated=?, "
                           "publisher=COALESCE(publisher, ?), video_digest=?, content=? WHERE job=? AND platform=?",
                           (me, now, now, publisher, digest, content, job, platform))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, ?, ?, 'claim', ?)",
                       (job, platform, now, me))
        return self.row(job, platform)

    def save(self, job: str, platform: str, *, state: str | None = None, session: dict[str, Any] | None = None,
             remote_id: str | None = None, url: str | None = None, error: str | None = None,
             event: str | None = None) -> None:
        now = time.time()
        sets: list[str] = ["updated=?"]
        args: list[object] = [now]
        for col, value in (("state", state), ("remote_id", remote_id), ("url", url)):
            if value is not None:
                sets.append(f"{col}=?")
                args.append(value)
        if session is not None:
            sets.append("session=?")
            args.append(json.dumps(session))
        if error is not None or state == "published":
            sets.append("error=?")
            args.append(error)
        if state == "published":
            sets.append("published_at=?")
            args.append(now)
        with self._tx() as db:
            db.execute(f"UPDATE publishes SET {', '.join(sets)} WHERE job=? AND platform=?", (*args, job, platform))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, ?, ?, ?, ?)",
                       (job, platform, now, event or state or "progress",
                        json.dumps({"remote_id": remote_id, "error": error, "session": session})))

    def adopt(self, job: str, platform: str, record: dict[str, Any], source: str) -> dict[str, Any] | None:
        """Record a publish known from elsewhere (afx.lock) for a row that is not published:
        the row becomes published with its remote id and URL. Returns the row."""
        now = time.time()
        when = record.get("publishedAt")
        at = times.timestamp(str(when)) if when else now
        at = now if at is None else at
        if not 946684800 <= at <= now + 86400:  # 2000-01-01 .. tomorrow; otherwise: now
            at = now
        with self._tx() as db:
            r = db.execute("SELECT state FROM publishes WHERE job=? AND platform=?", (job, platform)).fetchone()
            if r is not None and r["state"] == "published":
                return self.row(job, platform)
            values = (str(record.get("publisher") or "") or None, str(record.get("remoteId") or "") or None,
                      str(record.get("url") or "") or None, str(record.get("video") or "") or None,
                      str(record.get("content") or "") or None, now, at)
            if r is None:
                db.execute("INSERT INTO publishes (job, platform, state, publisher, remote_id, url, video_digest, "
                           "content, updated, published_at) VALUES (?, ?, 'published', ?, ?, ?, ?, ?, ?, ?)",
                           (job, platform, *values))
            else:  # what it was made from is the record's (or unknown): never the row's old guess
                db.execute("UPDATE publishes SET state='published', publisher=COALESCE(?, publisher), "
                           "remote_id=?, url=?, video_digest=?, content=?, updated=?, published_at=?, "
                           "error=NULL, session=NULL, claimed_by=NULL, claimed_at=NULL WHERE job=? AND platform=?",
                           (*values, job, platform))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, ?, ?, 'adopted', ?)",
                       (job, platform, now, json.dumps({"from": source, **record})))
        return self.row(job, platform)

    def published_content(self, platform: str, content: str, *, besides: str) -> list[dict[str, Any]]:
        """Rows of other jobs (retired ones too) that published the same content on `platform`."""
        rows = self.db.execute("SELECT job FROM publishes WHERE platform=? AND content=? AND state='published' "
                               "AND job<>? ORDER BY published_at", (platform, content, besides)).fetchall()
        return [self.row(r["job"], platform) for r in rows]  # type: ignore[misc]

    def retire(self, keep: set[str]) -> list[str]:
        """Jobs not in `keep` (gone from the specs) give up their names: their rows move to
        `<job>#retired-<time>`, so a new job of that name starts unpublished, while a job
        with the same content still finds them (published_content). Returns the jobs retired."""
        now = time.time()
        with self._tx() as db:
            # Published rows only: a row being uploaded (another afx, a cron with another
            # cache folder) is left to finish and be recorded.
            names = [r["job"] for r in db.execute("SELECT DISTINCT job FROM publishes WHERE state='published'")
                     if r["job"] not in keep and "#retired-" not in r["job"]]
            for job in names:
                db.execute("UPDATE publishes SET job=? WHERE job=? AND state='published'",
                           (f"{job}#retired-{time.time_ns()}", job))
                db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, NULL, ?, 'retired', "
                           "'gone from the specs')", (job, now))
            # A new job that takes a gone job's name starts without its approval or schedule.
            for r in db.execute("SELECT job FROM controls").fetchall():
                if r["job"] not in keep:
                    db.execute("DELETE FROM controls WHERE job=?", (r["job"],))
        return names

    def retire_row(self, job: str, platform: str) -> None:
        """One post under `job`'s name that is not this job's (see the publish stage)."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE publishes SET job=? WHERE job=? AND platform=? AND state='published'",
                       (f"{job}#retired-{time.time_ns()}", job, platform))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, ?, ?, 'retired', "
                       "'the post is another job''s')", (job, platform, now))

    def release(self, job: str, platform: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE publishes SET claimed_by=NULL, claimed_at=NULL WHERE job=? AND platform=? "
                       "AND claimed_by=?", (job, platform, owner_id()))

    def events(self, job: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM events WHERE job=? ORDER BY id", (job,))]

    # -- controls -------------------------------------------------------------------------
    def controls(self, job: str) -> dict[str, Any]:
        r = self.db.execute("SELECT * FROM controls WHERE job=?", (job,)).fetchone()
        return dict(r) if r else {"job": job, "approved_at": None, "requested_at": None, "schedule": None,
                                  "schedule_set": 0, "republish_at": None}

    def _control(self, job: str, **values: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO controls (job) VALUES (?)", (job,))
            for col, value in values.items():
                db.execute(f"UPDATE controls SET {col}=? WHERE job=?", (value, job))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, NULL, ?, 'control', ?)",
                       (job, time.time(), json.dumps(values)))

    def approve(self, job: str) -> None:
        self._control(job, approved_at=time.time())

    def request(self, job: str) -> None:
        self._control(job, requested_at=time.time())

    def republish(self, job: str) -> None:
        """`afx publish JOB --again`: a platform whose post is of an older render of the job
        gets the current video, as a new post (once: then the post is of this video)."""
        now = time.time()
        self._control(job, requested_at=now, republish_at=now)

    def republished(self, job: str, asked: float) -> None:
        """The publish stage has acted on the `afx publish --again` of time `asked` (one that
        came since is left for the next run)."""
        with self._tx() as db:
            db.execute("UPDATE controls SET republish_at=NULL WHERE job=? AND republish_at=?", (job, asked))

    def supersede(self, job: str, platform: str) -> dict[str, Any] | None:
        """A published row made ready for a new post (its old post stays in the event log).
        Returns the old row."""
        old = self.row(job, platform)
        if old is None or old["state"] != "published":
            return None
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE publishes SET state='pending', remote_id=NULL, url=NULL, session=NULL, error=NULL, "
                       "published_at=NULL, updated=? WHERE job=? AND platform=? AND state='published'",
                       (now, job, platform))
            db.execute("INSERT INTO events (job, platform, time, kind, detail) VALUES (?, ?, ?, 'superseded', ?)",
                       (job, platform, now, json.dumps({"remote_id": old["remote_id"], "url": old["url"],
                                                        "video": old["video_digest"], "content": old["content"],
                                                        "published_at": old["published_at"]})))
        return old

    def schedule(self, job: str, at: str | None) -> None:
        """A schedule set here wins over the spec's scheduledAt; None unschedules."""
        self._control(job, schedule=at, schedule_set=1)

    def state_token(self, job: str) -> dict[str, Any]:
        """What of the ledger a publish stage depends on (fingerprinted): the controls. Not the
        publish rows: the stage writes those itself, and its runs are idempotent anyway."""
        return self.token_of(self.controls(job))

    @staticmethod
    def token_of(c: dict[str, Any]) -> dict[str, Any]:
        # (--again sets requested_at too: that is what makes the stage run)
        return {"approved": bool(c["approved_at"]), "requested": c["requested_at"],
                "schedule": [int(c["schedule_set"] or 0), c["schedule"]]}
