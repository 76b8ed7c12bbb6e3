"""A recording with speech, made on the fly (nothing committed): a lavfi picture under a
voice read by afx's own text-to-speech, for the tests that run the real clips stages."""

from __future__ import annotations

import subprocess
from pathlib import Path

from afx.media.ffmpeg import ffmpeg_exe

TALK = ("Welcome back to the stream. Today we are trying the hardest level in the game. "
        "The first room is quiet, so we take it slowly. Watch the corner on the left. "
        "There it is! That was the best clutch of the whole week. "
        "Now we reload and move on to the bridge. The bridge is where most players fall. "
        "Jump now, jump now! We made it across, unbelievable. "
        "Thanks for watching, and see you in the next episode.")


def speech_vod(path: Path, seconds: float = 40, size: str = "320x240") -> Path:
    """`seconds` of a moving test pattern, with about 30 s of talk from its first second."""
    from afx.media.tts import Synthesis

    voice = Synthesis(None, "calm")
    voice.silence(1.0)
    voice.say(TALK)
    wav = voice.write(path.with_suffix(".wav"))
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}", "-i", str(wav),
                    "-filter_complex", f"[1:a]apad=whole_dur={seconds}[a]", "-map", "0:v", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "96k", "-t", str(seconds), str(path)], check=True)
    wav.unlink()
    return path
