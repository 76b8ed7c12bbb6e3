"""Local stand-ins for the YouTube, TikTok and Instagram upload APIs, for tests.

They follow the documented protocols closely enough to exercise afx's adapters for real:
YouTube resumable uploads (session, 308 Resume Incomplete with Range, `bytes */size`
status queries); TikTok's Content Posting API (creator info, init with chunk rules and a
rate limit of 6 inits a minute, chunked PUTs with Content-Range, status fetch); the
Instagram Graph API (publishing limit, REELS containers with resumable upload, status_code,
media_publish, which refuses a container published already). Tokens: "good" works,
anything else gets the platform's own "expired token" error. `delay` slows each upload
request and `final_delay` the last one, so tests can kill afx at a chosen moment.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class State:
    delay: float = 0.0
    final_delay: float = 0.0
    tiktok_max_seconds: int = 600
    instagram_quota: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    yt_sessions: dict[str, Any] = field(default_factory=dict)
    yt_videos: dict[str, Any] = field(default_factory=dict)
    yt_thumbnails: dict[str, Any] = field(default_factory=dict)
    tt_inits: list[float] = field(default_factory=list)  # when each init came (a rate limit)
    tt_publishes: dict[str, Any] = field(default_factory=dict)
    ig_containers: dict[str, Any] = field(default_factory=dict)
    ig_media: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}{self.counter}"


class Handler(http.server.BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, data: Any = None, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode() if data is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _bearer(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth.split(" ", 1)[1] if " " in auth else ""

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.state.requests.append((method, url.path))
        body = self._body()
        for pattern, handler in ROUTES:
            m = re.fullmatch(pattern, f"{method} {url.path}")
            if m:
                return handler(self, query, body, *m.groups())
        self._send(404, {"error": {"message": f"no route {method} {url.path}"}})

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    # -- YouTube ----------------------------------------------------------------------------
    def yt_auth(self) -> bool:
        if self._bearer() != "good":
            self._send(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                       "errors": [{"reason": "authError"}]}})
            return False
        return True

    def yt_insert(self, query: dict[str, str], body: bytes) -> None:
        if not self.yt_auth():
            return
        if query.get("uploadType") != "resumable":
            return self._send(400, {"error": {"message": "uploadType=resumable expected"}})
        sid = self.state.next_id("s")
        self.state.yt_sessions[sid] = {"size": int(self.headers["X-Upload-Content-Length"]), "data": bytearray(),
                                       "meta": json.loads(body), "video": None}
        host = self.headers["Host"]
        self._send(200, None, {"Location": f"http://{host}/upload/youtube/v3/videos?upload_id={sid}"})

    def yt_put(self, query: dict[str, str], body: bytes) -> None:
        if not self.yt_auth():
            return
        s = self.state.yt_sessions.get(query.get("upload_id", ""))
        if s is None:
            return self._send(404, {"error": {"message": "session not found"}})
        rng = self.headers.get("Content-Range", "")
        if s["video"]:
            return self._send(200, {"id": s["video"], "kind": "youtube#video"})
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", rng)
        if m:
            start, end = int(m.group(1)), int(m.group(2))
            if start != len(s["data"]) or end - start + 1 != len(body):
                return self._send(400, {"error": {"message": "bad Content-Range"}})
            time.sleep(self.state.delay)
            s["data"].extend(body)
        elif not re.fullmatch(r"bytes \*/\d+", rng):
            return self._send(400, {"error": {"message": "Content-Range required"}})
        if len(s["data"]) == s["size"]:
            vid = self.state.next_id("v")
            self.state.yt_videos[vid] = {"data": bytes(s["data"]), "meta": s["meta"]}
            s["video"] = vid
            time.sleep(self.state.final_delay)
            return self._send(200, {"id": vid, "kind": "youtube#video", "snippet": s["meta"].get("snippet")})
        headers = {"Range": f"bytes=0-{len(s['data']) - 1}"} if s["data"] else {}
        self._send(308, None, headers)

    def yt_thumbnail(self, query: dict[str, str], body: bytes) -> None:
        if not self.yt_auth():
            return
        if query.get("videoId") not in self.state.yt_videos:
            return self._send(404, {"error": {"message": "video not found"}})
        self.state.yt_thumbnails[query["videoId"]] = body
        self._send(200, {"kind": "youtube#thumbnailSetResponse"})

    # -- TikTok -----------------------------------------------------------------------------
    def tt_auth(self) -> bool:
        if self._bearer() != "good":
            self._send(401, {"error": {"code": "access_token_invalid",
                                       "message": "The access token is invalid or not found in the request."}})
            return False
        return True

    def tt_creator(self, query: dict[str, str], body: bytes) -> None:
        if self.tt_auth():
            self._send(200, {"data": {"creator_username": "afx", "privacy_level_options": ["SELF_ONLY"],
                                      "max_video_post_duration_sec": self.state.tiktok_max_seconds},
                             "error": {"code": "ok", "message": ""}})

    def tt_init(self, query: dict[str, str], body: bytes) -> None:
        if not self.tt_auth():
            return
        now = time.time()
        self.state.tt_inits = [t for t in self.state.tt_inits if now - t < 60]
        if len(self.state.tt_inits) >= 6:
            return self._send(429, {"error": {"code": "rate_limit_exceeded", "message": "too many requests"}})
        self.state.tt_inits.append(now)
        src = json.loads(body).get("source_info", {})
        size, chunk, count = src.get("video_size"), src.get("chunk_size"), src.get("total_chunk_count")
        if not (size and chunk and count) or (size >= 5 * 2**20 and not (5 * 2**20 <= chunk <= 64 * 2**20)
                                               and chunk != size) or count != max(size // chunk, 1):
            return self._send(400, {"error": {"code": "invalid_params", "message": "bad chunk settings"}})
        pid = self.state.next_id("p.")
        self.state.tt_publishes[pid] = {"size": size, "chunk": chunk, "count": count, "data": {}, "status":
                                        "PROCESSING_UPLOAD", "post": None}
        host = self.headers["Host"]
        self._send(200, {"data": {"publish_id": pid, "upload_url": f"http://{host}/tiktok-upload/{pid}"},
                         "error": {"code": "ok"}})

    def tt_upload(self, query: dict[str, str], body: bytes, pid: str) -> None:
        p = self.state.tt_publishes.get(pid)
        if p is None:
            return self._send(404, {"error": {"code": "not_found"}})
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", self.headers.get("Content-Range", ""))
        if not m or int(m.group(2)) - int(m.group(1)) + 1 != len(body):
            return self._send(400, {"error": {"code": "invalid_range"}})
        time.sleep(self.state.delay)
        p["data"][int(m.group(1))] = body
        if sum(len(b) for b in p["data"].values()) >= p["size"]:
            p["status"] = "PUBLISH_COMPLETE"
            p["post"] = self.state.next_id("7")
            time.sleep(self.state.final_delay)
            return self._send(201, {})
        self._send(206, {})

    def tt_status(self, query: dict[str, str], body: bytes) -> None:
        if not self.tt_auth():
            return
        p = self.state.tt_publishes.get(json.loads(body).get("publish_id"))
        if p is None:
            return self._send(400, {"error": {"code": "invalid_publish_id"}})
        data = {"status": p["status"]}
        if p["post"]:
            data["publicaly_available_post_id"] = [p["post"]]
        self._send(200, {"data": data, "error": {"code": "ok"}})

    # -- Instagram --------------------------------------------------------------------------
    def ig_auth(self, token: str) -> bool:
        if token != "good":
            self._send(400, {"error": {"message": "Error validating access token: Session has expired",
                                       "type": "OAuthException", "code": 190}})
            return False
        return True

    def ig_limit(self, query: dict[str, str], body: bytes, user: str) -> None:
        if self.ig_auth(query.get("access_token", "")):
            self._send(200, {"data": [{"quota_usage": self.state.instagram_quota,
                                       "config": {"quota_total": 50, "quota_duration": 86400}}]})

    def ig_create(self, query: dict[str, str], body: bytes, user: str) -> None:
        if not self.ig_auth(query.get("access_token", "")):
            return
        if query.get("media_type") != "REELS" or query.get("upload_type") != "resumable":
            return self._send(400, {"error": {"message": "REELS with upload_type=resumable expected", "code": 100}})
        cid = self.state.next_id("c")
        self.state.ig_containers[cid] = {"status": "IN_PROGRESS", "data": b"", "caption": query.get("caption")}
        host = self.headers["Host"]
        self._send(200, {"id": cid, "uri": f"http://{host}/ig-api-upload/v21.0/{cid}"})

    def ig_upload(self, query: dict[str, str], body: bytes, cid: str) -> None:
        c = self.state.ig_containers.get(cid)
        if c is None or not self.ig_auth(self.headers.get("Authorization", "").replace("OAuth ", "")):
            return None if c else self._send(404, {"error": {"message": "no container"}})
        if int(self.headers.get("file_size", -1)) != len(body) or self.headers.get("offset") != "0":
            return self._send(400, {"error": {"message": "offset/file_size mismatch"}})
        time.sleep(self.state.delay)
        c["data"] = body
        c["status"] = "FINISHED"
        self._send(200, {"success": True})

    def ig_status(self, query: dict[str, str], body: bytes, cid: str) -> None:
        if not self.ig_auth(query.get("access_token", "")):
            return
        c = self.state.ig_containers.get(cid)
        if c is None:
            return self._send(400, {"error": {"message": "Unsupported get request", "code": 100}})
        self._send(200, {"status_code": c["status"], "id": cid})

    def ig_publish(self, query: dict[str, str], body: bytes, user: str) -> None:
        if not self.ig_auth(query.get("access_token", "")):
            return
        c = self.state.ig_containers.get(query.get("creation_id", ""))
        if c is None or c["status"] != "FINISHED":
            message = "The media has already been published" if c and c["status"] == "PUBLISHED" else "not ready"
            return self._send(400, {"error": {"message": message, "code": 9007}})
        mid = self.state.next_id("m")
        c["status"] = "PUBLISHED"
        self.state.ig_media[mid] = query["creation_id"]
        time.sleep(self.state.final_delay)
        self._send(200, {"id": mid})


ROUTES: list[tuple[str, Callable[..., None]]] = [  # METHOD path (a regular expression) -> handler
    (r"POST /upload/youtube/v3/videos", Handler.yt_insert),
    (r"PUT /upload/youtube/v3/videos", Handler.yt_put),
    (r"POST /upload/youtube/v3/thumbnails/set", Handler.yt_thumbnail),
    (r"POST /v2/post/publish/creator_info/query/", Handler.tt_creator),
    (r"POST /v2/post/publish/video/init/", Handler.tt_init),
    (r"PUT /tiktok-upload/([\w.]+)", Handler.tt_upload),
    (r"POST /v2/post/publish/status/fetch/", Handler.tt_status),
    (r"GET /v21\.0/(\w+)/content_publishing_limit", Handler.ig_limit),
    (r"POST /v21\.0/(\w+)/media", Handler.ig_create),
    (r"POST /ig-api-upload/v21\.0/(\w+)", Handler.ig_upload),
    (r"POST /v21\.0/(\w+)/media_publish", Handler.ig_publish),
    (r"GET /v21\.0/(\w+)", Handler.ig_status),
]


class Platforms:
    """A running server (127.0.0.1, an ephemeral port) and its state."""

    def __init__(self) -> None:
        self.state = State()
        handler = type("H", (Handler,), {"state": self.state})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
