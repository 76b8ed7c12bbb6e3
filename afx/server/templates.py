"""An account's templates: what `fromTemplateId` in a job body names (GET/POST/DELETE /v1/templates).

A template is stored as the JSON body it was created with; the name and creation time are
columns of their own. A job resolves against the templates as they are when it is
submitted: its resolved fields are stored with it, so deleting a template later changes no job.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import RowMapping, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import Engine

from afx import times
from afx.errors import SpecError
from afx.server import accounts, db


def bodies(engine: Engine, account_id: str) -> dict[str, dict[str, Any]]:
    """Template id -> body, for resolving the account's job bodies."""
    with db.read(engine) as conn:
        rows = conn.execute(select(db.templates.c.id, db.templates.c.body)
                            .where(db.templates.c.account_id == account_id)).all()
    return {r.id: json.loads(r.body) for r in rows}


def listed(engine: Engine, account_id: str) -> list[dict[str, Any]]:
    """The account's templates as GET shows them, oldest first."""
    with db.read(engine) as conn:
        rows = conn.execute(select(db.templates).where(db.templates.c.account_id == account_id)
                            .order_by(db.templates.c.created, db.templates.c.id)).mappings().all()
    return [view(r) for r in rows]


def create(engine: Engine, account_id: str, body: Any) -> dict[str, Any]:
    """A new template of `body`, as GET shows it. Raises SpecError (422) for a body that is
    not a template."""
    from afx.spec.api import template_problems

    problems = template_problems(body)
    if problems:
        raise SpecError(problems)
    tid, now = accounts.new_id("tpl"), time.time()
    with db.write(engine) as conn:
        conn.execute(insert(db.templates).values(id=tid, account_id=account_id, name=body.get("name"),
                                                 body=json.dumps(body, sort_keys=True), created=now))
        row = conn.execute(select(db.templates).where(db.templates.c.id == tid)).mappings().one()
    return view(row)


def delete(engine: Engine, account_id: str, template_id: str) -> bool:
    """False when the account has no such template (another account's is as absent)."""
    with db.write(engine) as conn:
        done = conn.execute(sql_delete(db.templates).where(db.templates.c.id == template_id,
                                                           db.templates.c.account_id == account_id))
    return bool(done.rowcount == 1)


def view(row: RowMapping) -> dict[str, Any]:
    body = json.loads(row["body"])
    return {"id": row["id"], **body, "name": row["name"], "createdAt": times.iso(row["created"])}
