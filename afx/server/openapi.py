"""/openapi.json: FastAPI's document of the routes, with the job and template bodies as the
real JSON schemas (afx/spec/schemas), not pydantic copies of them.

`install(app)` makes `app.openapi` build the document once and keep it; `api_schemas()` is
the JobSpec / TemplateSpec components on their own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from afx.spec.schema import schema

HTTP_REFUSED = ("file", "matrix", "name")  # local paths, matrices: refused over HTTP; the server names jobs
CUSTOM = ("errorMessage", "patternErrorMessage", "x-afx-field", "x-afx-at", "$comment")


def install(app: FastAPI) -> None:
    app.openapi = _builder(app)  # type: ignore[method-assign]


def _builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(api_schemas())
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                            "description": "af_live_... API key"}}
        spec["security"] = [{"bearer": []}]
        spec["servers"] = [{"url": "/"}]
        app.openapi_schema = spec
        return spec

    return build


def api_schemas() -> dict[str, Any]:
    """The job and template schemas as OpenAPI components (JobSpec, TemplateSpec, JobSpec_<def>).

    Field by field the same schemas; the cross-field rules (url for fetch, scheduledAt for
    scheduled...) are listed in the description instead of as if/then, which OpenAPI tools
    render poorly and test generators cannot use; the server enforces them all (422).
    """
    job, template = copy.deepcopy(schema("job")), copy.deepcopy(schema("template"))
    out: dict[str, Any] = {}
    for name, def_schema in job.pop("$defs", {}).items():
        out[f"JobSpec_{name}"] = _clean(_rewrite_refs(def_schema, "JobSpec_"))
    rules = [r.get("errorMessage", "") for r in (job.get("allOf") or [{}])[0].get("then", {}).get("allOf", [])]
    job_props = {k: _clean(_rewrite_refs(v, "JobSpec_")) for k, v in job["properties"].items()}
    out["JobSpec"] = {
        "title": job.get("title"), "type": "object", "additionalProperties": False,
        "description": (job.get("description", "") + " Over HTTP, local files and matrices are not accepted "
                        "(upload files with POST /upload). Rules across fields, checked by the server (422): "
                        + "; ".join(r for r in rules if r) + "."),
        "properties": {k: v for k, v in job_props.items() if k not in HTTP_REFUSED},
    }
    template.pop("$defs", None)
    t_props = {}
    for key, value in template["properties"].items():
        ref = value.get("$ref", "") if isinstance(value, dict) else ""
        if ref.startswith("job.schema.json#/properties/"):
            value = {**job_props[ref.rsplit("/", 1)[1]], **{k: v for k, v in value.items() if k != "$ref"}}
        t_props[key] = _clean(value)
    out["TemplateSpec"] = {"title": template.get("title"), "type": "object", "additionalProperties": False,
                           "description": template.get("description", ""),
                           "properties": {k: v for k, v in t_props.items() if k not in ("id", *HTTP_REFUSED)}}
    return out


def _clean(node: Any) -> Any:
    """The schema without afx's own keywords (error texts, field names for messages)."""
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if k not in CUSTOM}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """`#/$defs/x` as `#/components/schemas/<prefix>x`: the defs become components of their own."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = "#/components/schemas/" + prefix + v[len("#/$defs/"):]
            else:
                out[k] = _rewrite_refs(v, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node
