"""`afx serve`: the AuraFlux v1 API over afx's own engine (issue 7).

    settings   where data lives, limits, worker count (flags and AFX_* variables)
    db         SQLAlchemy tables and migrations (SQLite WAL by default, Postgres by URL)
    accounts   API keys (hashed), credits (an append-only ledger), GET /account
    jobs       submission (resolve -> debit -> insert, in one transaction), status shapes
    clips      a job with clips and its clip jobs: made together, settled when it has run
    uploads    streaming multipart upload with the 500 MB limit enforced as bytes arrive
    limits     per-key request rate limit
    worker     background workers: claim queued jobs, run each in an executor worker
               (afx/engine/executor.py, as `afx run` does), and decide its outcome
    resolver   POST bodies resolved off the event loop, in forkserver processes, on a budget
    templates  an account's templates (what `fromTemplateId` names)
    app        create_app: the FastAPI app's services, routers, handlers, middleware
    routes/    the endpoints, one APIRouter a module (jobs, files, uploads, templates, account)
    deps       what routes share: services, the caller (auth + rate limit), bodies, Idempotency-Key
    models     the answers' documented shapes (pydantic) and the JSON encoder
    handlers   every error as {"error": {"code", "message", ...}}
    openapi    /openapi.json, with the real job and template schemas
    idempotency  Idempotency-Key rows: claim, replay, release, expiry
"""
