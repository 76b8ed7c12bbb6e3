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

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from afx.fsutil import atomic_write
from afx.media.ffmpeg import MediaError, ffmpeg_exe
from afx.media.netguard import BlockedAddress, BlockedURL, Policy
from afx.media.normalize import check_room
from afx.media.ytguard import Refused, confined, handler

DEFAULT_MAX_GB = 20.0  # afx.yaml fetch.max_gb: a stream VOD of several hours is several GB
GB = 1024 ** 3
log = logging.getLogger("afx.fetch")


class _Logger:
    """yt-dlp's messages go through afx's logger, never straight to stderr (facts.md). One is
    remembered: yt-dlp stopping a download at max_filesize says so only in a message."""

    too_big = False

    def _seen(self, msg: str) -> str:
        if "max-filesize" in msg:
            self.too_big = True
        return msg

    def debug(self, msg: str) -> None:
        msg = self._seen(msg)
        log.debug(msg[8:] if msg.startswith("[debug] ") else msg)

    def info(self, msg: str) -> None:
        log.debug(self._seen(msg))

    def warning(self, msg: str) -> None:
        log.info(self._seen(msg))

    def error(self, msg: str) -> None:
        log.debug(self._seen(msg))


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


def max_bytes_of(config: Mapping[str, Any]) -> int:
    """afx.yaml's fetch.max_gb (the schema holds it to 0-1000) in bytes."""
    return int(float((config.get("fetch") or {}).get("max_gb", DEFAULT_MAX_GB)) * GB)


def size_text(n: float) -> str:
    """A size as people read it: 8 GB, 1.5 GB, 105 KB."""
    for unit, scale in (("GB", GB), ("MB", 1024 ** 2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _limit_text(max_bytes: int) -> str:
    return f"the limit of {size_text(max_bytes)} (fetch.max_gb in afx.yaml)"


def _expected_size(info: Mapping[str, Any]) -> int | None:
    """What the chosen format(s) will download, when the site says (HTTP Content-Length,
    a manifest's sizes); None when nobody knows before the download."""
    parts = info.get("requested_formats") or [info]
    sizes = [p.get("filesize") or p.get("filesize_approx") for p in parts]
    return int(sum(sizes)) if sizes and all(sizes) else None


def _partial_bytes(folder: Path, stem: str) -> int:
    """What an interrupted download of `stem` left in `folder`: part files, finished formats."""
    return sum(p.stat().st_size for p in folder.glob(f"{stem}.*") if p.is_file())


def _same_download(folder: Path, stem: str, url: str, size: int | None) -> None:
    """Partial files are continued only for the download they were made for: the same URL and
    the same announced size (a file changed on the server since would be spliced together)."""
    note = folder / f".{stem}.fetch.json"
    wanted = {"url": url, "size": size}
    try:
        same = json.loads(note.read_text()) == wanted
    except (OSError, ValueError):
        same = False
    if not same:
        _remove(folder, stem)
        atomic_write(note, json.dumps(wanted))


def fetch(url: str, dest: Path, stem: str, policy: Policy,
          on_progress: Callable[[float], None] = lambda f: None, *,
          max_bytes: int = int(DEFAULT_MAX_GB * GB), partial: Path | None = None) -> Path:
    """Download `url` into dest/<stem>.<ext>; MediaError naming the URL on any failure.

    A download whose size is known beforehand is refused over `max_bytes`, or when the disk
    cannot hold what is left of it, before a byte is fetched; one whose size is not known is
    stopped by yt-dlp at `max_bytes` and checked again once it is on disk.

    `partial`: a folder that outlives an interrupted run (the ingest stage's
    StageContext.resume). yt-dlp downloads there, and a part file an interrupted run left is
    continued (an HTTP Range request from where it stopped; HLS from its last fragment); a
    download that failed on the way (the connection lost) keeps it for the next run. The
    finished file is moved into `dest`."""
    # Long (over 60 lines) on purpose: yt-dlp's options and every guard around one download
    # (address policy, size limit, free disk, what is kept for resuming) read in one place.
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

    logger = _Logger()
    where = partial if partial is not None else dest
    opts = {
        "outtmpl": {"default": f"{stem}.%(ext)s"},
        "paths": {"home": str(where), "temp": str(where)},
        "format": "bv*[height<=1080]+ba/b[height<=1080]/bv*+ba/b",
        "merge_output_format": "mp4",
        "ffmpeg_location": ffmpeg_exe(),
        "logger": logger,
        "quiet": True,
        "noprogress": True,
        "progress_hooks": [hook],
        "noplaylist": True,
        "playlist_items": "1",
        "socket_timeout": 20,
        "retries": 2,
        "fragment_retries": 2,
        "skip_unavailable_fragments": False,  # a fragment refused or lost fails the fetch, naming why
        "max_filesize": max_bytes,
        "proxy": "",
        "hls_prefer_native": True,
        "cachedir": False,
        "overwrites": partial is None,  # resuming: a format finished last time is kept
        "continuedl": True,
        "restrictfilenames": True,
    }
    try:
        with confined(policy), _YDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
            size = _expected_size(info or {})
            if partial is not None:
                _same_download(partial, stem, url, size)
            if size is not None:
                if size > max_bytes:
                    _remove(where, stem)
                    raise MediaError(f"cannot fetch {url}", f"it is {size_text(size)}, over {_limit_text(max_bytes)}")
                left = max(size - _partial_bytes(where, stem), 0)
                check_room(where, left, f"cannot fetch {url}",
                           "downloading it" if left == size else f"the {size_text(left)} left to download")
            ydl.process_ie_result(info, download=True)
    except Refused as exc:
        _remove(where, stem)
        raise MediaError(f"cannot fetch {url}", str(exc)) from None
    except (DownloadError, RequestError, OSError) as exc:
        blocked, refused = _blocked_cause(exc), _refused_cause(exc)
        if partial is None or blocked is not None or refused is not None or logger.too_big:
            _remove(where, stem)  # else a lost connection: the next run goes on from the part file
        if blocked is not None:
            raise MediaError(f"cannot fetch {url}", str(blocked)) from None
        if refused is not None:
            raise MediaError(f"cannot fetch {url}", str(refused)) from None
        text = str(exc).replace("ERROR: ", "").strip()
        raise MediaError(f"cannot fetch {url}", text[:300]) from None
    return _finished(url, where, dest, stem, max_bytes, logger.too_big)


def _finished(url: str, where: Path, dest: Path, stem: str, max_bytes: int, too_big: bool) -> Path:
    """The downloaded file, checked, in `dest` (moved there from `where`)."""
    found = sorted(p for p in where.glob(f"{stem}.*") if not p.name.endswith((".part", ".ytdl", ".temp")))
    if not found:
        _remove(where, stem)  # a download stopped at the size limit leaves its part file
        raise MediaError(f"cannot fetch {url}", f"the download is over {_limit_text(max_bytes)}" if too_big
                         else "nothing was downloaded")
    path = found[0]
    if path.stat().st_size == 0:
        _remove(where, stem)
        raise MediaError(f"cannot fetch {url}", "the download is empty (0 bytes)")
    if path.stat().st_size > max_bytes:
        _remove(where, stem)
        raise MediaError(f"cannot fetch {url}", f"the download is over {_limit_text(max_bytes)}")
    for extra in found[1:]:
        extra.unlink(missing_ok=True)
    if where != dest:
        moved = dest / path.name
        shutil.move(str(path), str(moved))  # a rename: the resume folder is in the same store
        (where / f".{stem}.fetch.json").unlink(missing_ok=True)
        path = moved
    return path
