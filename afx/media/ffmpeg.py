"""Running ffmpeg: the imageio-ffmpeg binary, argument lists only, progress, clean errors.

Inputs come from users, so every run restricts protocols to local files and pipes
(`-protocol_whitelist file,pipe`, facts.md): `run` puts it before every `-i` that does not
already have it, so no call can forget it, and never goes through a shell. Fetched and
uploaded material is read with SOURCE_INPUT, which also limits the demuxer to media
containers: a "video" that is really an HLS playlist, a concat list or an SDP file would
otherwise make ffmpeg open what it names (issue 11). Every ffmpeg dies with the process that
started it (PR_SET_PDEATHSIG): a job killed with -9 leaves no render running.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence

from afx.errors import AfxError, ExitStatus
from afx.procs import die_with_parent


class MediaError(AfxError):
    """A media operation failed; the message says what, for whom, and (when known) why.

    An AfxError of the input (exit 3, a stage failed): where stages run, the engine reports it
    as the input's fault, once for every stage (issue 13), so no stage maps it itself and a
    server job failed by it is not refunded. `what` is the message without its detail."""

    exit_status = ExitStatus.STAGE_FAILED

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.what, self.detail = message, detail


@functools.cache
def ffmpeg_exe() -> str:
    override = os.environ.get("AFX_FFMPEG")
    if override:
        return override
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


BASE = ("-hide_banner", "-nostdin", "-y")
log = logging.getLogger("afx.ffmpeg")
SAFE_INPUT = ("-protocol_whitelist", "file,pipe")
# Demuxers that read one self-contained media file and open nothing it names. Not here, on
# purpose: hls, dash, concat, sdp, rtp, rtsp, imf, image2 (patterns), tee, and the like.
SOURCE_DEMUXERS = ("mov", "mp4", "matroska", "webm", "flv", "live_flv", "mpegts", "mpeg", "mpegvideo", "avi",
                   "ogg", "asf", "mxf", "ivf", "nut", "h264", "hevc", "m4v", "wav", "w64", "mp3", "aac", "flac",
                   "opus", "amr", "caf", "aiff")
SOURCE_INPUT = (*SAFE_INPUT, "-format_whitelist", ",".join(SOURCE_DEMUXERS))


def confine_inputs(args: Sequence[str]) -> list[str]:
    """`args` with `-protocol_whitelist file,pipe` before every `-i` whose options lack one."""
    out: list[str] = []
    since_input = 0  # where the current input's options start
    for arg in args:
        if arg == "-i" and "-protocol_whitelist" not in out[since_input:]:
            out += SAFE_INPUT
        out.append(arg)
        if len(out) >= 2 and out[-2] == "-i":
            since_input = len(out)
    return out


def run(args: Sequence[str], *, what: str, duration: float | None = None,
        on_progress: Callable[[float], None] | None = None, stdin: bytes | None = None,
        timeout: float | None = None, capture_stdout: bool = False, cwd: str | os.PathLike[str] | None = None,
        stderr_lines: list[str] | None = None, loglevel: str = "error") -> bytes:
    """Run ffmpeg with `args`; raise MediaError(what) with the last stderr lines on failure.

    With `duration` and `on_progress`, `-progress pipe:1` output is parsed into fractions.
    """
    cmd = [ffmpeg_exe(), *BASE, "-loglevel", loglevel]
    progress = duration and on_progress and not capture_stdout
    if progress:
        cmd += ["-progress", "pipe:1", "-nostats"]
    cmd += confine_inputs(args)
    log.debug("%s: %s", what, shlex.join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            preexec_fn=die_with_parent())
    err_tail: deque[str] = deque(maxlen=20)

    def read_err() -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if stderr_lines is not None:
                stderr_lines.append(line)
            if line:
                err_tail.append(line)

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = b""
    try:
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        if progress:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "out_time_us" and value.lstrip("-").isdigit():
                    on_progress(min(max(int(value) / 1e6 / duration, 0.0), 1.0))  # type: ignore[misc,operator]
        else:
            assert proc.stdout is not None
            out = proc.stdout.read()
        code = proc.wait(timeout=timeout)
    except BaseException:
        _stop(proc)
        raise
    finally:
        reader.join(timeout=5)
    if code != 0:
        raise MediaError(f"{what} failed (ffmpeg exit {code})", " | ".join(list(err_tail)[-4:]))
    if progress:
        on_progress(1.0)  # type: ignore[misc]
    return out


def _stop(proc: subprocess.Popen) -> None:
    """Stop ffmpeg on Ctrl-C or an error: ask, then insist."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=3)
    except (subprocess.TimeoutExpired, OSError):
        proc.kill()
        proc.wait()
