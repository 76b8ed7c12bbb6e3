"""Which API, with which key, and what the pusher needs of a client.

The URL comes from --api-url or AFX_API_URL, the key only from AFX_API_KEY (a key never
goes on a command line, where `ps` and shell history would keep it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from afx.client import Client
from afx.errors import UsageError


def credentials(environ: Mapping[str, str], api_url: str | None) -> tuple[str, str]:
    """(URL, key), or UsageError naming what is missing."""
    url = (api_url or environ.get("AFX_API_URL") or "").strip()
    key = (environ.get("AFX_API_KEY") or "").strip()
    if not url:
        raise UsageError("no API URL: pass --api-url or set AFX_API_URL",
                         hint="e.g. https://api.auraflux.co/v1, or the URL `afx serve` prints")
    if not key:
        raise UsageError("no API key: set AFX_API_KEY", hint="keys for `afx serve` come from `afx keys create`")
    return url, key


def open_client(environ: Mapping[str, str], api_url: str | None, **kw: Any) -> Client:
    url, key = credentials(environ, api_url)
    return Client(url, key, **kw)


class Api(Protocol):
    """The part of `afx.client.Client` a push uses; tests give the pusher a fake."""

    @property
    def api(self) -> str: ...  # the base URL, as afx.lock keys its records

    @property
    def replayed(self) -> bool: ...  # the last answer was one stored for its Idempotency-Key

    def afx_version(self) -> str | None: ...
    def upload(self, path: str | Path, idempotency_key: str | None = None) -> dict[str, Any]: ...
    def submit_job(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]: ...
    def schedule(self, job_id: str, at: str | None) -> dict[str, Any]: ...
    def get_job(self, job_id: str) -> dict[str, Any]: ...
    def list_jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> dict[str, Any]: ...
    def get_result(self, job_id: str) -> tuple[int, dict[str, Any]]: ...
    def download(self, url: str, dest: str | Path) -> Path: ...
