"""Render profiles (issue 4): what the job's platforms accept (afx.media.platforms), as encodes.

A profile says what one platform accepts for one format. Rendering works on encode
settings: platforms whose profiles encode the same way share one render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from afx.media.platforms import NO_PLATFORM, PLATFORMS, Profile


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


# Safe zones (x0, y0, x1, y1): where burned-in text stays clear of platform UI (platforms.md:
# ~250 px on top, ~400 px at the bottom and a column of buttons on the right of a 9:16 frame).
SAFE_ZONES = {
    (1080, 1920): (60, 250, 940, 1520),
    (1920, 1080): (96, 54, 1824, 1026),
}


def safe_zone(width: int, height: int) -> tuple[int, int, int, int]:
    return SAFE_ZONES.get((width, height), (width // 20, height // 20, width - width // 20, height - height // 20))


def profiles_for(fmt: str, platforms: Iterable[str]) -> list[Profile]:
    chosen = [PLATFORMS[p].profiles[fmt] for p in platforms]
    return chosen or [NO_PLATFORM.profiles[fmt]]


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
