"""`afx serve`: the AuraFlux v1 API over afx's own engine (issue 7).

    settings   where data lives, limits, worker count (flags and AFX_* variables)
    db         SQLAlchemy tables and migrations (SQLite WAL by default, Postgres by URL)
    accounts   API keys (hashed), credits (an append-only ledger), GET /account
    jobs       submission (resolve -> debit -> insert, in one transaction), status shapes
    uploads    streaming multipart upload with the 500 MB limit enforced as bytes arrive
    limits     per-key request rate limit
    worker     background workers: claim queued jobs, run each in a child process
    child      the child: one job through the same engine `afx run` uses
    app        the FastAPI app: routes, auth, idempotency, errors
"""
