"""Platform profiles as data (issue 4), from docs/platforms.md.

A profile says what one platform accepts for one format. Rendering works on encode
settings: platforms whose profiles encode the same way share one render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GB = 1024**3
MB = 1024**2


@dataclass(frozen=True)
class Profile:
    name: str
    platform: str | None
    format: str  # short | long
    width: int
    height: int
    fps: int
    min_seconds: float
    max_seconds: float
    max_bytes: int
    video_maxrate: int  # bits/s ceiling
    audio_bitrate: int = 192_000


@dataclass(frozen=True)
class Encode:
    """What ffmpeg is told; one render per distinct Encode."""

    width: int
    height: int
    fps: int
    maxrate: int
    audio_bitrate: int

    @property
    def bufsize(self) -> int:
        return 2 * self.maxrate


SHORT = dict(format="short", width=1080, height=1920, fps=30)
LONG = dict(format="long", width=1920, height=1080, fps=30)

PROFILES: dict[tuple[str | None, str], Profile] = {
    # TikTok: 9:16, 3 s to 10 min, <= 4 GB, 23-60 fps.
    ("tiktok", "short"): Profile("tiktok-short", "tiktok", **SHORT, min_seconds=3, max_seconds=600,
                                 max_bytes=4 * GB, video_maxrate=10_000_000),
    ("tiktok", "long"): Profile("tiktok-long", "tiktok", **LONG, min_seconds=3, max_seconds=600,
                                max_bytes=4 * GB, video_maxrate=10_000_000),
    # YouTube Shorts: 9:16, up to 3 min. YouTube: 16:9, up to 12 h, <= 256 GB.
    ("youtube", "short"): Profile("youtube-short", "youtube", **SHORT, min_seconds=1, max_seconds=180,
                                  max_bytes=256 * GB, video_maxrate=10_000_000),
    ("youtube", "long"): Profile("youtube-long", "youtube", **LONG, min_seconds=1, max_seconds=12 * 3600,
                                 max_bytes=256 * GB, video_maxrate=12_000_000),
    # Instagram Reels: 9:16, 3 s to 15 min, <= 300 MB, 23-60 fps, H.264.
    ("instagram", "short"): Profile("instagram-reel", "instagram", **SHORT, min_seconds=3, max_seconds=900,
                                    max_bytes=300 * MB, video_maxrate=10_000_000),
    ("instagram", "long"): Profile("instagram-reel-long", "instagram", **LONG, min_seconds=3, max_seconds=900,
                                   max_bytes=300 * MB, video_maxrate=10_000_000),
    # No platform: render and package only.
    (None, "short"): Profile("short", None, **SHORT, min_seconds=1, max_seconds=60, max_bytes=4 * GB,
                             video_maxrate=10_000_000),
    (None, "long"): Profile("long", None, **LONG, min_seconds=1, max_seconds=120 * 60, max_bytes=256 * GB,
                            video_maxrate=12_000_000),
}

# Safe zones (x0, y0, x1, y1): where burned-in text stays clear of platform UI (platforms.md:
# ~250 px on top, ~400 px at the bottom and a column of buttons on the right of a 9:16 frame).
SAFE_ZONES = {
    (1080, 1920): (60, 250, 940, 1520),
    (1920, 1080): (96, 54, 1824, 1026),
}


def safe_zone(width: int, height: int) -> tuple[int, int, int, int]:
    return SAFE_ZONES.get((width, height), (width // 20, height // 20, width - width // 20, height - height // 20))


def profiles_for(fmt: str, platforms: Iterable[str]) -> list[Profile]:
    chosen = [PROFILES[(p, fmt)] for p in platforms]
    return chosen or [PROFILES[(None, fmt)]]


def encode_for(profile: Profile, seconds: float) -> Encode:
    """Encode settings for a video of `seconds`: the bitrate ceiling also keeps it under max_bytes."""
    budget = int(0.9 * profile.max_bytes * 8 / max(seconds, 1.0)) - profile.audio_bitrate
    maxrate = max(min(profile.video_maxrate, budget), 500_000)
    return Encode(profile.width, profile.height, profile.fps, maxrate, profile.audio_bitrate)


def group(profiles: Iterable[Profile], seconds: float) -> dict[Encode, list[Profile]]:
    """Profiles that encode alike, in first-seen order: one render each (issue 4)."""
    out: dict[Encode, list[Profile]] = {}
    for p in profiles:
        out.setdefault(encode_for(p, seconds), []).append(p)
    return out


def check_duration(profiles: Iterable[Profile], seconds: float) -> list[str]:
    problems = []
    for p in profiles:
        if seconds > p.max_seconds:
            problems.append(f"{p.name} takes at most {p.max_seconds:g} s; the video is {seconds:.1f} s")
        elif seconds < p.min_seconds:
            problems.append(f"{p.name} needs at least {p.min_seconds:g} s; the video is {seconds:.1f} s")
    return problems
