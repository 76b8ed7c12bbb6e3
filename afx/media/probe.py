"""What a media file holds: duration, streams, size, fps, rotation, audio. PyAV, no ffprobe.

imageio-ffmpeg ships no ffprobe (facts.md); PyAV carries its own libav* and reads the same
containers. A file is also read through (packets only, nothing decoded) so a truncated
download is caught here rather than in the middle of a render.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import SOURCE_DEMUXERS, MediaError

# How PyAV opens every file afx reads: local files only, and only media containers (a
# playlist, concat list or SDP file would make libavformat open what it names; issue 11).
OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(SOURCE_DEMUXERS)}
_LISTS = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat", "an ffmpeg concat list"), (b"<?xml", "an XML document"),
          (b"<MPD", "a DASH manifest"), (b"v=0", "an SDP session description"), (b"<", "a web page or XML"))
MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"


@dataclass(frozen=True)
class Probe:
    format: str
    duration: float  # seconds
    size: int  # bytes
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    rotation: int  # degrees the player turns the picture
    video_codec: str
    has_audio: bool
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        return cls(**data)


def sniff_mp4(path: Path) -> bool:
    """MP4/MOV by content: an ISO-BMFF box header (`ftyp`, or a QuickTime top-level atom)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def open_media(path: str | os.PathLike[str]) -> Any:
    """av.open for reading, confined as OPEN_OPTIONS says."""
    import av

    return av.open(str(path), container_options=OPEN_OPTIONS, metadata_errors="ignore")


def _what_list(path: Path) -> str:
    """"an HLS playlist", ...: a text file that names other files, or ""."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return ""
    return next((what for magic, what in _LISTS if head.startswith(magic)), "")


def probe(path: str | os.PathLike[str], *, label: str | None = None, check_complete: bool = True) -> Probe:
    import av

    path = Path(path)
    label = label or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"{label}: cannot be read", exc.strerror or str(exc)) from None
    if size == 0:
        raise MediaError(f"{label}: file is empty (0 bytes)")
    listing = _what_list(path)
    if listing:
        raise MediaError(f"{label}: not a video file but {listing}, which names other files; afx reads "
                         "only self-contained recordings (MP4, MOV, MKV, WebM, FLV, TS...)")
    try:
        container = open_media(path)
    except av.error.ArgumentError as exc:  # a demuxer off the whitelist (a format that opens other files)
        raise MediaError(f"{label}: not a recording format afx reads", str(exc)) from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{label}: not a video ffmpeg can read (truncated, or not a video file)",
                         str(exc)) from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise MediaError(f"{label}: has no video stream ({kinds})")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = _duration(container, video)
        if not duration or duration <= 0:
            raise MediaError(f"{label}: has no duration (not a complete video)")
        rotation = 0
        try:
            frame = next(container.decode(video))
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        except (StopIteration, av.error.FFmpegError) as exc:
            raise MediaError(f"{label}: no video frame can be decoded", str(exc)) from None
        width, height = video.codec_context.width, video.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        fps = float(video.average_rate or video.guessed_rate or 0) or 30.0
        info = Probe(
            format=container.format.name,
            duration=round(duration, 3),
            size=size,
            width=width,
            height=height,
            fps=round(fps, 3),
            rotation=rotation,
            video_codec=video.codec_context.name,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else None,
            sample_rate=audio.codec_context.sample_rate if audio else None,
            channels=audio.codec_context.channels if audio else None,
        )
    if check_complete:
        _check_complete(path, label, info)
    return info


def _duration(container: Any, video: Any) -> float:
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _check_complete(path: Path, label: str, info: Probe) -> None:
    """Read every video packet (no decoding): a cut-off file ends early or fails to demux."""
    import av

    last = 0.0
    packets = 0
    try:
        with open_media(path) as container:
            video = container.streams.video[0]
            base = float(video.time_base)
            start = float(video.start_time * video.time_base) if video.start_time else 0.0
            for packet in container.demux(video):
                if packet.pts is None or packet.size == 0:
                    continue
                packets += 1
                last = max(last, (packet.pts + (packet.duration or 0)) * base - start)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{label}: is damaged or truncated", str(exc)) from None
    if packets == 0:
        raise MediaError(f"{label}: has no video data")
    if last < info.duration - max(1.0, 0.05 * info.duration):
        raise MediaError(f"{label}: is truncated: video data ends at {last:.1f}s of {info.duration:.1f}s")
