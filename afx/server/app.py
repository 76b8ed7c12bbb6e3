"""The AuraFlux v1 API (../docs/auraflux-api-v1.txt) as a FastAPI app over afx's engine.

`create_app` makes the app's services (the database, the job workers, the resolver
processes, the rate limiter, the key cache; afx.server.deps.Services), includes the routers
of afx.server.routes, and installs the error handlers (afx.server.handlers: every error
answer is {"error": {"code", "message", ...}}) and the OpenAPI document (afx.server.openapi).
The workers and resolvers start with the app's lifespan and stop with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from afx import __version__
from afx.server import db, handlers, openapi
from afx.server.deps import KeyCache, Services
from afx.server.limits import RateLimiter, SharedRateLimiter
from afx.server.models import SafeJSON
from afx.server.openapi import api_schemas
from afx.server.resolver import Resolvers
from afx.server.routes import ROUTERS
from afx.server.settings import Settings

if TYPE_CHECKING:
    from afx.server.pgworker import PgWorkers
    from afx.server.worker import Workers

__all__ = ["api_schemas", "create_app", "job_workers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app(settings: Settings, *, start_workers: bool = True, run_jobs: bool = True) -> FastAPI:
    """The app over `settings`; with start_workers=False no job runs (the routes still answer).
    run_jobs=False (`afx serve --no-workers`): an API-only front; `afx worker` runs the jobs.

    The queue follows the database: on SQLite the jobs table (afx.server.worker), on
    PostgreSQL procrastinate (afx.server.pgworker)."""
    engine = db.connect(settings.database_url)
    limiter: RateLimiter | SharedRateLimiter = (  # see afx.server.limits: why per database
        SharedRateLimiter(engine, settings.rate_limit) if engine.dialect.name == "postgresql"
        else RateLimiter(settings.rate_limit))
    workers = job_workers(engine, settings, jobs=run_jobs)
    resolvers = Resolvers(settings.resolvers, settings.resolve_budget)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            workers.start()
        resolvers.warm()
        try:
            yield
        finally:
            resolvers.close()
            workers.stop()
            engine.dispose()

    app = FastAPI(title="AuraFlux-compatible API (afx serve)", version=__version__, lifespan=lifespan,
                  default_response_class=SafeJSON,
                  description="The AuraFlux v1 API, served by afx over its own engine. "
                              "Authenticate with `Authorization: Bearer af_live_...`.")
    app.state.services = Services(engine=engine, settings=settings, workers=workers, resolvers=resolvers,
                                  limiter=limiter, keys=KeyCache(engine))
    app.add_middleware(_RateHeaders)
    handlers.install(app)
    for router in ROUTERS:
        app.include_router(router)
    openapi.install(app)
    return app


def job_workers(engine: Engine, settings: Settings, *, jobs: bool = True) -> Workers | PgWorkers:
    """The job workers of the database's queue (imported here: the engine behind them loads
    only when an app or a worker is made)."""
    if engine.dialect.name == "postgresql":
        from afx.server.pgworker import PgWorkers

        return PgWorkers(engine, settings, jobs=jobs)
    from afx.server.worker import Workers

    return Workers(engine, settings, jobs=jobs)


class _RateHeaders:
    """Adds X-Afx-Version and the RateLimit headers of the request's key to every answer (pure ASGI)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                # Clients (afx push) send afx's extension fields (script, copy, render) only to afx.
                headers.append((b"x-afx-version", __version__.encode()))
                verdict = (scope.get("state") or {}).get("ratelimit")
                if verdict is not None:
                    present = {k.lower() for k, _ in headers}
                    for k, v in verdict.headers().items():
                        if k.lower().encode() not in present:
                            headers.append((k.lower().encode(), v.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
