"""A small HTTP client for the platform adapters: status codes come back, network errors raise."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from afx.publish.base import PublishError

TIMEOUT = float(os.environ.get("AFX_PUBLISH_TIMEOUT", "60"))
def upload_chunk() -> int:
    """Bytes per upload request (AFX_UPLOAD_CHUNK; tests make it small)."""
    return int(os.environ.get("AFX_UPLOAD_CHUNK", str(8 * 1024 * 1024)))


def poll_seconds() -> float:
    """Seconds between status checks of a platform's processing (AFX_PUBLISH_POLL)."""
    return float(os.environ.get("AFX_PUBLISH_POLL", "2"))


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {}


def call(method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None, body: bytes | None = None,
         data: Any = None) -> Response:
    hdrs = dict(headers or {})
    if data is not None:
        body = json.dumps(data).encode()
        hdrs.setdefault("Content-Type", "application/json; charset=UTF-8")
    request = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:  # noqa: S310 - configured API
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers or {}), exc.read() if exc.fp else b"")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PublishError(f"{what}: {url.split('?')[0]} did not answer ({getattr(exc, 'reason', exc)})",
                           hint="the job stays publishable: it is retried on the next run") from None


def auth_error(what: str, env: str, response: Response) -> PublishError:
    return PublishError(f"{what}: the platform refused the credentials (HTTP {response.status}): "
                        f"{_reason(response)}", hint=f"refresh {env}; the job stays publishable")


def _reason(response: Response) -> str:
    data = response.json()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)[:200]
    return response.body[:200].decode("utf-8", "replace") or "no reason given"


def failure(what: str, response: Response) -> PublishError:
    return PublishError(f"{what}: HTTP {response.status}: {_reason(response)}",
                        hint="the job stays publishable: it is retried on the next run")
