"""Running ffmpeg: the imageio-ffmpeg binary, argument lists only, progress, clean errors.

Inputs come from users, so every run restricts protocols to local files and pipes
(`-protocol_whitelist file,pipe`, facts.md) and never goes through a shell.
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


class MediaError(Exception):
    """A media operation failed; the message says what, for whom, and (when known) why."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message, self.detail = message, detail

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


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
    cmd += list(args)
    log.debug("%s: %s", what, shlex.join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
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
