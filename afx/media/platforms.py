"""The platforms afx publishes to, one record each: what a platform accepts (render profiles,
copy limits), the hashtags afx adds for it, and how a person posts its outbox folder.

Figures from docs/platforms.md of the shared reference. Add a platform: its record, its line
in PLATFORMS, then `make schemas` (the schemas' platform enum, per-platform copy and publish
blocks and duration rules are made from PLATFORMS, afx/extensions.py). `platforms` is a field
of the AuraFlux API: a new platform changes the contract (docs/auraflux-api-v1.txt) too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

GB = 1024**3
MB = 1024**2


@dataclass(frozen=True)
class Profile:
    """What one platform accepts for one format (afx.media.profiles renders from these)."""

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
class Limits:
    """How long a platform lets each part of the copy be (afx.media.copy writes within them)."""

    title: int
    description: int
    caption: int | None  # title + description + hashtags together, where the platform has one caption
    hashtags: int  # how many
    tags_chars: int | None = None  # YouTube: all tags together


@dataclass(frozen=True)
class Platform:
    name: str  # as specs write it: platforms: [tiktok]
    profiles: Mapping[str, Profile]  # format (short | long) -> what it accepts
    limits: Limits
    hashtags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # format -> added to afx's own
    by_hand: str = ""  # the outbox's MANIFEST: how a person posts the folder
    too_long: str = ""  # the spec's error when durationMins is over the long profile ({minutes})


def framed(name: str, platform: str | None, fmt: str, *, min_seconds: float, max_seconds: float, max_bytes: int,
           video_maxrate: int) -> Profile:
    """A profile in afx's frame for the format: 1080x1920 (short) or 1920x1080 (long), 30 fps."""
    width, height = (1080, 1920) if fmt == "short" else (1920, 1080)
    return Profile(name, platform, fmt, width, height, 30, min_seconds=min_seconds, max_seconds=max_seconds,
                   max_bytes=max_bytes, video_maxrate=video_maxrate)

TIKTOK = Platform(
    "tiktok",
    # 9:16, 3 s to 10 min, <= 4 GB, 23-60 fps.
    {"short": framed("tiktok-short", "tiktok", "short", min_seconds=3, max_seconds=600, max_bytes=4 * GB,
                      video_maxrate=10_000_000),
     "long": framed("tiktok-long", "tiktok", "long", min_seconds=3, max_seconds=600, max_bytes=4 * GB,
                     video_maxrate=10_000_000)},
    Limits(title=150, description=2200, caption=2200, hashtags=30),
    hashtags={"short": ("#fyp",)},
    by_hand="TikTok app or web: Upload, choose video.mp4, paste caption.txt, set the cover from thumb.jpg.",
    too_long="TikTok takes videos of at most {minutes} minutes",
)

YOUTUBE = Platform(
    "youtube",
    # Shorts: 9:16, up to 3 min. Videos: 16:9, up to 12 h, <= 256 GB.
    {"short": framed("youtube-short", "youtube", "short", min_seconds=1, max_seconds=180, max_bytes=256 * GB,
                      video_maxrate=10_000_000),
     "long": framed("youtube-long", "youtube", "long", min_seconds=1, max_seconds=12 * 3600, max_bytes=256 * GB,
                     video_maxrate=12_000_000)},
    Limits(title=100, description=5000, caption=None, hashtags=15, tags_chars=500),
    hashtags={"short": ("#shorts",)},
    by_hand="YouTube Studio: Create, Upload video, video.mp4; title.txt as title, caption.txt as "
            "description; custom thumbnail thumb.jpg.",
)

INSTAGRAM = Platform(
    "instagram",
    # Reels: 9:16, 3 s to 15 min, <= 300 MB, 23-60 fps, H.264.
    {"short": framed("instagram-reel", "instagram", "short", min_seconds=3, max_seconds=900, max_bytes=300 * MB,
                      video_maxrate=10_000_000),
     "long": framed("instagram-reel-long", "instagram", "long", min_seconds=3, max_seconds=900,
                     max_bytes=300 * MB, video_maxrate=10_000_000)},
    Limits(title=150, description=2200, caption=2200, hashtags=30),
    hashtags={"short": ("#reels",)},
    by_hand="Instagram: New reel, video.mp4; paste caption.txt; cover from thumb.jpg.",
    too_long="Instagram Reels are at most {minutes} minutes",
)

PLATFORMS: dict[str, Platform] = {
    "tiktok": TIKTOK,
    "youtube": YOUTUBE,
    "instagram": INSTAGRAM,
}

# A job with no platforms: rendered and packaged only, within these.
NO_PLATFORM = Platform(
    "",
    {"short": framed("short", None, "short", min_seconds=1, max_seconds=60, max_bytes=4 * GB,
                      video_maxrate=10_000_000),
     "long": framed("long", None, "long", min_seconds=1, max_seconds=120 * 60, max_bytes=256 * GB,
                     video_maxrate=12_000_000)},
    Limits(title=100, description=5000, caption=None, hashtags=30),
)


def platform(name: str | None) -> Platform:
    """The platform's record; None: NO_PLATFORM."""
    return NO_PLATFORM if name is None else PLATFORMS[name]
