"""A generated stream recording with planted moments, for bench/vod.py (issue 14).

Video: four game-like 1920x1080 30 fps scenes of 2.5 minutes each (a shooter over an evolving
automaton, a top-down racer, a space shooter over a zooming fractal, a strategy map; moving
shapes, a HUD), encoded once with libx264 ultrafast at 4 Mb/s with a keyframe every 2 s (as
stream recordings have) and joined, without re-encoding, by the concat demuxer: pieces of
them at random (a scene change every ~1.5 minutes), none within 8 s of a planted moment.

Audio (the realistic part): 48 kHz stereo, built in 10 s chunks straight into ffmpeg's AAC
encoder (bounded memory): a streamer talking in calm sentences (afx's own offline TTS,
afx/media/tts.py, a bank reused with varied gaps and volumes, and quiet stretches), game
sound (an ambience bed that never stops, music loops that come and go, footsteps, distant
gunfire, UI blips), and louder-than-average events that are not planted (small bursts every minute or two, a bigger
explosion every ~20 minutes with no one excited about it). At seeded, spread-out times (not
in the first or last 2 minutes) a planted moment: a loud event (an explosion, or a gunfight
ending in one) with excited speech around it (exclamations synthesised faster, higher and
~11 dB louder than the calm talk, and laughter), 10-20 s long.

Video and audio are muxed with stream copy into an MKV, like an OBS recording. The result,
and `moments.json` (the planted times and the distractors), are kept in
bench/.data/vod/<minutes>min-seed<seed>-<key>/, the key being a digest of this file and the
parameters: a second run reuses them.

    .venv/bin/python bench/vodsource.py [--minutes 180] [--seed 14]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import DATA, ffmpeg  # noqa: E402

CACHE = DATA / "vod"
SR = 48000
CHUNK = 10 * SR
SCENE_SECONDS = 150
VIDEO_ARGS = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
              "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-r", "30"]

CALM = [
    "Alright, let us head over to the left side and see what is up there.",
    "I think we need a bit more ammo before the next fight.",
    "Okay, so this part of the map is usually pretty quiet.",
    "Thanks for the follow, welcome to the stream.",
    "I am going to check the inventory real quick.",
    "Let me see, where did I put that key card again.",
    "This route is a little longer, but it is a lot safer.",
    "Somebody in chat asked about my settings, they are in the description.",
    "We will probably take a short break in a little while.",
    "Hmm, I do not remember this door being here last time.",
    "So the plan is to grab the supplies and then rotate north.",
    "I really like the music in this level, it is so relaxing.",
    "Yeah, I tried that build yesterday and it was just okay.",
    "Let us wait here for a second and see who comes through.",
    "The graphics on this map are honestly really nice.",
    "I need to upgrade this weapon at some point.",
    "Alright, moving on, nothing to see here.",
    "Good question, I have been playing this game for about a year now.",
    "If you are new here, we usually play until late in the evening.",
    "I am just going to loot this building and then head out.",
    "Okay, the circle is closing, we should start moving.",
    "That is a good spot, I will remember that one.",
    "Let me drink some water, one second.",
    "I think the other team went the other way.",
    "This is the slow part of the match, honestly.",
    "We have plenty of time, no need to rush anything.",
    "I usually take the bridge here, but let us try the tunnel.",
    "Oh, there is a health pack over there, nice.",
    "The last patch changed how this weapon handles.",
    "Chat, should we go left or right, what do you think?",
    "I am going to reload and reposition a little bit.",
    "Not much happening right now, just waiting it out.",
    "My aim felt a little off in the last round.",
    "Let us check the map and see where everyone is.",
    "Okay, I will take the high ground and hold this angle.",
    "Somebody asked what game this is, it is an early access build.",
    "Alright, quick look at the scoreboard.",
    "I am going to crouch here and listen for footsteps.",
    "We are doing fine, just stay calm and play it slow.",
    "Let me adjust the volume a little, is that better?",
    "The sun is coming up in the game, that looks pretty cool.",
    "I always forget to pick up the grenades.",
    "Okay, let us see what the next round brings.",
    "Nothing in this room, moving to the next one.",
    "I think I hear someone on the roof.",
]
EXCITED = [
    "Oh my god!",
    "No way, did you see that?",
    "That was insane!",
    "Let's go!",
    "What just happened?",
    "Are you kidding me?",
    "That was so close!",
    "Yes! Yes! Yes!",
    "Chat, did you see that?",
    "I can't believe that worked!",
    "Clip it, clip it!",
    "Oh my god, oh my god!",
    "That is the best play of the night!",
    "Unbelievable!",
    "Wow, just wow!",
    "Did that really just happen?",
    "Ha ha ha ha!",
    "He had no idea!",
    "Get wrecked!",
    "Insane, absolutely insane!",
]
TENSE = ["Wait, wait, wait!", "Careful, he is right there!", "Okay, okay, here we go!", "Hold on, hold on!",
         "Where is he? Where is he?", "Watch out!", "Oh no, oh no!"]

# Levels in dBFS. Speech, laughter and beds: RMS; other sounds: the RMS of their loudest half
# second (what a loudness analysis sees). Calm talk -24, excited -13; the planted event -7, a
# distractor explosion -15, a small burst -19. The game's ambience never stops (-36, music
# over it -31): a stream has no silence.
CALM_DB, EXCITED_DB, TENSE_DB, LAUGH_DB = -24.0, -13.0, -17.0, -15.0
PLANTED_DB, GUNFIGHT_DB, MEDIUM_DB, SMALL_DB = -7.0, -12.0, -15.0, -19.0
SHOT_DB, STEP_DB, BLIP_DB, MUSIC_DB, WIND_DB = -30.0, -36.0, -36.0, -31.0, -36.0


def _db(x: float) -> float:
    return float(10 ** (x / 20))


# ---------------------------------------------------------------------------------------------
# video

def _text(font: str, text: str, x: int, y: int, size: int, color: str = "white", box: bool = True) -> str:
    b = ":box=1:boxcolor=black@0.45:boxborderw=12" if box else ""
    return f"drawtext=fontfile={font}:text='{text}':x={x}:y={y}:fontsize={size}:fontcolor={color}{b}"


def scenes(font: str) -> dict[str, str]:
    """name -> lavfi filtergraph of SCENE_SECONDS of game-like 1920x1080 30 fps video."""
    d = SCENE_SECONDS
    t = lambda *a, **k: _text(font, *a, **k)  # noqa: E731
    return {
        "fps": (  # a shooter in a field: sky, evolving terrain, enemies, crosshair, gun, HUD
            f"gradients=s=1960x580:c0=0x2d5f9e:c1=0x9cc4ea:x0=0:y0=0:x1=0:y1=580:nb_colors=2:speed=0:r=30:d={d}[sky];"
            "life=s=392x104:r=30:ratio=0.4:seed=7:mold=12:life_color=0x5f8f35:death_color=0x2c4418:"
            "mold_color=0x6a5530,scale=1960:520:flags=neighbor[ground];"
            "[sky][ground]vstack,crop=1920:1080:x='20+18*sin(t*1.3)':y='10+8*sin(t*2.1)'[bg];"
            "color=c=0x9a2a1a:s=70x170:r=30[e1];color=c=0x1f2a7a:s=54x130:r=30[e2];"
            "color=c=0xd0c040:s=26x26:r=30[e3];"
            "[bg][e1]overlay=x='900+620*sin(t*0.6)':y='470+24*sin(t*2.3)'[v1];"
            "[v1][e2]overlay=x='260+520*abs(sin(t*0.31))':y='505+10*sin(t*1.7)'[v2];"
            "[v2][e3]overlay=x='mod(t*700,2200)-140':y='300+160*sin(t*0.9)'[v3];"
            "[v3]drawbox=x=946:y=536:w=28:h=6:color=white:t=fill,drawbox=x=957:y=525:w=6:h=28:color=white:t=fill,"
            "drawbox=x=1420:y=780:w=380:h=300:color=0x2a2a2a:t=fill,"
            "drawbox=x=1470:y=740:w=120:h=60:color=0x444444:t=fill,"
            "drawbox=x=1640:y=40:w=240:h=240:color=0x0f1f0f@0.8:t=fill,"
            "drawbox=x=1752:y=152:w=16:h=16:color=white:t=fill,"
            + t("HP %{eif\\:70+30*sin(t*0.2)\\:d}", 60, 990, 44, "0x70ff70") + ","
            + t("AMMO %{eif\\:30-mod(floor(t*3)\\,31)\\:d} / 90", 1500, 990, 44, "0xffe070") + ","
            + t("KILLS %{eif\\:floor(t/7)\\:d}    ROUND 7", 60, 40, 36) + ","
            + t("LIVE", 1500, 40, 30, "0xff4040")
        ),
        "race": (  # top-down racer: a scrolling automaton as the track, cars, lane marks, HUD
            "cellauto=s=240x135:rule=30:r=30:scroll=1:start_full=1:random_fill_ratio=0.5:seed=3,"
            "scale=1920:1080:flags=neighbor,lutrgb=r='val*0.35+20':g='val*0.35+20':b='val*0.3+28'[road];"
            "color=c=0x1f6f1f:s=420x1080:r=30[gl];color=c=0x1f6f1f:s=420x1080:r=30[gr];"
            "color=c=0xe0e0e0:s=16x120:r=30[lane];color=c=0xe0e0e0:s=16x120:r=30[lane2];"
            "color=c=0xd02020:s=90x170:r=30[car];color=c=0x2040d0:s=90x170:r=30[cpu];"
            "color=c=0xf0d020:s=90x170:r=30[cpu2];"
            "[road][gl]overlay=0:0[a];[a][gr]overlay=1500:0[b];"
            "[b][lane]overlay=x=952:y='mod(t*900,1300)-200'[c];"
            "[c][lane2]overlay=x=952:y='mod(t*900+650,1300)-200'[e];"
            "[e][cpu]overlay=x='700+200*sin(t*0.4)':y='mod(t*300,1500)-250'[f];"
            "[f][cpu2]overlay=x='1100+150*sin(t*0.7)':y='mod(t*220+700,1500)-250'[g];"
            "[g][car]overlay=x='910+300*sin(t*0.9)':y='820+20*sin(t*3)'[h];"
            f"[h]trim=duration={d},"
            + t("%{eif\\:180+60*sin(t*0.5)\\:d} KM/H", 1560, 960, 56) + ","
            + t("LAP 2/3    POS %{eif\\:1+mod(floor(t/9)\\,4)\\:d}", 40, 40, 44) + ","
            + t("BEST 1\\:12.408", 40, 110, 32, "0xc0c0ff")
        ),
        "space": (  # space shooter over a zooming fractal
            f"mandelbrot=s=480x270:r=30:start_scale=3:end_scale=0.02:end_pts={d * 30}:maxiter=256,"
            "scale=1920:1080,eq=brightness=-0.25:saturation=0.7:contrast=0.8[bg0];"
            "color=c=0x807060:s=140x110:r=30[rock];"
            "[bg0][rock]overlay=x='1700-mod(t*90,2000)':y='200+100*sin(t*0.3)'[bg];"
            "color=c=0xe0e0f0:s=120x60:r=30[ship];color=c=0xff3030:s=8x40:r=30[laser];"
            "color=c=0x30ff60:s=80x80:r=30[enemy];"
            "[bg][enemy]overlay=x='960+700*sin(t*0.8)':y='mod(t*160,1300)-120'[a];"
            "[a][ship]overlay=x='900+500*sin(t*0.5)':y=900[b];"
            "[b][laser]overlay=x='956+500*sin(floor(t*4)/4*0.5)':y='880-mod(t*4,1)*900'[c];"
            f"[c]trim=duration={d},"
            + t("SCORE %{eif\\:t*1337\\:d}", 40, 40, 48) + ","
            + t("SHIELD ||||||||", 40, 1000, 36, "0x60c0ff") + ","
            + t("WAVE 12", 1700, 40, 40, "0xffd040")
        ),
        "map": (  # strategy map: terrain, grid, units, side panel
            "gradients=s=1440x1080:c0=0x355e2a:c1=0x7a6a3a:c2=0x2a4f7a:c3=0x4a7a3a:nb_colors=4:speed=0.004:"
            f"seed=5:r=30:d={d},drawgrid=w=90:h=90:t=2:c=black@0.25[map];"
            "color=c=0x202428:s=480x1080:r=30[panel];"
            "color=c=0xe03030:s=36x36:r=30[u1];color=c=0x3060e0:s=36x36:r=30[u2];"
            "[map][panel]hstack[a];[a][u1]overlay=x='300+400*sin(t*0.2)':y='300+200*cos(t*0.3)'[b];"
            "[b][u2]overlay=x='900+300*cos(t*0.25)':y='700+150*sin(t*0.35)'[c];"
            "[c]drawbox=x=1480:y=60:w=400:h=300:color=0x101010:t=fill,"
            + t("GOLD %{eif\\:1200+t*13\\:d}", 1490, 400, 40, "0xffd040", box=False) + ","
            + t("WOOD %{eif\\:800+t*7\\:d}", 1490, 460, 40, "0xc08040", box=False) + ","
            + t("UNITS 24 / 40", 1490, 520, 40, box=False) + ","
            + t("TURN %{eif\\:1+floor(t/15)\\:d}", 1490, 600, 48, box=False)
        ),
    }


def scene_files() -> list[Path]:
    """The scenes, encoded once (keyed by their filtergraphs and encoder settings)."""
    from afx.media.fonts import font_file

    font = str(font_file("bold"))
    if any(c in font for c in ":,;'[]\\= "):  # it goes into a filtergraph unquoted
        raise SystemExit(f"font path {font!r}: move the venv to a plainer path")
    graphs = scenes(font)
    key = hashlib.sha256(json.dumps([graphs, VIDEO_ARGS]).encode()).hexdigest()[:10]
    folder = CACHE / f"scenes-{key}"
    if not folder.exists():
        for old in CACHE.glob("scenes-*"):  # scenes of an older version of this file
            shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, graph in graphs.items():
        path = folder / f"{name}.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-filter_complex",
                            graph + ",format=yuv420p", "-t", str(SCENE_SECONDS), *VIDEO_ARGS, "-threads", "2",
                            str(tmp)], check=True)
            os.replace(tmp, path)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# sounds

def _shaped(rng: np.random.Generator, n: int, lo: float, hi: float, tilt: float = 0.0) -> np.ndarray:
    """White noise band-passed to [lo, hi] Hz with a spectral tilt (f ** -tilt), unit peak.
    Circular: a copy placed after itself joins without a click."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    mask = ((f >= lo) & (f <= hi)) * np.maximum(f, 1.0) ** -tilt
    x = np.fft.irfft(spec * mask, n)
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def _env(n: int, attack: float, tau: float) -> np.ndarray:
    t = np.arange(n) / SR
    return (np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t / tau)).astype(np.float32)


def _loud(x: np.ndarray) -> np.ndarray:
    """Scaled so that its loudest half second has an RMS of 1."""
    w = min(len(x), SR // 2)
    power = np.convolve(x.astype(np.float64) ** 2, np.ones(w) / w, mode="valid")
    return (x / (np.sqrt(power.max()) + 1e-9)).astype(np.float32)


def gunshot(rng: np.random.Generator) -> np.ndarray:
    n = int(0.4 * SR)
    t = np.arange(n) / SR
    crack = _shaped(rng, n, 800, 12000) * _env(n, 0.0005, 0.01)
    body = _shaped(rng, n, 100, 3000, 0.5) * _env(n, 0.001, 0.07)
    thump = np.sin(2 * np.pi * (60 + 40 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.06)
    return _loud(crack + 0.8 * body + 0.6 * thump)


def explosion(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    rumble = _shaped(rng, n, 20, 2500, 1.0) * _env(n, 0.008, seconds / 3.5)
    crack = _shaped(rng, n, 500, 10000) * _env(n, 0.001, 0.04)
    boom = np.sin(2 * np.pi * (35 + 30 * np.exp(-t / 0.15)) * t) * _env(n, 0.005, seconds / 5)
    debris = _shaped(rng, n, 2000, 9000) * _env(n, 0.2, seconds / 2) * 0.15
    return _loud(rumble + 0.5 * crack + 0.7 * boom + debris)


def footsteps(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    out = np.zeros(n, np.float32)
    step = int(0.06 * SR)
    t, rate = 0.1, rng.uniform(1.8, 2.6)
    while t < seconds - 0.1:
        i = int(t * SR)
        click = _shaped(rng, step, 200, 4000, 0.3) * _env(step, 0.002, 0.015) * rng.uniform(0.6, 1.0)
        out[i:i + step] += click[: n - i]
        t += 1 / rate + rng.normal(0, 0.02)
    return _loud(out)


def laugh(rng: np.random.Generator) -> np.ndarray:
    """"Ha-ha-ha": voiced pulses (falling pitch, vowel-like formants) with breath between."""
    pulses, period = int(rng.integers(5, 10)), rng.uniform(0.17, 0.22)
    n = int((pulses * period + 0.3) * SR)
    out = np.zeros(n, np.float32)
    f0 = rng.uniform(190, 260)
    k = np.arange(1, 16)
    amp = 1 / k * (np.exp(-((k * f0 - 750) / 300) ** 2) + 0.6 * np.exp(-((k * f0 - 1250) / 400) ** 2) + 0.15)
    for p in range(pulses):
        m = int(period * 0.65 * SR)
        t = np.arange(m) / SR
        f = f0 * (1 - 0.25 * p / pulses)
        voiced = (amp[:, None] * np.sin(2 * np.pi * f * k[:, None] * t)).sum(axis=0)
        breath = _shaped(rng, m, 500, 5000) * 0.25
        pulse = (voiced / (np.abs(voiced).max() + 1e-9) + breath) * np.hanning(m) * (1 - 0.5 * p / pulses)
        i = int(p * period * SR)
        out[i:i + m] += pulse.astype(np.float32)
    return _unit_rms(out)


def blip(rng: np.random.Generator) -> np.ndarray:
    n = int(0.09 * SR)
    t = np.arange(n) / SR
    return _loud(np.sin(2 * np.pi * rng.choice([880, 1175, 1320, 1760]) * t) * np.hanning(n))


def music(rng: np.random.Generator, bpm: float, root: float) -> np.ndarray:
    """A stereo loop of four chords (two bars each) with kick and hi-hat, unit RMS."""
    beat = 60 / bpm
    chord_len = int(round(8 * beat * SR))
    n = 4 * chord_len
    out = np.zeros((n, 2), np.float32)
    t = np.arange(chord_len) / SR
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)
    for c, semis in enumerate([(0, 3, 7), (-4, 0, 3), (-9, -5, -2), (-2, 2, 5)]):  # i VI III VII, minor key
        pad = np.zeros((chord_len, 2))
        for s in semis:
            f = root * 2 ** (s / 12)
            pad[:, 0] += np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * 1.003 * t)
            pad[:, 1] += np.sin(2 * np.pi * f * 1.002 * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
        bass = np.sin(2 * np.pi * root / 2 * 2 ** (semis[0] / 12) * t)
        out[c * chord_len:(c + 1) * chord_len] = (pad * 0.25 + bass[:, None] * 0.5) * fade[:, None]
    tb = (np.arange(n) / SR) % beat
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-tb / 0.03)) * tb) * np.exp(-tb / 0.12)
    th = (np.arange(n) / SR) % (beat / 2)
    hat = _shaped(rng, n, 6000, 16000) * np.exp(-th / 0.012)
    out += (kick * 0.9 + hat * 0.35)[:, None]
    return _unit_rms(out)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)).astype(np.float32)


def speech_bank(lines: list[str], tone: str, fast: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """Each line through afx's TTS (afx/media/tts.py), at 48 kHz, trimmed, unit RMS. `fast`:
    excited delivery: quicker, more expressive, and pitched up by playing it faster."""
    from afx.media.tts import SAMPLE_RATE, Synthesis, ToneVoice

    synth = Synthesis(None, tone)
    if fast:
        synth.tone = ToneVoice(0.78, 0.95, 1.0, 0.05, 3.5)
    out = []
    for line in lines:
        before = len(synth.samples)
        synth.say(line)
        pcm = np.frombuffer(bytes(synth.samples[before:]), np.int16).astype(np.float32) / 32768
        loud = np.flatnonzero(np.abs(pcm) > 0.02)
        pcm = pcm[loud[0]:loud[-1] + 1] if loud.size else pcm
        speed = rng.uniform(1.08, 1.16) if fast else 1.0
        m = int(len(pcm) * SR / SAMPLE_RATE / speed)
        x = np.interp(np.arange(m) * speed * SAMPLE_RATE / SR, np.arange(len(pcm)), pcm)
        out.append(_unit_rms(x))
    synth.samples.clear()
    return out


# ---------------------------------------------------------------------------------------------
# the plan: every sound of the recording, with its time, level and place

@dataclass
class Sound:
    start: int  # sample
    data: np.ndarray  # mono (n,) or stereo (n, 2), float32
    gain: float
    pan: float = 0.0  # -1 left .. 1 right

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Bank:
    def __init__(self, rng: np.random.Generator) -> None:
        t0 = time.perf_counter()
        self.calm = speech_bank(CALM, "calm", False, rng)
        self.excited = speech_bank(EXCITED, "hype", True, rng)
        self.tense = speech_bank(TENSE, "hype", True, rng)
        self.tts_seconds = time.perf_counter() - t0
        self.shots = [gunshot(rng) for _ in range(8)]
        self.big = [explosion(rng, rng.uniform(2.2, 3.2)) for _ in range(4)]
        self.medium = [explosion(rng, rng.uniform(1.2, 1.8)) for _ in range(4)]
        self.small = [explosion(rng, rng.uniform(0.5, 0.9)) for _ in range(6)]
        self.steps = [footsteps(rng, 14.0) for _ in range(4)]
        self.laughs = [laugh(rng) for _ in range(6)]
        self.blips = [blip(rng) for _ in range(4)]
        self.tracks = [music(rng, bpm, root) for bpm, root in ((112, 220.0), (128, 196.0), (96, 246.9))]
        self.wind = np.stack([_shaped(rng, 37 * SR, 40, 6000, 0.6), _shaped(rng, 37 * SR, 40, 6000, 0.6)], axis=1)
        self.wind = _unit_rms(self.wind)


def default_planted(minutes: int) -> int:
    return max(3, round(10 * minutes / 180))


def plan(minutes: int, seed: int, planted: int, bank: Bank) -> tuple[list[Sound], list[tuple[int, int, int]], dict]:
    """(sounds, music segments (start, end, track) in samples, moments.json)."""
    rng = np.random.default_rng([seed, 1])
    total = minutes * 60.0
    sounds: list[Sound] = []

    def add(at: float, data: np.ndarray, db: float, pan: float = 0.0) -> float:
        sounds.append(Sound(int(at * SR), data, _db(db), pan))
        return at + len(data) / SR

    # the planted moments: one in each of `planted` equal strata of [2 min, end - 2 min]
    lo, hi = 120.0 + 6, total - 120.0 - 22
    width = (hi - lo) / planted
    margin = min(30.0, width * 0.2)
    times = np.random.default_rng([seed, 2]).uniform(margin, width - margin, planted) + lo + width * np.arange(planted)
    moments, busy = [], []
    for i, event in enumerate(times.tolist()):
        kind = str(rng.choice(["explosion", "gunfight", "ambush"]))
        target = rng.uniform(10, 20)
        lines: list[str] = []
        start = event
        if kind in ("gunfight", "ambush"):  # shots leading up to it, then the big one
            lead = rng.uniform(2.5, 4.5)
            start = event - lead
            at = start
            if kind == "ambush":
                k = int(rng.integers(len(TENSE)))
                add(at, bank.tense[k], TENSE_DB)
                lines.append(TENSE[k])
            while at < event - 0.2:
                add(at, bank.shots[int(rng.integers(8))], GUNFIGHT_DB + rng.uniform(-3, 0), rng.uniform(-0.5, 0.5))
                at += rng.uniform(0.12, 0.45)
        end = add(event, bank.big[int(rng.integers(4))], PLANTED_DB, rng.uniform(-0.3, 0.3))
        at = event + rng.uniform(0.5, 1.1)
        said = rng.permutation(len(EXCITED))
        j = 0
        while end - start < target - 1.0:
            if j and rng.random() < 0.3:
                at = add(at, bank.laughs[int(rng.integers(6))], LAUGH_DB + rng.uniform(-2, 1)) + rng.uniform(0.1, 0.4)
            k = int(said[j % len(said)])
            at = add(at, bank.excited[k], EXCITED_DB + rng.uniform(-1.5, 1.5))
            lines.append(EXCITED[k])
            end = max(end, at)
            at += rng.uniform(0.1, 0.6)
            j += 1
        moments.append({"index": i + 1, "event": round(event, 2), "start": round(start, 2), "end": round(end, 2),
                        "kind": kind, "lines": lines})
        busy.append((start - 1, end + 2))

    def clear(t0: float, t1: float, pad: float = 0.0) -> bool:
        return all(t1 + pad <= a or t0 - pad >= b for a, b in busy)

    # louder-than-average events that are not planted: a bigger explosion every ~20 minutes
    # (no excited speech around it), small bursts every minute or two
    distractors = []
    for _ in range(max(1, round(minutes / 20))):
        for _try in range(200):
            t = float(rng.uniform(60, total - 60))
            if clear(t, t + 2, 90) and all(abs(t - d["time"]) > 60 for d in distractors):
                add(t, bank.medium[int(rng.integers(4))], MEDIUM_DB + rng.uniform(-1, 1), rng.uniform(-0.5, 0.5))
                distractors.append({"time": round(t, 2), "kind": "explosion"})
                break
    t = float(rng.uniform(20, 80))
    while t < total - 5:
        if clear(t, t + 2, 20):
            if rng.random() < 0.5:
                add(t, bank.small[int(rng.integers(6))], SMALL_DB + rng.uniform(-2, 2), rng.uniform(-0.6, 0.6))
            else:
                at = t
                for _ in range(int(rng.integers(3, 7))):
                    add(at, bank.shots[int(rng.integers(8))], SMALL_DB - 1 + rng.uniform(-2, 1), rng.uniform(-0.6, 0.6))
                    at += rng.uniform(0.1, 0.3)
            distractors.append({"time": round(t, 2), "kind": "burst"})
        t += float(rng.uniform(40, 140))

    # game sound: distant gunfire, footsteps, UI blips
    t = 5.0
    while t < total - 5:
        for _ in range(int(rng.integers(1, 5))):
            add(t, bank.shots[int(rng.integers(8))], SHOT_DB + rng.uniform(-5, 0), rng.uniform(-0.8, 0.8))
            t += rng.uniform(0.15, 0.6)
        t += float(rng.exponential(25))
    t = 3.0
    while t < total - 20:
        length = rng.uniform(3, 13)
        steps = bank.steps[int(rng.integers(4))]
        add(t, steps[: int(length * SR)], STEP_DB + rng.uniform(-3, 2), rng.uniform(-0.3, 0.3))
        t += length + float(rng.uniform(5, 40))
    t = 10.0
    while t < total - 5:
        add(t, bank.blips[int(rng.integers(4))], BLIP_DB + rng.uniform(-3, 0), rng.uniform(-0.4, 0.4))
        t += float(rng.exponential(45))

    # the streamer: talking stretches (calm sentences, varied gaps and volume) and quiet ones
    t = 2.0
    said = 0
    while t < total - 6:
        if rng.random() < 0.72:
            stretch_end = t + rng.uniform(20, 150)
            level = CALM_DB + rng.normal(0, 2)
            while t < min(stretch_end, total - 6):
                k = int(rng.integers(len(CALM)))
                speech = bank.calm[k]
                dur = len(speech) / SR
                if not clear(t, t + dur, 0.5):
                    t = max(b for a, b in busy if not (t + dur + 0.5 <= a or t - 0.5 >= b)) + rng.uniform(0.5, 3)
                    continue
                louder = 5.0 if rng.random() < 0.04 else 0.0  # now and then a sentence said louder
                t = add(t, speech, level + louder + rng.normal(0, 1)) + min(0.3 + rng.exponential(1.2), 6.0)
                said += 1
        else:
            t += rng.uniform(5, 45)

    # music: loops that come and go
    segments = []
    t = float(rng.uniform(0, 60))
    while t < total:
        length = rng.uniform(120, 420)
        segments.append((int(t * SR), int(min(t + length, total) * SR), int(rng.integers(len(bank.tracks)))))
        t += length + rng.uniform(20, 120)

    sounds.sort(key=lambda s: s.start)
    info = {"minutes": minutes, "seed": seed, "planted": moments, "distractors": distractors,
            "sentences": said, "sounds": len(sounds)}
    return sounds, segments, info


def mix(total: int, sounds: list[Sound], segments: list[tuple[int, int, int]], bank: Bank) -> Iterator[np.ndarray]:
    """Yield the recording's audio, CHUNK samples at a time, as (n, 2) float32."""
    nxt, active = 0, []
    fade = int(2.0 * SR)
    for c0 in range(0, total, CHUNK):
        c1 = min(c0 + CHUNK, total)
        n = c1 - c0
        idx = np.arange(c0, c1)
        wl = len(bank.wind)
        lfo = 0.7 + 0.3 * np.sin(2 * np.pi * idx / SR / 23.0)
        out = bank.wind[idx % wl] * (_db(WIND_DB) * lfo)[:, None]
        for s0, s1, k in segments:
            if s1 <= c0 or s0 >= c1:
                continue
            a, b = max(s0, c0), min(s1, c1)
            pos = np.arange(a, b)
            env = np.minimum(1.0, np.minimum(pos - s0, s1 - pos) / fade)
            track = bank.tracks[k]
            out[a - c0:b - c0] += track[(pos - s0) % len(track)] * (_db(MUSIC_DB) * env)[:, None]
        while nxt < len(sounds) and sounds[nxt].start < c1:
            active.append(sounds[nxt])
            nxt += 1
        still = []
        for s in active:
            a, b = max(s.start, c0), min(s.end, c1)
            if b > a:
                part = s.data[a - s.start:b - s.start]
                if part.ndim == 1:
                    left, right = s.gain * min(1.0, 1 - s.pan), s.gain * min(1.0, 1 + s.pan)
                    out[a - c0:b - c0, 0] += part * left
                    out[a - c0:b - c0, 1] += part * right
                else:
                    out[a - c0:b - c0] += part * s.gain
            if s.end > c1:
                still.append(s)
        active = still
        over = np.abs(out) > 0.8  # a soft limiter: from -2 dBFS up, never above -1 dBFS
        out[over] = np.sign(out[over]) * (0.8 + 0.1 * np.tanh((np.abs(out[over]) - 0.8) / 0.1))
        assert len(out) == n
        yield out.astype(np.float32)


def timeline(minutes: int, seed: int, moments: list[dict], scenes: int) -> tuple[list[tuple[int, int, int]],
                                                                                list[int]]:
    """The video as pieces (scene, inpoint, outpoint) of the scene files, on keyframes (even
    seconds), each 20 s to a whole scene long and followed by another scene: a scene change
    every ~1.5 minutes, at irregular times, never within 8 s of a planted moment (a highlight
    is not cut off by a loading screen). Also the times of the scene changes."""
    rng = np.random.default_rng([seed, 3])
    keep_out = [(m["start"] - 8, m["end"] + 8) for m in moments]
    total = minutes * 60
    pieces, changes = [], []
    t, scene = 0, int(rng.integers(scenes))
    while t < total:
        offset = 2 * int(rng.integers(0, 16))
        end = t + min(2 * int(rng.integers(20, 76)), SCENE_SECONDS - offset)
        for a, b in keep_out:
            if a < end < b:
                before, after = 2 * math.floor(a / 2), 2 * math.ceil(b / 2)
                if before - t >= 20:
                    end = before
                else:
                    offset, end = 0, after
        pieces.append((scene, offset, offset + end - t))
        t = end
        if t < total:
            changes.append(t)
        scene = (scene + int(rng.integers(1, scenes))) % scenes
    return pieces, changes


# ---------------------------------------------------------------------------------------------

def key(minutes: int, seed: int, planted: int) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps([minutes, seed, planted, SR]).encode())
    return h.hexdigest()[:10]


def source(minutes: int = 180, seed: int = 14, planted: int | None = None, log: Callable[[str], None] = print
           ) -> tuple[Path, dict]:
    """(the recording, moments.json's content), generated once per parameters and this file."""
    planted = planted or default_planted(minutes)
    prefix = f"{minutes}min-seed{seed}-p{planted}-"
    folder = CACHE / (prefix + key(minutes, seed, planted))
    video, meta = folder / "vod.mkv", folder / "moments.json"
    if video.exists() and meta.exists():
        info = json.loads(meta.read_text())
        log(f"source: {video} (cached; generated in {info['generation_s']:.0f} s)")
        return video, info
    for old in CACHE.glob(prefix + "*"):  # an older version of the same source: multi-GB, drop it
        shutil.rmtree(old, ignore_errors=True)
    work = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    files = scene_files()
    t_scenes = time.perf_counter() - started
    rng = np.random.default_rng([seed, 0])
    bank = Bank(rng)
    sounds, segments, info = plan(minutes, seed, planted, bank)
    total = minutes * 60 * SR
    audio = work / "audio.m4a"
    enc = subprocess.Popen([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(SR),
                            "-ac", "2", "-i", "pipe:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "160k",
                            str(audio)],
                           stdin=subprocess.PIPE)
    assert enc.stdin is not None
    t_audio = time.perf_counter()
    try:
        for chunk in mix(total, sounds, segments, bank):
            enc.stdin.write(chunk.tobytes())
    finally:
        enc.stdin.close()
        if enc.wait() != 0:
            raise RuntimeError(f"ffmpeg (audio) failed: {enc.returncode}")
    t_audio = time.perf_counter() - t_audio
    pieces, cuts = timeline(minutes, seed, info["planted"], len(files))
    info["scene_changes"] = cuts
    listing = work / "scenes.txt"
    listing.write_text("".join(f"file '{files[k]}'\ninpoint {a}\noutpoint {b}\n" for k, a, b in pieces))
    t_mux = time.perf_counter()
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
                    "-t", str(minutes * 60), "-metadata", "title=Stream recording", str(work / "vod.mkv")],
                   check=True)
    t_mux = time.perf_counter() - t_mux
    audio.unlink()
    listing.unlink()
    info.update({"generation_s": round(time.perf_counter() - started, 1), "scenes_s": round(t_scenes, 1),
                 "tts_s": round(bank.tts_seconds, 1), "audio_s": round(t_audio, 1), "mux_s": round(t_mux, 1),
                 "bytes": (work / "vod.mkv").stat().st_size, "key": folder.name})
    (work / "moments.json").write_text(json.dumps(info, indent=1))
    os.replace(work, folder)
    log(f"source: generated {minutes} min in {info['generation_s']:.0f} s (scenes {t_scenes:.0f} s, "
        f"speech {bank.tts_seconds:.0f} s, audio {t_audio:.0f} s, mux {t_mux:.0f} s), "
        f"{info['bytes'] / 1e9:.2f} GB: {video}")
    return video, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=180)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    path, info = source(args.minutes, args.seed)
    for m in info["planted"]:
        print(f"  planted {m['index']:2d}: {m['event']:8.1f} s  ({m['start']:.1f}-{m['end']:.1f}, {m['kind']}): "
              f"{' / '.join(m['lines'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
