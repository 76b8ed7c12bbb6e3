"""A small synchronous client for any AuraFlux-compatible API (docs/auraflux-api-v1.txt).

    client = Client("https://api.auraflux.co", key)      # or .../v1: both mean the same
    created = client.submit_job(body, idempotency_key="afx-...")
    client.get_job(created["jobId"])

- Every error is an ApiError (exit status 4): the HTTP status, the API's error code and
  message, and for a 422 the `fields` it names; its text reads like
  `POST /v1/jobs: 422 invalid_request: durationMins: 200 is greater than the maximum of 120`.
  A connection that fails is an ApiError too, naming the URL.
- Retries: a 429 that says when to come back (Retry-After, capped) is retried whatever the
  method (the server did nothing); 502/503/504, a 409 `idempotency_in_flight`, and network
  errors only for requests that are safe to repeat: GET, DELETE, the PATCH of a schedule,
  and POSTs carrying an Idempotency-Key. A connection that was never made is safe for all.
- Uploads and downloads stream: a 500 MB file is never held in memory. A download is
  written to a temp file next to its target and moved into place (os.replace); the API key
  goes with it only when the URL is on the API's own origin.
- The API key is never logged, printed, or put in an error or repr.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from afx import __version__
from afx.errors import ExitStatus, RemoteError, UsageError

log = logging.getLogger("afx.client")
_T = TypeVar("_T")

DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: the longest a Retry-After is honoured for
pause = time.sleep  # between retries (tests replace it)
_HINTS = {
    401: "check AFX_API_KEY (an `afx serve` key comes from `afx keys create`)",
    402: "the account is out of credits",
    403: "this key may not do that",
}


class ApiError(RemoteError):
    """An API answered with an error, or could not be reached. Exit status 4."""

    exit_status = ExitStatus.REMOTE_ERROR

    def __init__(self, message: str, *, method: str = "", path: str = "", status: int | None = None,
                 code: str = "", detail: str = "", fields: Iterable[Mapping[str, Any]] = (),
                 extra: Mapping[str, Any] | None = None, replayed: bool = False, retry_after: float | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.method, self.path, self.status, self.code, self.detail = method, path, status, code, detail
        self.fields = [dict(f) for f in fields]
        self.extra = dict(extra or {})
        self.replayed = replayed  # the server replayed a stored answer (Idempotent-Replayed)
        self.retry_after = retry_after  # seconds the server asked us to wait (429, 503)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update({"status": self.status, "code": self.code, "detail": self.detail, "fields": self.fields,
                     "request": f"{self.method} {self.path}".strip()})
        return data

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.fields if f.get("field") == name), None)


def api_root(base_url: str) -> str:
    """`https://h/x`, `https://h/x/`, `https://h/x/v1` and `https://h/x/v1/` -> `https://h/x/v1`."""
    text = (base_url or "").strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UsageError(f"{text!r} is not a URL ({exc})", hint="e.g. https://api.auraflux.co/v1") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{text!r} is not an http(s) URL", hint="e.g. https://api.auraflux.co/v1")
    if url.query or url.fragment or url.userinfo:
        raise UsageError(f"{text!r}: give the API's base URL without credentials, a query or a fragment")
    path = url.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{url.scheme}://{url.netloc.decode('ascii')}{path}/v1"


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    default = {"http": 80, "https": 443}.get(url.scheme, 0)
    return url.scheme, url.host.lower(), url.port or default


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds a 429/503 asks us to wait: the Retry-After header, else the body's retryAfter."""
    value = response.headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - (time.time() if now is None else now))
    try:
        seconds = response.json()["error"]["retryAfter"]
    except Exception:  # noqa: BLE001 - any body without one
        return None
    return float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else None


class Client:
    """One API, one key. Methods return the answer's JSON; errors raise ApiError."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, retries: int = 3, backoff: float = 0.5,
                 max_retry_after: float = MAX_RETRY_AFTER, sleep: Callable[[float], None] | None = None) -> None:
        if not api_key or not api_key.strip():
            raise UsageError("no API key", hint="set AFX_API_KEY")
        self.api = api_root(base_url)
        self._url = httpx.URL(self.api)
        self.__key = api_key.strip()
        self.retries, self.backoff, self.max_retry_after, self._sleep = retries, backoff, max_retry_after, sleep
        self.last_response: httpx.Response | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False,
                                  headers={"User-Agent": f"afx/{__version__}", "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"Client({self.api!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------
    def submit_job(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /jobs -> {"jobId", "status", "creditCost", "balance"}."""
        return self._json("POST", "/jobs", json_body=body, idempotency_key=idempotency_key)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{_seg(job_id)}")

    def get_result(self, job_id: str) -> tuple[int, dict[str, Any]]:
        """GET /jobs/:id/result -> (200, result) when complete, (202, status) until then."""
        response = self._request("GET", f"/jobs/{_seg(job_id)}/result")
        return response.status_code, self._decode(response)

    def list_jobs(self, limit: int = 20, offset: int = 0, status: str | None = None,
                  parent_id: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if parent_id:
            params["parentId"] = parent_id  # afx serve: a job with clips' clip jobs, in rank order
        return self._json("GET", "/jobs", params=params)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/jobs/{_seg(job_id)}")

    def approve_publish(self, job_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{_seg(job_id)}/approve-publish", idempotency_key=idempotency_key)

    def schedule(self, job_id: str, at: str | None) -> dict[str, Any]:
        """PATCH /jobs/:id/schedule; `at` None unschedules. Setting a value twice is harmless."""
        return self._json("PATCH", f"/jobs/{_seg(job_id)}/schedule", json_body={"scheduledAt": at}, safe=True)

    def upload(self, path: str | os.PathLike[str], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /upload, the file streamed as multipart -> {"fileId", ...}."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: no such file to upload")

        def files() -> dict[str, Any]:
            return {"file": (path.name, open(path, "rb"), _media_type(path))}  # noqa: SIM115 - closed below

        return self._json("POST", "/upload", files=files, idempotency_key=idempotency_key)

    def list_templates(self) -> dict[str, Any]:
        return self._json("GET", "/templates")

    def create_template(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        return self._json("POST", "/templates", json_body=body, idempotency_key=idempotency_key)

    def delete_template(self, template_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/templates/{_seg(template_id)}")

    def account(self) -> dict[str, Any]:
        return self._json("GET", "/account")

    def download(self, url: str, dest: str | os.PathLike[str], *, chunk: int = 1 << 20) -> Path:
        """GET `url` (absolute, or relative to the API's origin) into `dest`, atomically.

        Streamed to `.<name>.<random>.part` next to `dest`, fsynced, then os.replace'd: `dest`
        is either the old file or the whole new one. Returns `dest`.
        """
        dest = Path(dest)
        target = self._url.join(url)
        if target.scheme not in ("http", "https"):
            raise ApiError(f"GET {url}: not an http(s) URL", method="GET", path=url)
        own = _origin(target) == _origin(self._url)
        headers = {"Accept": "*/*", **({"Authorization": self._auth()} if own else {})}
        dest.parent.mkdir(parents=True, exist_ok=True)
        shown = target.path if own else str(target.copy_with(query=None))

        def attempt() -> Path:
            tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.part"
            try:
                # httpx drops Authorization when a redirect leaves the origin.
                with self._http.stream("GET", target, headers=headers, follow_redirects=True) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = self._error("GET", shown, response)
                        if not own and response.status_code in (401, 403):
                            error.hint = f"the key is only sent to {self.api}'s own origin, and this URL is not on it"
                        raise error
                    expected = response.headers.get("content-length")
                    size = 0
                    with open(tmp, "wb") as fh:
                        for data in response.iter_bytes(chunk):
                            fh.write(data)
                            size += len(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    if expected and expected.isdigit() and int(expected) != size and \
                            "content-encoding" not in response.headers:
                        raise httpx.RemoteProtocolError(f"got {size} of {expected} bytes")
                os.replace(tmp, dest)
                return dest
            finally:
                tmp.unlink(missing_ok=True)

        return self._retrying("GET", shown, attempt, safe=True)

    # -- plumbing -----------------------------------------------------------------------
    def _auth(self) -> str:
        return f"Bearer {self.__key}"

    def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return self._decode(self._request(method, path, **kw))

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise ApiError(f"{response.request.method} {response.request.url.path}: the answer is not JSON "
                           f"({response.headers.get('content-type', 'no content type')})",
                           method=response.request.method, path=response.request.url.path,
                           status=response.status_code) from None
        return data if isinstance(data, dict) else {"data": data}

    def _request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
                 files: Callable[[], dict[str, Any]] | None = None, idempotency_key: str | None = None,
                 safe: bool | None = None) -> httpx.Response:
        url = self.api + path
        shown = httpx.URL(url).path
        headers = {"Authorization": self._auth()}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if safe is None:
            safe = method in ("GET", "HEAD", "DELETE", "PUT", "OPTIONS") or idempotency_key is not None
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"

        def attempt() -> httpx.Response:
            opened = files() if files else None
            try:
                response = self._http.request(method, url, params=params, content=content, files=opened,
                                              headers=headers)
            finally:
                for value in (opened or {}).values():
                    value[1].close()
            if response.status_code >= 400:
                raise self._error(method, shown, response)
            self.last_response = response
            return response

        return self._retrying(method, shown, attempt, safe=safe)

    def afx_version(self) -> str | None:
        """The afx version of an `afx serve` API (None for other AuraFlux-compatible APIs)."""
        if self.last_response is None:
            self.account()
        response = self.last_response
        return response.headers.get("x-afx-version") if response is not None else None

    @property
    def replayed(self) -> bool:
        """Whether the last answer was a stored one replayed for its Idempotency-Key."""
        response = self.last_response
        return response is not None and response.headers.get("idempotent-replayed", "").lower() == "true"

    def _retrying(self, method: str, shown: str, attempt: Callable[[], _T], *, safe: bool) -> _T:
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except ApiError as exc:
                wait = self._retry_wait(exc, safe, tries)
                if wait is None:
                    raise
                log.info("%s %s: %s; retrying in %.1fs", method, shown, exc.status, wait)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if tries > self.retries or not (safe or never_sent):
                    raise self._network_error(method, shown, exc) from None
                wait = self._backoff(tries)
                log.info("%s %s: %s; retrying in %.1fs", method, shown, _reason(exc), wait)
            (self._sleep or pause)(wait)

    def _retry_wait(self, exc: ApiError, safe: bool, tries: int) -> float | None:
        if tries > self.retries:
            return None
        after = None if exc.retry_after is None else min(exc.retry_after, self.max_retry_after)
        if exc.status == 429:
            return after  # none given: a refusal that waiting a moment will not change
        if exc.status in RETRY_STATUSES and safe:
            return after if after is not None else self._backoff(tries)
        if exc.status == 409 and exc.code == "idempotency_in_flight":
            return self._backoff(tries)
        return None

    def _backoff(self, tries: int) -> float:
        return min(10.0, self.backoff * 2.0 ** (tries - 1)) * (0.75 + random.random() / 2)

    def _network_error(self, method: str, shown: str, exc: httpx.TransportError) -> ApiError:
        where = f"{self._url.scheme}://{self._url.netloc.decode()}"
        if isinstance(exc, httpx.TimeoutException):
            text = f"{method} {shown}: no answer from {where} in time ({_reason(exc)})"
        elif isinstance(exc, httpx.ConnectError):
            text = f"{method} {shown}: cannot connect to {where}: {_reason(exc)}"
        else:
            text = f"{method} {shown}: the connection to {where} failed: {_reason(exc)}"
        return ApiError(text, method=method, path=shown, code="connection_error",
                        hint="check AFX_API_URL / --api-url and that the server is up")

    def _error(self, method: str, shown: str, response: httpx.Response) -> ApiError:
        status = response.status_code
        code, detail, fields, extra = "", "", [], {}
        try:
            data = response.json()
        except ValueError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code, detail = str(err.get("code") or ""), str(err.get("message") or "")
            fields = [f for f in err.get("fields") or [] if isinstance(f, dict)]
            extra = {k: v for k, v in err.items() if k not in ("code", "message", "fields")}
        elif isinstance(err, str):
            detail = err
        elif isinstance(data, dict) and "detail" in data:  # a plain FastAPI/DRF answer
            detail = data["detail"] if isinstance(data["detail"], str) else json.dumps(data["detail"])[:300]
        else:
            text = response.text.strip().replace("\n", " ")
            detail = text[:200] if text and "<html" not in text.lower()[:200] else ""
        code = code or ("http_error" if status < 500 else "server_error")
        detail = detail or response.reason_phrase or "error"
        hint = _HINTS.get(status, "")
        more = [f"{f.get('field')}: {f.get('message')}" for f in fields[1:]]
        if more:
            hint = "also " + "; ".join(more) + (f"; {hint}" if hint else "")
        return ApiError(f"{method} {shown}: {status} {code}: {detail}", method=method, path=shown, status=status,
                        code=code, detail=detail, fields=fields, extra=extra, hint=hint,
                        retry_after=retry_after(response) if status in (429, 503) else None,
                        replayed=response.headers.get("idempotent-replayed", "").lower() == "true")


def _seg(value: str) -> str:
    """One path segment: an id can never reach another route."""
    from urllib.parse import quote

    if not value or value in (".", ".."):
        raise UsageError(f"{value!r} is not an id")
    return quote(str(value), safe="")


def _media_type(path: Path) -> str:
    return "video/quicktime" if path.suffix.lower() == ".mov" else "video/mp4"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    return text or type(exc).__name__
