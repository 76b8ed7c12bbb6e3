"""/v1/templates: list, create and delete the account's templates (afx.server.templates)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from afx.errors import shown
from afx.server import templates
from afx.server.accounts import Account
from afx.server.deps import Services, account, idempotent, in_thread, json_body, services
from afx.server.jobs import Refused
from afx.server.models import Deleted, Template, TemplateList, errors

router = APIRouter()

# The body is read by json_body, not by FastAPI, so the document names the real schema itself.
TEMPLATE_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/TemplateSpec"}}}}}


@router.get("/v1/templates", response_model=TemplateList, tags=["templates"], summary="List templates",
            responses=errors(401, 429))
def list_templates(acct: Account = Depends(account), srv: Services = Depends(services)) -> dict[str, Any]:
    return {"templates": templates.listed(srv.engine, acct.id)}


@router.post("/v1/templates", status_code=201, response_model=Template, tags=["templates"],
             summary="Create a template", responses=errors(401, 409, 413, 415, 422, 429),
             openapi_extra=TEMPLATE_BODY)
async def create_template(request: Request, acct: Account = Depends(account),
                          srv: Services = Depends(services)) -> JSONResponse:
    raw, body = await json_body(request)
    return await idempotent(request, acct, raw, in_thread(lambda: (201, templates.create(srv.engine, acct.id, body))))


@router.delete("/v1/templates/{template_id}", response_model=Deleted, tags=["templates"],
               summary="Delete a template", responses=errors(401, 404, 429))
def delete_template(template_id: str, acct: Account = Depends(account),
                    srv: Services = Depends(services)) -> dict[str, Any]:
    if not templates.delete(srv.engine, acct.id, template_id):
        raise Refused(404, "not_found", f"no template {shown(template_id)}")
    return {"id": template_id, "deleted": True}
