"""Download a source with yt-dlp's Python API, behind afx's address policy (issue 4).

yt-dlp has no SSRF protection of its own (facts.md): its generic extractor follows
redirects and embedded links to anywhere. afx therefore runs it with only its urllib
request handler, inside `ytguard.confined`: every connection (first request, each
redirect, each HLS segment and key) is checked against `netguard.Policy` on the address
actually connected to, only yt-dlp's native downloaders run, and a source that would need
another program (ffmpeg for a SAMPLE-AES or live playlist, rtmpdump...) fails with the
feature named, as the input's fault (issue 11). ffmpeg only merges local files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import MediaError, ffmpeg_exe
from afx.media.netguard import BlockedAddress, BlockedURL, Policy
from afx.media.ytguard import Refused, confined, handler

MAX_BYTES = 500 * 1024 * 1024
log = logging.getLogger("afx.fetch")


class _Logger:
    """yt-dlp's messages go through afx's logger, never straight to stderr (facts.md)."""

    def debug(self, msg: str) -> None:
        log.debug(msg[8:] if msg.startswith("[debug] ") else msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.info(msg)

    def error(self, msg: str) -> None:
        log.debug(msg)


def _remove(dest: Path, stem: str) -> None:
    """A failed download leaves nothing behind (partial files, fragments)."""
    for path in dest.glob(f"{stem}.*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def _refused_cause(exc: BaseException) -> BaseException | None:
    return _cause(exc, Refused)


def _blocked_cause(exc: BaseException) -> BaseException | None:
    return _cause(exc, (BlockedAddress, BlockedURL))


def _cause(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        cause = getattr(cur, "cause", None) or getattr(cur, "exc_info", None) or getattr(cur, "reason", None)
        if isinstance(cause, tuple):
            cause = cause[1]
        cur = cause if isinstance(cause, BaseException) else (cur.__cause__ or cur.__context__)
    return None


def fetch(url: str, dest: Path, stem: str, policy: Policy,
          on_progress: Callable[[float], None] = lambda f: None) -> Path:
    """Download `url` into dest/<stem>.<ext>; MediaError naming the URL on any failure."""
    import yt_dlp
    from yt_dlp.networking.exceptions import RequestError
    from yt_dlp.utils import DownloadError

    try:
        policy.check_url(url)
    except BlockedURL as exc:
        raise MediaError(f"cannot fetch {url}", str(exc)) from None

    class _YDL(yt_dlp.YoutubeDL):
        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            # Only the urllib handler, for http(s): its connections are the ones `confined` checks.
            return super().build_request_director([handler()], preferences)

    def hook(d: dict) -> None:
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        if d.get("status") == "downloading" and total:
            on_progress(min(d.get("downloaded_bytes", 0) / total, 1.0))

    opts = {
        "outtmpl": {"default": f"{stem}.%(ext)s"},
        "paths": {"home": str(dest), "temp": str(dest)},
        "format": "bv*[height<=1080]+ba/b[height<=1080]/bv*+ba/b",
        "merge_output_format": "mp4",
        "ffmpeg_location": ffmpeg_exe(),
        "logger": _Logger(),
        "quiet": True,
        "noprogress": True,
        "progress_hooks": [hook],
        "noplaylist": True,
        "playlist_items": "1",
        "socket_timeout": 20,
        "retries": 2,
        "fragment_retries": 2,
        "skip_unavailable_fragments": False,  # a fragment refused or lost fails the fetch, naming why
        "max_filesize": MAX_BYTES,
        "proxy": "",
        "hls_prefer_native": True,
        "cachedir": False,
        "overwrites": True,
        "restrictfilenames": True,
    }
    try:
        with confined(policy), _YDL(opts) as ydl:
            ydl.download([url])
    except Refused as exc:
        _remove(dest, stem)
        raise MediaError(f"cannot fetch {url}", str(exc)) from None
    except (DownloadError, RequestError, OSError) as exc:
        _remove(dest, stem)
        blocked = _blocked_cause(exc)
        if blocked is not None:
            raise MediaError(f"cannot fetch {url}", str(blocked)) from None
        refused = _refused_cause(exc)
        if refused is not None:
            raise MediaError(f"cannot fetch {url}", str(refused)) from None
        text = str(exc).replace("ERROR: ", "").strip()
        raise MediaError(f"cannot fetch {url}", text[:300]) from None
    found = sorted(p for p in dest.glob(f"{stem}.*") if not p.name.endswith((".part", ".ytdl", ".temp")))
    if not found:
        raise MediaError(f"cannot fetch {url}", "nothing was downloaded")
    path = found[0]
    if path.stat().st_size == 0:
        raise MediaError(f"cannot fetch {url}", "the download is empty (0 bytes)")
    if path.stat().st_size > MAX_BYTES:
        raise MediaError(f"cannot fetch {url}", "the download is over 500 MB")
    for extra in found[1:]:
        extra.unlink(missing_ok=True)
    return path
