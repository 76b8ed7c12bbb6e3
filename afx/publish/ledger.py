"""The publish ledger: every attempt and result, so a job is never published twice (issue 6).

One row per (job, platform) with its state; an append-only event log of every attempt;
per-job controls (approved, publish requested, schedule override). The same logic runs over
both backends of afx.publish.ledgerdb: the repo's own SQLite file, or a shared PostgreSQL
database where each row also carries its owner (afx.publish.location).

A publisher claims a row before it uploads. The claim is race-free on either backend: on
SQLite the write transaction holds the file's write lock (BEGIN IMMEDIATE); on PostgreSQL
the row is created if absent (INSERT ... ON CONFLICT DO NOTHING) and then locked (SELECT
... FOR UPDATE) until the claim commits, so of two machines claiming one (job, platform)
exactly one wins. A claim held by a live process on this machine is respected, one held by
a dead process is taken over, one by another machine is trusted until its lease runs out;
a published row is never claimed again. A resumable upload's session is saved as it
progresses so the next attempt resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from afx import procs, times
from afx.publish.ledgerdb import controls as C
from afx.publish.ledgerdb import engine_for
from afx.publish.ledgerdb import events as E
from afx.publish.ledgerdb import publishes as P
from afx.publish.location import Location, ledger_path

__all__ = ["Ledger", "ledger_path", "owner_id"]


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


class Ledger:
    LEASE = 6 * 3600  # seconds a claim by another machine holds

    def __init__(self, where: Path | Location) -> None:
        """`where`: a spec repo's root (its own file) or a Location (afx.publish.location)."""
        self.location = where if isinstance(where, Location) else Location(Path(where))
        self.owner = self.location.owner
        self.path = self.location.path
        engine = engine_for(self.location)
        self._postgres = engine.dialect.name == "postgresql"
        self.db: Connection = engine.connect()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        self.db.execution_options(afx_write=write)
        with self.db.begin():
            yield self.db

    def _insert(self, db: Connection, table: Any, **values: Any) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING: whether the row was made (False: it was there).
        (Told by RETURNING: psycopg's rowcount is -1 for it.)"""
        dialect = postgresql if self._postgres else sqlite
        q = dialect.insert(table).values(owner=self.owner, **values).on_conflict_do_nothing()
        return db.execute(q.returning(table.c.job)).first() is not None

    def _key(self, job: str, platform: str) -> tuple[ColumnElement[bool], ...]:
        return P.c.owner == self.owner, P.c.job == job, P.c.platform == platform

    def _event(self, db: Connection, job: str, platform: str | None, kind: str, detail: str | None,
               at: float | None = None) -> None:
        db.execute(insert(E).values(owner=self.owner, job=job, platform=platform, time=at or time.time(),
                                    kind=kind, detail=detail))

    # -- rows -----------------------------------------------------------------------------
    def row(self, job: str, platform: str) -> dict[str, Any] | None:
        with self._tx(write=False) as db:
            r = db.execute(select(P).where(*self._key(job, platform))).mappings().first()
        return _row(r) if r is not None else None

    def rows(self, job: str | None = None) -> list[dict[str, Any]]:
        q = select(P).where(P.c.owner == self.owner).order_by(P.c.job, P.c.platform)
        with self._tx(write=False) as db:
            found = db.execute(q.where(P.c.job == job) if job else q).mappings().all()
        return [_row(r) for r in found]

    def claim(self, job: str, platform: str, publisher: str, digest: str, content: str | None = None
              ) -> dict[str, Any] | None:
        """The row, now held by this process; None if another live process holds it.
        A published row comes back as it is (nothing to do)."""
        me = owner_id()
        now = time.time()
        with self._tx() as db:
            if not self._insert(db, P, job=job, platform=platform, state="pending", publisher=publisher,
                                video_digest=digest, content=content, claimed_by=me, claimed_at=now, updated=now):
                r = db.execute(select(P).where(*self._key(job, platform)).with_for_update()).mappings().one()
                if r["state"] == "published":
                    return _row(r)
                if r["claimed_by"] and r["claimed_by"] != me and _alive(r["claimed_by"]) \
                        and now - (r["claimed_at"] or 0) < self.LEASE:
                    return None
                db.execute(update(P).where(*self._key(job, platform)).values(
                    claimed_by=me, claimed_at=now, attempts=P.c.attempts + 1, updated=now,
                    publisher=func.coalesce(P.c.publisher, publisher), video_digest=digest, content=content))
            self._event(db, job, platform, "claim", me, now)
        return self.row(job, platform)

    def save(self, job: str, platform: str, *, state: str | None = None, session: dict[str, Any] | None = None,
             remote_id: str | None = None, url: str | None = None, error: str | None = None,
             event: str | None = None) -> None:
        now = time.time()
        values: dict[str, Any] = {"updated": now}
        for col, value in (("state", state), ("remote_id", remote_id), ("url", url)):
            if value is not None:
                values[col] = value
        if session is not None:
            values["session"] = json.dumps(session)
        if error is not None or state == "published":
            values["error"] = error
        if state == "published":
            values["published_at"] = now
        with self._tx() as db:
            db.execute(update(P).where(*self._key(job, platform)).values(**values))
            self._event(db, job, platform, event or state or "progress",
                        json.dumps({"remote_id": remote_id, "error": error, "session": session}), now)

    def adopt(self, job: str, platform: str, record: Mapping[str, Any], source: str) -> dict[str, Any] | None:
        """Record a publish known from elsewhere (afx.lock) for a row that is not published:
        the row becomes published with its remote id and URL. Returns the row."""
        now = time.time()
        when = record.get("publishedAt")
        at = times.timestamp(str(when)) if when else now
        at = now if at is None else at
        if not 946684800 <= at <= now + 86400:  # 2000-01-01 .. tomorrow; otherwise: now
            at = now
        values = {"publisher": str(record.get("publisher") or "") or None,
                  "remote_id": str(record.get("remoteId") or "") or None,
                  "url": str(record.get("url") or "") or None, "video_digest": str(record.get("video") or "") or None,
                  "content": str(record.get("content") or "") or None, "updated": now, "published_at": at}
        with self._tx() as db:
            if not self._insert(db, P, job=job, platform=platform, state="published", **values):
                r = db.execute(select(P).where(*self._key(job, platform)).with_for_update()).mappings().one()
                if r["state"] == "published":
                    return _row(r)
                # what it was made from is the record's (or unknown): never the row's old guess
                db.execute(update(P).where(*self._key(job, platform)).values(
                    {**values, "state": "published", "publisher": func.coalesce(values["publisher"], P.c.publisher),
                     "error": None, "session": None, "claimed_by": None, "claimed_at": None}))
            self._event(db, job, platform, "adopted", json.dumps({"from": source, **record}), now)
        return self.row(job, platform)

    def published_content(self, platform: str, content: str, *, besides: str) -> list[dict[str, Any]]:
        """Rows of other jobs (retired ones too) that published the same content on `platform`."""
        with self._tx(write=False) as db:
            found = db.execute(select(P).where(P.c.owner == self.owner, P.c.platform == platform,
                                               P.c.content == content, P.c.state == "published", P.c.job != besides)
                               .order_by(P.c.published_at)).mappings().all()
        return [_row(r) for r in found]

    def retire(self, keep: set[str]) -> list[str]:
        """Jobs not in `keep` (gone from the specs) give up their names: their rows move to
        `<job>#retired-<time>`, so a new job of that name starts unpublished, while a job
        with the same content still finds them (published_content). Returns the jobs retired."""
        now = time.time()
        mine = P.c.owner == self.owner
        with self._tx() as db:
            # Published rows only: a row being uploaded (another afx, a cron with another
            # cache folder) is left to finish and be recorded.
            found = db.execute(select(P.c.job).distinct().where(mine, P.c.state == "published")).scalars()
            names = [j for j in found if j not in keep and "#retired-" not in j]
            for job in names:
                db.execute(update(P).where(mine, P.c.job == job, P.c.state == "published")
                           .values(job=f"{job}#retired-{time.time_ns()}"))
                self._event(db, job, None, "retired", "gone from the specs", now)
            # A new job that takes a gone job's name starts without its approval or schedule.
            gone = [j for j in db.execute(select(C.c.job).where(C.c.owner == self.owner)).scalars() if j not in keep]
            for job in gone:
                db.execute(delete(C).where(C.c.owner == self.owner, C.c.job == job))
        return names

    def retire_row(self, job: str, platform: str) -> None:
        """One post under `job`'s name that is not this job's (see the publish stage)."""
        with self._tx() as db:
            db.execute(update(P).where(*self._key(job, platform), P.c.state == "published")
                       .values(job=f"{job}#retired-{time.time_ns()}"))
            self._event(db, job, platform, "retired", "the post is another job's")

    def release(self, job: str, platform: str) -> None:
        with self._tx() as db:
            db.execute(update(P).where(*self._key(job, platform), P.c.claimed_by == owner_id())
                       .values(claimed_by=None, claimed_at=None))

    def events(self, job: str) -> list[dict[str, Any]]:
        with self._tx(write=False) as db:
            found = db.execute(select(E).where(E.c.owner == self.owner, E.c.job == job).order_by(E.c.id)).mappings()
            return [{k: v for k, v in r.items() if k != "owner"} for r in found]

    # -- controls -------------------------------------------------------------------------
    def controls(self, job: str) -> dict[str, Any]:
        with self._tx(write=False) as db:
            r = db.execute(select(C).where(C.c.owner == self.owner, C.c.job == job)).mappings().first()
        return _controls(r) if r else {"job": job, "approved_at": None, "requested_at": None, "schedule": None,
                                       "schedule_set": 0, "republish_at": None}

    def all_controls(self) -> dict[str, dict[str, Any]]:
        with self._tx(write=False) as db:
            return {r["job"]: _controls(r) for r in db.execute(select(C).where(C.c.owner == self.owner)).mappings()}

    def stamp(self) -> tuple[Any, ...]:
        """What changes when the controls may have (every control change logs an event; a
        retire deletes rows)."""
        with self._tx(write=False) as db:
            last = db.execute(select(func.max(E.c.id)).where(E.c.owner == self.owner)).scalar()
            count = db.execute(select(func.count()).select_from(C).where(C.c.owner == self.owner)).scalar()
        return last, count

    def _control(self, job: str, **values: Any) -> None:
        with self._tx() as db:
            self._insert(db, C, job=job)
            db.execute(update(C).where(C.c.owner == self.owner, C.c.job == job).values(**values))
            self._event(db, job, None, "control", json.dumps(values))

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
            db.execute(update(C).where(C.c.owner == self.owner, C.c.job == job, C.c.republish_at == asked)
                       .values(republish_at=None))

    def supersede(self, job: str, platform: str) -> dict[str, Any] | None:
        """A published row made ready for a new post (its old post stays in the event log).
        Returns the old row."""
        now = time.time()
        with self._tx() as db:
            r = db.execute(select(P).where(*self._key(job, platform)).with_for_update()).mappings().first()
            if r is None or r["state"] != "published":
                return None
            old = _row(r)
            db.execute(update(P).where(*self._key(job, platform), P.c.state == "published").values(
                state="pending", remote_id=None, url=None, session=None, error=None, published_at=None, updated=now))
            self._event(db, job, platform, "superseded",
                        json.dumps({"remote_id": old["remote_id"], "url": old["url"], "video": old["video_digest"],
                                    "content": old["content"], "published_at": old["published_at"]}), now)
        return old

    def schedule(self, job: str, at: str | None) -> None:
        """A schedule set here wins over the spec's scheduledAt; None unschedules."""
        self._control(job, schedule=at, schedule_set=1)

    def state_token(self, job: str) -> dict[str, Any]:
        """What of the ledger a publish stage depends on (fingerprinted): the controls. Not the
        publish rows: the stage writes those itself, and its runs are idempotent anyway."""
        return self.token_of(self.controls(job))

    @staticmethod
    def token_of(c: Mapping[str, Any]) -> dict[str, Any]:
        from afx.publish.policy import ledger_token

        return ledger_token(c)


def _row(r: Mapping[Any, Any]) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if k != "owner"}
    out["session"] = json.loads(out["session"]) if out["session"] else {}
    return out


def _controls(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "owner"}
