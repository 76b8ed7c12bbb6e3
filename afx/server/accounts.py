"""Accounts, API keys and credits.

Keys read `af_live_<id>_<secret>`. Only the sha256 of the whole key is stored; a request's
key is found by its public id and its hash compared with `hmac.compare_digest`, so neither
a database dump nor response timing gives a key away.

Credits (the API reference): a short single-clip job costs 1, long or multi-clip 2,
generate 3. The debit happens in the transaction that creates the job; a refund at most
once per job (a unique constraint on (job, kind) in the append-only credit ledger).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from afx.server import db

PLANS = {"operate": 50, "guided": 50}  # credits included with a plan
KEY_RE = re.compile(r"^af_live_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")


@dataclass(frozen=True)
class Account:
    id: str
    plan: str
    included: int
    balance: int
    key_id: str = ""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_account(engine: Engine, plan: str = "operate", credits: int | None = None) -> Account:
    included = PLANS[plan] if credits is None else credits
    account = Account(new_id("acct"), plan, included, included)
    with db.write(engine) as conn:
        conn.execute(insert(db.accounts).values(id=account.id, plan=plan, included=included, balance=included,
                                                created=time.time()))
        conn.execute(insert(db.credit_events).values(account_id=account.id, kind="grant", amount=included,
                                                     reason=f"{plan} plan", created=time.time()))
    return account


def create_key(engine: Engine, account_id: str) -> str:
    """A new key for the account. Returned once: only its hash is kept."""
    key_id = secrets.token_hex(6)
    key = f"af_live_{key_id}_{secrets.token_urlsafe(30)}"
    with db.write(engine) as conn:
        if conn.execute(select(db.accounts.c.id).where(db.accounts.c.id == account_id)).first() is None:
            raise LookupError(f"no account {account_id!r}")
        conn.execute(insert(db.api_keys).values(id=key_id, account_id=account_id, key_hash=_hash(key),
                                                created=time.time(), revoked=False))
    return key


def authenticate(engine: Engine, key: str) -> Account | None:
    m = KEY_RE.match(key or "")
    if not m:
        hmac.compare_digest(_hash(key or ""), _hash("af_live_"))  # the same work as a real check
        return None
    with db.read(engine) as conn:
        row = conn.execute(
            select(db.api_keys.c.key_hash, db.api_keys.c.revoked, db.accounts)
            .join(db.accounts, db.accounts.c.id == db.api_keys.c.account_id)
            .where(db.api_keys.c.id == m.group(1))).mappings().first()
    stored = row["key_hash"] if row else _hash("missing")
    if not hmac.compare_digest(stored, _hash(key)) or row is None or row["revoked"]:
        return None
    return Account(row["id"], row["plan"], row["included"], row["balance"], m.group(1))


def credit_cost(fields: Mapping[str, Any]) -> int:
    """The reference's price list: generate 3; long-form or multi-clip 2; otherwise 1."""
    if fields.get("entry") == "generate":
        return 3
    clips = set(fields.get("urls") or ()) | ({fields["url"]} if fields.get("url") else set())
    if fields.get("format") == "long" or len(clips) > 1:
        return 2
    return 1


def debit(conn: Connection, account_id: str, job_id: str, amount: int) -> bool:
    """Take `amount` for a job inside the caller's transaction. False: the balance is short."""
    done = conn.execute(update(db.accounts).where(db.accounts.c.id == account_id, db.accounts.c.balance >= amount)
                        .values(balance=db.accounts.c.balance - amount))
    if done.rowcount != 1:
        return False
    conn.execute(insert(db.credit_events).values(account_id=account_id, job_id=job_id, kind="debit",
                                                 amount=-amount, reason="job submitted", created=time.time()))
    return True


def refund(conn: Connection, account_id: str, job_id: str, reason: str) -> bool:
    """Give a job's credits back, once. False if it was refunded already (or never charged)."""
    charged = conn.execute(select(db.credit_events.c.amount).where(
        db.credit_events.c.job_id == job_id, db.credit_events.c.kind == "debit")).scalar()
    if not charged:
        return False
    try:
        with conn.begin_nested():
            conn.execute(insert(db.credit_events).values(account_id=account_id, job_id=job_id, kind="refund",
                                                         amount=-charged, reason=reason, created=time.time()))
    except IntegrityError:
        return False  # refunded before
    conn.execute(update(db.accounts).where(db.accounts.c.id == account_id)
                 .values(balance=db.accounts.c.balance - charged))
    return True


def summary(engine: Engine, account_id: str) -> dict[str, Any]:
    with db.read(engine) as conn:
        acct = conn.execute(select(db.accounts).where(db.accounts.c.id == account_id)).mappings().one()
        used = conn.execute(select(func.coalesce(func.sum(db.credit_events.c.amount), 0)).where(
            db.credit_events.c.account_id == account_id, db.credit_events.c.kind.in_(("debit", "refund")))).scalar()
    return {"accountId": acct["id"], "planTier": acct["plan"],
            "credits": {"balance": acct["balance"], "included": acct["included"], "used": -int(used or 0)}}


def check_ledger(engine: Engine, account_id: str) -> bool:
    """The balance equals the sum of the ledger (a test and `afx keys` use this)."""
    with db.read(engine) as conn:
        total = conn.execute(select(func.coalesce(func.sum(db.credit_events.c.amount), 0)).where(
            db.credit_events.c.account_id == account_id)).scalar_one()
        balance = conn.execute(select(db.accounts.c.balance).where(db.accounts.c.id == account_id)).scalar_one()
    return int(total) == int(balance)
