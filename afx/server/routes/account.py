"""GET /v1/account: plan, credits, and where the caller stands against its limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from afx.server import accounts, jobs
from afx.server.accounts import Account
from afx.server.deps import Services, account, services
from afx.server.models import AccountInfo, errors

router = APIRouter()


@router.get("/v1/account", response_model=AccountInfo, tags=["account"], summary="Get account info",
            responses=errors(401, 429))
def get_account(request: Request, acct: Account = Depends(account),
                srv: Services = Depends(services)) -> dict[str, Any]:
    info = accounts.summary(srv.engine, acct.id)
    verdict = request.state.ratelimit  # this very request's, counted by `account`
    info["rateLimit"] = {"limit": verdict.limit, "remaining": verdict.remaining,
                         "reset": int(verdict.reset + 0.999), "windowSeconds": 60}
    info["concurrency"] = {"limit": srv.settings.max_active, "active": jobs.active_count(srv.engine, acct.id)}
    return info

