"""Recordings in containers that seek badly, made seekable: remuxed into Matroska (issue 12).

A render seeks into every segment (`-ss` before `-i`). MP4/MOV and Matroska seek exactly;
FLV (stream downloads), MPEG-TS/PS, AVI and the like often do not: an FLV without a keyframe
index, seeked to 0 s, gave no video frame at all and a third of its audio. Remuxing copies
the streams into Matroska, which is indexed (Cues) and takes any codec; a stream Matroska
cannot hold, or a remux ffmpeg refuses, is transcoded to H.264/AAC instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from afx.media.ffmpeg import SOURCE_INPUT, MediaError, run
from afx.media.probe import Probe, probe

SPARE = 256 * 1024 * 1024  # bytes of disk left free beyond the copy


def check_room(folder: Path, needed: int, label: str, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPARE:
        raise MediaError(f"{label}: not enough free disk for {what}",
                         f"it needs about {needed / 1e9:.1f} GB and {free / 1e9:.1f} GB are free in {folder}")


def remux(src: Path, dst: Path, info: Probe, label: str,
          on_progress: Callable[[float], None] = lambda f: None) -> str:
    """`src` as Matroska at `dst`: "remuxed" (streams copied) or "transcoded"."""
    check_room(dst.parent, src.stat().st_size, label, "remuxing it into Matroska")
    audio = ["-map", "0:a?"] if info.has_audio else []
    common = [*SOURCE_INPUT, "-fflags", "+genpts", "-i", str(src), "-map", "0:v:0", *audio, "-map_metadata", "-1",
              "-dn", "-sn"]
    try:
        run([*common, "-c", "copy", "-f", "matroska", str(dst)], what=f"remuxing {label}",
            duration=info.duration, on_progress=on_progress)
        probe(dst, label=label)
        return "remuxed"
    except MediaError:
        dst.unlink(missing_ok=True)
    run([*common, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-f", "matroska", str(dst)],
        what=f"transcoding {label}", duration=info.duration, on_progress=on_progress)
    return "transcoded"


# -- what an API's upload takes ----------------------------------------------------------------
API_MAX_BYTES = 500 * 1024 * 1024  # the AuraFlux reference: MP4 or MOV, at most 500 MB
MP4_VIDEO = ("h264", "hevc", "mpeg4", "av1")
MP4_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3")
MIN_VIDEO_RATE = 1_500_000  # bits/s below which a transcode to fit is not worth sending (720p)


class CannotSend(MediaError):
    """The recording cannot be made into something the API's upload takes."""


def for_upload(src: Path, folder: Path, label: str, max_bytes: int = API_MAX_BYTES,
               on_progress: Callable[[float], None] = lambda f: None) -> tuple[Path, str]:
    """(file to upload, what was done: "" when `src` goes as it is). MP4/MOV under the cap
    goes as it is; another container is remuxed into MP4 (streams copied) when its codecs
    fit MP4, else transcoded; a recording over the cap is transcoded to a bitrate that fits,
    when that still gives a watchable 720p; else CannotSend says why and what to do."""
    info = probe(src, label=label)
    size = src.stat().st_size
    mp4 = info.format.split(",")[0] == "mov"
    if mp4 and size <= max_bytes:
        return src, ""
    folder.mkdir(parents=True, exist_ok=True)
    audio = ["-map", "0:a:0?"] if info.has_audio else []
    common = [*SOURCE_INPUT, "-i", str(src), "-map", "0:v:0", *audio, "-map_metadata", "-1", "-dn", "-sn"]
    copyable = info.video_codec in MP4_VIDEO and (not info.has_audio or info.audio_codec in MP4_AUDIO)
    if size <= max_bytes and copyable:
        out = folder / f"{src.stem}.remux.mp4"
        check_room(folder, size, label, "remuxing it into MP4")
        run([*common, "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(out)], what=f"remuxing {label}",
            duration=info.duration, on_progress=on_progress)
        if out.stat().st_size <= max_bytes:
            return out, f"remuxed into MP4 ({info.format.split(',')[0]} is not accepted)"
        out.unlink()
    audio_rate = 128_000 if info.has_audio else 0
    video_rate = int(max_bytes * 8 * 0.95 / max(info.duration, 0.1)) - audio_rate
    if size > max_bytes and video_rate < MIN_VIDEO_RATE:
        minutes = info.duration / 60
        raise CannotSend(f"{label} cannot be sent to this API",
                         f"it is {size / 1048576:.0f} MB ({minutes:.0f} min); the API takes MP4/MOV up to "
                         f"{max_bytes // 1048576} MB, which leaves {max(video_rate, 0) // 1000} kb/s for "
                         "its picture: cut it first (a shorter file, or clips of it), or run the job with afx run")
    video_rate = min(video_rate, 8_000_000)
    height = 1080 if video_rate >= 4_000_000 else 720
    scale = [] if info.height <= height else ["-vf", f"scale=-2:{height}"]
    out = folder / f"{src.stem}.upload.mp4"
    run([*common, *scale, "-c:v", "libx264", "-preset", "veryfast", "-b:v", str(video_rate),
         "-maxrate", str(int(video_rate * 1.2)), "-bufsize", str(video_rate * 2), "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", str(audio_rate or 128_000), "-movflags", "+faststart", "-f", "mp4", str(out)],
        what=f"transcoding {label} for the API", duration=info.duration, on_progress=on_progress)
    why = "over the API's 500 MB" if size > max_bytes else f"{info.video_codec}/{info.audio_codec} do not fit MP4"
    return out, f"transcoded to H.264/AAC at {video_rate // 1000} kb/s ({why})"
