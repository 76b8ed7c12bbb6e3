"""Media made on the fly with ffmpeg lavfi sources (nothing committed)."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from afx.media.ffmpeg import ffmpeg_exe


def ff(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, cwd=cwd)


def story_clip(path: Path, size: str = "640x360") -> Path:
    """24 s: 8 s still grey + quiet hiss, 6 s moving test pattern + loud bursts, 10 s still blue + hiss.

    The action (8-14 s) is what a highlight picker must choose.
    """
    w, h = size.split("x")
    quiet = "anoisesrc=c=pink:a=0.01:r=48000:seed=1"  # the same clip every session
    loud = "sine=f=220:r=48000:d=6,volume='0.9*gt(sin(2*PI*3*t),0)':eval=frame"
    ff("-f", "lavfi", "-i", f"color=c=gray:s={size}:r=30:d=8",
       "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d=6",
       "-f", "lavfi", "-i", f"color=c=0x2040a0:s={size}:r=30:d=10",
       "-f", "lavfi", "-i", f"{quiet}:d=8", "-f", "lavfi", "-i", loud, "-f", "lavfi", "-i", f"{quiet}:d=10",
       "-filter_complex", f"[0:v][3:a][1:v][4:a][2:v][5:a]concat=n=3:v=1:a=1[v][a];[v]scale={w}:{h}[vs]",
       "-map", "[vs]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
       "-c:a", "aac", "-b:a", "96k", str(path))
    return path


def plain_clip(path: Path, seconds: float = 4, size: str = "640x360", audio: bool = True, extra: tuple = ()) -> Path:
    args = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", *extra]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    ff(*args, str(path))
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {
        "story": story_clip(d / "story.mp4"),
        "plain": plain_clip(d / "plain.mp4"),
        "silent": plain_clip(d / "silent.mp4", audio=False),
        "vertical": plain_clip(d / "vertical.mp4", size="360x640"),
    }
    ff("-f", "lavfi", "-i", "sine=f=300:d=3", "-c:a", "aac", str(d / "audio-only.mp4"))
    out["audio-only"] = d / "audio-only.mp4"
    ff("-display_rotation", "90", "-i", str(out["plain"]), "-c", "copy", str(d / "rotated.mp4"))
    out["rotated"] = d / "rotated.mp4"
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    out["text"] = d / "text.mp4"
    data = out["plain"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    out["truncated"] = d / "truncated.mp4"
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    # An MP4 whose moov atom is at the front (faststart) but whose data is cut short.
    ff("-i", str(out["plain"]), "-c", "copy", "-movflags", "+faststart", str(d / "faststart.mp4"))
    fs = (d / "faststart.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(fs[: int(len(fs) * 0.6)])
    out["cut"] = d / "cut.mp4"
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}
    requests: list[str] = []  # "host path" of every request, in order

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(f"{self.headers.get('Host', '')} {self.path}")
        target = self.redirects.get(self.path)
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        super().do_GET()


@dataclass
class Origin:
    """A loopback HTTP server over a folder, with the requests it was sent."""

    port: int
    root: Path
    redirects: dict[str, str]
    requests: list[str]  # "host:port /path"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"


@pytest.fixture
def origin(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_Quiet,), {"redirects": {}, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Origin(httpd.server_address[1], root, handler.redirects, handler.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(origin):
    """A loopback HTTP server over a folder: (base URL, folder, redirects dict)."""
    return f"http://127.0.0.1:{origin.port}", origin.root, origin.redirects


__all__ = ["Origin", "ff", "plain_clip", "story_clip", "os"]
