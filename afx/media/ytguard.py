"""yt-dlp confined to afx's address policy: every byte through one checked, pinned connection.

yt-dlp has no SSRF protection of its own (facts.md), and it has more ways to reach the
network than its request handlers: its HLS downloader hands a playlist with features it does
not support (SAMPLE-AES keys, live streams) to ffmpeg, live DASH goes to ffmpeg, RTMP to
rtmpdump, and external downloaders (aria2c, curl, wget) can take over fragments. Each of
those programs opens its own connections, which afx cannot check (issue 11: a playlist on an
allowed host made ffmpeg fetch a segment from 127.0.0.1).

While `confined(policy)` holds:
- **Connections.** yt-dlp's urllib handler is the only one it is given (`fetch._YDL`), for
  http and https only; its connection function resolves the host once, checks every address
  the name has against the policy, and connects to the address it checked (no second
  lookup: DNS rebinding cannot move it). ftp:// is refused even where urllib would follow a
  redirect to it (its FTP handler opens sockets of its own: a review found a redirect to
  ftp://127.0.0.1 fetched an internal server's file), and any other connection made through
  the standard library's `socket.create_connection` meanwhile is checked the same way.
- **Downloaders.** Only yt-dlp's native downloaders, which fetch through that handler, run:
  plain HTTP, native HLS, DASH, ISM and F4M fragments. Any other (ffmpeg, rtmpdump, mpv,
  aria2c, curl, wget, WebSocket, the site-specific ones) raises `Refused`, naming the feature
  of the source that would have needed it. ffmpeg is reported as unavailable to the
  downloaders, so yt-dlp keeps what it can do natively (AES-128 HLS is decrypted in Python).
- **Programs.** yt-dlp may start no program but afx's ffmpeg (any other is, to it, not
  installed: ffprobe, rtmpdump, a JavaScript runtime), and ffmpeg only on local files:
  every input gets `-protocol_whitelist file,pipe` and a whitelist of media containers
  (a downloaded "video" that is really a playlist or a concat list cannot make the merger
  read other files or the network). Each dies with the process that started it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, NoReturn

from afx.media.ffmpeg import SOURCE_INPUT, ffmpeg_exe
from afx.media.netguard import BlockedURL, Policy
from afx.procs import die_with_parent

# Native downloaders whose every request goes through `self.ydl.urlopen`, i.e. the checked handler.
_NATIVE = ("HttpFD", "HttpQuietDownloader", "FragmentFD", "HlsFD", "DashSegmentsFD", "IsmFD", "F4mFD")
_LOCK = threading.Lock()  # the patches are process-wide: one confined download at a time
_state = threading.local()
log = logging.getLogger("afx.fetch")


def handler() -> type:
    """yt-dlp's urllib request handler for http and https only (no ftp, data or file)."""
    from yt_dlp.networking._urllib import UrllibRH

    class GuardedUrllibRH(UrllibRH):
        _SUPPORTED_URL_SCHEMES = ("http", "https")
        RH_NAME = "urllib"

    return GuardedUrllibRH


class Refused(Exception):
    """The source needs a way of downloading that afx cannot check; `feature` says which."""

    def __init__(self, feature: str, program: str) -> None:
        super().__init__(f"{feature}, which only {program} can download; afx does not hand a fetch to "
                         f"{program}, whose connections it cannot check")
        self.feature, self.program = feature, program


def _hls_reason(manifest: str, info: dict) -> str:
    if info.get("is_live"):
        return "it is a live HLS stream"
    key = re.search(r"#EXT-X-(?:SESSION-)?KEY:[^\n]*?METHOD=(?!NONE\b|AES-128\b)([\w-]+)", manifest)
    if key:
        return f"the HLS playlist is encrypted with EXT-X-KEY METHOD={key.group(1)}"
    from yt_dlp.downloader.hls import HlsFD

    if HlsFD._has_drm(manifest):
        return "the HLS playlist is DRM-protected"
    return "the HLS playlist uses features yt-dlp's own downloader does not support"


def _feature(fd: Any, info: dict) -> tuple[str, str]:
    """(what about the source needed this downloader, which program it would have run)."""
    name = type(fd).__name__
    protocol = str(info.get("protocol") or "?")
    program = {"FFmpegFD": "ffmpeg", "RtmpFD": "rtmpdump", "RtspFD": "mpv or mplayer"}.get(name)
    if program is None:
        basename = getattr(fd, "get_basename", None)
        program = basename() if callable(basename) else name
    hls = getattr(_state, "hls", None)
    if hls and protocol.startswith("m3u8"):
        return hls, program
    if info.get("is_live") or info.get("live_status") == "is_live":
        kind = {"m3u8": "HLS", "m3u8_native": "HLS", "http_dash_segments": "DASH"}.get(protocol, protocol)
        return f"it is a live {kind} stream", program
    if info.get("section_start") is not None or info.get("section_end") is not None:
        return "a section of the stream was asked for", program
    return f"it is streamed over {protocol}", program


def _refuse(fd: Any, filename: str, info: dict) -> bool:
    feature, program = _feature(fd, info)
    raise Refused(feature, program)


def _downloaders() -> list[type]:
    import yt_dlp.downloader as dl

    seen, todo = [], [dl.FileDownloader]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def _confined_ffmpeg(args: Any) -> list[str]:
    """yt-dlp's ffmpeg command with every input limited to local media files.

    Any other program is, to yt-dlp, not installed (FileNotFoundError, which it handles as
    it handles a missing ffprobe); one it needed for a download was refused before this,
    with the reason, by the downloader it would have run under.
    """
    argv = [os.fsdecode(a) for a in (args if isinstance(args, (list, tuple)) else [args])]
    exe = argv[0] if argv else ""
    if not exe or os.path.realpath(exe) != os.path.realpath(ffmpeg_exe()):
        log.debug("not letting yt-dlp run %s", exe)
        raise FileNotFoundError(errno.ENOENT, "afx lets yt-dlp run its own ffmpeg only", exe)
    out = [exe]
    for arg in argv[1:]:
        if arg == "-i":
            out += SOURCE_INPUT
        out.append(arg)
    return out


@contextlib.contextmanager
def confined(policy: Policy) -> Iterator[None]:
    """Hold yt-dlp to `policy` for the duration of one download (see the module's docstring)."""
    from yt_dlp.downloader.external import FFmpegFD
    from yt_dlp.downloader.hls import HlsFD
    from yt_dlp.networking import _urllib
    from yt_dlp.utils import _utils

    def checked(connect: Any) -> Any:
        def guarded_connect(address: tuple, *args: Any, **kwargs: Any) -> socket.socket:
            host, port = address[0], address[1]
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            for info in infos:  # every address the name has, or a second lookup could differ
                ip = info[4][0]  # a str (typeshed adds int: (family, bytes) on a Python without IPv6)
                assert isinstance(ip, str), info
                policy.check(str(host), ip)
            return connect((infos[0][4][0], port), *args, **kwargs)
        return guarded_connect

    def no_ftp(self: urllib.request.FTPHandler, req: urllib.request.Request) -> NoReturn:
        # FTPHandler.ftp_open's own parameter names: it stands in for that method
        raise urllib.error.URLError(BlockedURL(f"only http:// and https:// URLs are fetched, not "
                                               f"{req.full_url.split(':', 1)[0]}:// ({req.full_url[:80]})"))

    original_hls_check = HlsFD.__dict__["can_download"]

    def hls_check(cls: type, manifest: str, info: dict, *args: Any, **kwargs: Any) -> bool:
        ok = original_hls_check.__func__(cls, manifest, info, *args, **kwargs)
        if not ok:  # the native downloader is about to hand the playlist on: say why
            _state.hls = _hls_reason(manifest, info)
        return ok

    original_popen = _utils.Popen.__init__

    def popen(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        kwargs.setdefault("preexec_fn", die_with_parent())
        original_popen(self, _confined_ffmpeg(args), *rest, **kwargs)

    with _LOCK:
        patched: list[tuple[Any, str, Any]] = [(_urllib, "create_connection", _urllib.create_connection),
                                               (socket, "create_connection", socket.create_connection),
                                               (urllib.request.FTPHandler, "ftp_open",
                                                urllib.request.FTPHandler.ftp_open),
                                               (HlsFD, "can_download", original_hls_check),
                                               (FFmpegFD, "available", FFmpegFD.__dict__["available"]),
                                               (_utils.Popen, "__init__", original_popen)]
        fixed = len(patched)
        for cls in _downloaders():
            if cls.__name__ not in _NATIVE and "real_download" in cls.__dict__:
                patched.append((cls, "real_download", cls.__dict__["real_download"]))
        _state.hls = None
        try:
            _urllib.create_connection = checked(_urllib.create_connection)
            socket.create_connection = checked(socket.create_connection)
            # a deliberate patch of a method (undone in `finally`), which mypy flags as such
            urllib.request.FTPHandler.ftp_open = no_ftp  # type: ignore[method-assign]
            HlsFD.can_download = classmethod(hls_check)
            FFmpegFD.available = classmethod(lambda cls, path=None: False)
            _utils.Popen.__init__ = popen
            for cls, attr, _ in patched[fixed:]:
                setattr(cls, attr, _refuse)
            yield
        finally:
            for owner, attr, value in patched:
                setattr(owner, attr, value)
            _state.hls = None
