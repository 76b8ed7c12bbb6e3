"""`make demo`: the example spec repo, run offline.

1. Generates the demo media (once): a stream-like clip with a "facecam" box for the fetch
   jobs, and a recording for the upload job (specs/media/, git-ignored).
2. Serves the fetch jobs' clips from a loopback HTTP server on 127.0.0.1:8765 (the specs'
   URLs; afx.yaml allows that host explicitly).
3. Runs `afx validate` and `afx run` on specs/ (every job rendered, packaged and published
   to the outbox, or staged / scheduled / held as its spec says), `afx jobs`, `afx report`.

    python -m afx.testing.demo [SPECS] [-- extra afx run arguments]
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import ffmpeg_exe

PORT = 8765


def _ff(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def stream_clip(path: Path, seconds: int, hue: int, tone: int) -> Path:
    """Gameplay-like motion with a webcam box in the top-left corner and speech-like audio."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    audio = (f"anoisesrc=c=pink:a=0.4:d={seconds}:r=48000,"
             "volume='0.1+0.9*gt(sin(2*PI*3.5*t),0.2)*gt(sin(2*PI*0.3*t),-0.2)':eval=frame[n];"
             f"sine=f={tone}:r=48000:d={seconds},volume=0.25[s];[n][s]amix=inputs=2:normalize=0[a]")
    _ff("-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=30:d={seconds}",
        "-f", "lavfi", "-i", f"smptehdbars=s=320x216:r=30:d={seconds}",
        "-filter_complex",
        f"[0:v]hue=h={hue}[g];[1:v]drawbox=x=0:y=0:w=iw:h=ih:color=white:t=6[cam];"
        f"[g][cam]overlay=16:16[v];{audio}",
        "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(tmp))
    os.replace(tmp, path)
    return path


def prepare(specs: Path) -> Path:
    media = specs / "media"
    stream_clip(media / "ace-round.mp4", 20, 40, 330)
    www = media / "serve" / "clips"
    stream_clip(www / "cs2-clutch.mp4", 45, 0, 220)
    stream_clip(www / "valorant-clutch.mp4", 30, 120, 260)
    return media / "serve"


def serve(folder: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
                super().handle_error(request, client_address)  # a client hanging up early is normal

    try:
        httpd = Server(("127.0.0.1", PORT), functools.partial(Quiet, directory=str(folder)))
    except OSError as exc:
        raise SystemExit(f"demo: cannot serve clips on 127.0.0.1:{PORT} ({exc.strerror}); "
                         "is another demo running?") from None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    positional = argv[: argv.index("--")] if "--" in argv else argv
    specs = Path(positional[0] if positional else "specs")
    print(f"demo: generating media in {specs / 'media'} (once)", flush=True)
    httpd = serve(prepare(specs))
    print(f"demo: serving the fetch jobs' clips on http://127.0.0.1:{PORT}/clips/", flush=True)
    afx = str(Path(sys.executable).parent / "afx")
    try:
        code = subprocess.call([afx, "validate"], cwd=specs) or subprocess.call([afx, "run", *extra], cwd=specs)
        subprocess.call([afx, "jobs"], cwd=specs)
        subprocess.call([afx, "report"], cwd=specs)
    finally:
        httpd.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
