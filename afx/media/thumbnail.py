"""Thumbnails: a strong frame of the video, with a short title drawn on it.

Candidates are the render's stills (frames without captions, every 2 s) or a video's keyframes, after
the hook title has faded. Each is scored for sharpness (variance of the Laplacian), exposure
(mid-grey mean, little clipping), colour, faces and motion (a peak rather than a still); the
best wins. When the video shows faces, only a frame with a face can win, and the face counts
by how frontal and how sharp it is (YuNet, afx.media.faces; issue 12). The title is drawn
where it covers no face. A frame time or an image can be given instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

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
    faces: tuple = ()  # [cx, cy, w, h] fractions of the frame, for the title to avoid


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
            boxes, face = _faces(frame, np)
            parts = {"sharpness": round(sharp, 3), "exposure": round(exposure, 3), "colour": round(colour, 3),
                     "motion": round(min(motion * 8, 1.0), 3), "faces": round(face, 3)}
            found.append(Candidate(round(t, 3), 0.0, parts, boxes))
    with_faces = [c for c in found if c.parts["faces"] >= 0.25]
    pool = with_faces or found  # a video of people gets a thumbnail of a person
    return [Candidate(c.time, round(0.30 * c.parts["sharpness"] + 0.20 * c.parts["exposure"] + 0.10 * c.parts["colour"]
                                    + 0.30 * c.parts["faces"] + 0.10 * c.parts["motion"], 4), c.parts, c.faces)
            for c in pool]


def _faces(frame: Any, np: Any) -> tuple[tuple, float]:
    """The frame's faces, and how good its best face is for a thumbnail: frontal, sharp, big."""
    try:
        from afx.media.faces import detector
        detect = detector()
    except (ImportError, MediaError):  # pragma: no cover - a dependency
        return (), 0.0
    width = min(frame.width, 540)
    image = frame.reformat(width=width, height=max(2, round(frame.height * width / frame.width)),
                           format="bgr24").to_ndarray()
    boxes = detect(image)
    best = 0.0
    grey = image.mean(axis=2)
    h, w = grey.shape
    for b in boxes:
        x0, x1 = int(max(b.left, 0) * w), int(min(b.right, 1) * w)
        y0, y1 = int(max(b.cy - b.h / 2, 0) * h), int(min(b.cy + b.h / 2, 1) * h)
        region = grey[y0:y1, x0:x1]
        if region.shape[0] < 6 or region.shape[1] < 6:
            continue
        lap = region[:-2, 1:-1] + region[2:, 1:-1] + region[1:-1, :-2] + region[1:-1, 2:] - 4 * region[1:-1, 1:-1]
        sharp = min(float(lap.var()) / 150.0, 1.0)
        size = min(b.h / 0.25, 1.0)  # a face a quarter of the frame's height is big enough
        best = max(best, b.frontal * (0.5 + 0.5 * sharp) * (0.4 + 0.6 * size))
    return tuple((round(b.cx, 4), round(b.cy, 4), round(b.w, 4), round(b.h, 4)) for b in boxes), best


def frame(video: Path, seconds: float) -> bytes:
    return run(["-ss", f"{seconds:.3f}", *SAFE_INPUT, "-i", str(video), "-frames:v", "1", "-f", "image2pipe",
                "-vcodec", "png", "pipe:1"], what=f"taking the frame at {seconds:.1f} s", capture_stdout=True)


def short_text(text: str, words: int = 5) -> str:
    parts = printable(text).split()
    out = " ".join(parts[:words])
    return out.upper() + ("…" if len(parts) > words else "")


class Thumbnail(TypedDict):
    """What `compose` made (in this order): the size, the text and, with text, where its block
    starts and its lines; then the JPEG's bytes and quality, which compose always sets last."""

    size: list[int]
    text: str
    text_top: NotRequired[int]
    lines: NotRequired[list[str]]
    bytes: NotRequired[int]
    quality: NotRequired[int]


def compose(picture: bytes, size: tuple[int, int], text: str, out: Path, faces: tuple = ()) -> Thumbnail:
    """Cover-crop the picture to `size`, draw the text (big, stroked, on an accent bar) where
    it covers none of `faces` ([cx, cy, w, h] fractions of the picture), save JPEG."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    try:
        img: Image.Image = Image.open(io.BytesIO(picture))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any unreadable picture is one clear error
        raise MediaError("thumbnail picture cannot be read", str(exc)) from None
    img_size = img.size
    img = ImageOps.fit(img.convert("RGB"), size, method=Image.Resampling.LANCZOS)
    w, h = size
    info: Thumbnail = {"size": list(size), "text": text}
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
        top = _text_top(len(lines[:3]) * line_h, size, _on_thumb(faces, img_size, size), h > w)
        info["text_top"] = top
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
    info.update({"bytes": buf.tell(), "quality": quality})
    return info


def _on_thumb(faces: tuple, src: tuple[int, int], size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """Face boxes (x0, y0, x1, y1 in thumbnail pixels) after the centred cover crop to `size`."""
    sw, sh = src
    w, h = size
    cw: float
    ch: float
    if sw * h > sh * w:  # wider: the sides are cut
        cw, ch = sh * w / h, sh
    else:
        cw, ch = sw, sw * h / w
    ox, oy = (sw - cw) / 2, (sh - ch) / 2
    out = []
    for cx, cy, bw, bh in faces:
        x0, x1 = ((cx - bw / 2) * sw - ox) * w / cw, ((cx + bw / 2) * sw - ox) * w / cw
        y0, y1 = ((cy - bh / 2) * sh - oy) * h / ch, ((cy + bh / 2) * sh - oy) * h / ch
        if x1 > 0 and x0 < w and y1 > 0 and y0 < h:
            out.append((x0, y0, x1, y1))
    return out


def _text_top(block: int, size: tuple[int, int], faces: list, portrait: bool) -> int:
    """Where the title's block starts: the usual place (high in the frame), else the first
    place that covers no face (a face grown by a tenth), else the one covering least."""
    w, h = size
    usual = 0.2 if portrait else 0.08
    places = [usual, 0.04, 0.62 if portrait else 0.58, 0.72 if portrait else 0.66, 0.4]
    best, least = int(h * usual), float("inf")
    for frac in places:
        top = int(h * frac)
        if top + block > h * 0.96:
            continue
        cover = 0.0
        for x0, y0, x1, y1 in faces:
            gy = (y1 - y0) * 0.1
            cover += max(0.0, min(top + block, y1 + gy) - max(top, y0 - gy)) * (x1 - x0)
        if cover == 0:
            return top
        if cover < least:
            best, least = top, cover
    return best
