"""Thumbnails: a strong frame of the video, with a short title drawn on it.

Candidates are the render's stills (frames without captions, every 2 s) or a video's keyframes, after
the hook title has faded. Each is scored for sharpness (variance of the Laplacian), exposure
(mid-grey mean, little clipping), colour, faces (OpenCV Haar) and motion (a peak rather than
a still); the best wins. A frame time or an image can be given instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from afx.media.ffmpeg import SAFE_INPUT, MediaError, run
from afx.media.fonts import font_file
from afx.media.probe import open_media
from afx.media.title import printable, wrap

MAX_JPEG = 2 * 1024 * 1024  # YouTube's custom thumbnail limit


@dataclass(frozen=True)
class Candidate:
    time: float
    score: float
    parts: dict


def candidates(video: Path, skip: float = 0.0) -> list[Candidate]:
    import numpy as np

    found: list[Candidate] = []
    prev = None
    with open_media(video) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            small = frame.reformat(width=135, height=240 if frame.height > frame.width else 76, format="rgb24")
            rgb = small.to_ndarray().astype(np.float32)
            grey = rgb.mean(axis=2)
            motion = float(np.abs(grey - prev).mean() / 255) if prev is not None and prev.shape == grey.shape else 0.0
            prev = grey
            if t < skip or (duration and t > duration - 0.5):
                continue
            lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
            sharp = min(float(lap.var()) / 400.0, 1.0)
            mean = float(grey.mean()) / 255
            clipped = float(((grey < 8) | (grey > 247)).mean())
            exposure = max(0.0, 1 - abs(mean - 0.5) * 2) * (1 - clipped)
            colour = min(float((rgb.max(axis=2) - rgb.min(axis=2)).mean()) / 120.0, 1.0)
            parts = {"sharpness": round(sharp, 3), "exposure": round(exposure, 3), "colour": round(colour, 3),
                     "motion": round(min(motion * 8, 1.0), 3), "faces": 0.0}
            found.append(Candidate(round(t, 3), 0.0, parts))
    _faces(video, found)
    return [Candidate(c.time, round(0.35 * c.parts["sharpness"] + 0.25 * c.parts["exposure"] + 0.15 * c.parts["colour"]
                                    + 0.15 * c.parts["faces"] + 0.10 * c.parts["motion"], 4), c.parts)
            for c in found]


def _faces(video: Path, found: list[Candidate]) -> None:
    if not found:
        return
    try:
        import cv2
        import numpy as np
    except ImportError:  # pragma: no cover
        return
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    for c in found[:: max(1, len(found) // 8)]:
        raw = run(["-ss", f"{c.time:.3f}", *SAFE_INPUT, "-i", str(video), "-frames:v", "1", "-vf",
                   "scale=270:-2,format=gray", "-f", "rawvideo", "pipe:1"], what="reading a frame", capture_stdout=True)
        if not raw:
            continue
        w = 270
        img = np.frombuffer(raw, dtype=np.uint8)
        img = img[: (img.size // w) * w].reshape(-1, w)
        if len(cascade.detectMultiScale(img, scaleFactor=1.15, minNeighbors=5, minSize=(16, 16))):
            c.parts["faces"] = 1.0


def frame(video: Path, seconds: float) -> bytes:
    return run(["-ss", f"{seconds:.3f}", *SAFE_INPUT, "-i", str(video), "-frames:v", "1", "-f", "image2pipe",
                "-vcodec", "png", "pipe:1"], what=f"taking the frame at {seconds:.1f} s", capture_stdout=True)


def short_text(text: str, words: int = 5) -> str:
    parts = printable(text).split()
    out = " ".join(parts[:words])
    return out.upper() + ("…" if len(parts) > words else "")


def compose(picture: bytes, size: tuple[int, int], text: str, out: Path) -> dict:
    """Cover-crop the picture to `size`, draw the text (big, stroked, on an accent bar), save JPEG."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    try:
        img = Image.open(io.BytesIO(picture))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any unreadable picture is one clear error
        raise MediaError("thumbnail picture cannot be read", str(exc)) from None
    img = ImageOps.fit(img.convert("RGB"), size, method=Image.Resampling.LANCZOS)
    w, h = size
    info = {"size": list(size), "text": text}
    if text:
        draw = ImageDraw.Draw(img)
        fsize = int(min(w, h) * (0.16 if h > w else 0.14))
        font = ImageFont.truetype(str(font_file("title")), fsize)
        lines = wrap(text.split(), font, int(w * 0.86))
        while len(lines) > 3 and fsize > 30:
            fsize -= 6
            font = ImageFont.truetype(str(font_file("title")), fsize)
            lines = wrap(text.split(), font, int(w * 0.86))
        ascent, descent = font.getmetrics()
        line_h = int((ascent + descent) * 1.02)
        top = int(h * (0.2 if h > w else 0.08))
        for i, line in enumerate(lines[:3]):
            lw = font.getlength(line)
            x, y = (w - lw) / 2, top + i * line_h
            pad = fsize * 0.12
            draw.rectangle((x - pad, y + line_h * 0.62, x + lw + pad, y + line_h * 0.95), fill=(255, 212, 0))
            draw.text((x, y), line, font=font, fill=(255, 255, 255), stroke_width=max(3, fsize // 14),
                      stroke_fill=(0, 0, 0))
        info["lines"] = lines[:3]
    quality = 92
    while True:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
        if buf.tell() <= MAX_JPEG or quality <= 50:
            break
        quality -= 8
    out.write_bytes(buf.getvalue())
    info.update(bytes=buf.tell(), quality=quality)
    return info
