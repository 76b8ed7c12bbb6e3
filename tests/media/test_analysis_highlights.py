"""Analysis of real clips, and highlight choice (also on generated analyses, property-based)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afx.media.analysis import Analysis, analyse, silences
from afx.media.highlights import MIN_SHOT, select, shots
from afx.media.probe import probe


def test_story_clip_analysis_finds_the_action(media):
    info = probe(media["story"])
    a = analyse(media["story"], info.duration, info.has_audio)
    assert len(a.energy_db) == 48
    loud = [db for i, db in enumerate(a.energy_db) if 8 <= i * 0.5 < 14]
    quiet = [db for i, db in enumerate(a.energy_db) if i * 0.5 < 7.5 or i * 0.5 >= 14.5]
    assert min(loud[1:]) > max(quiet) + 10
    assert any(7.5 <= c <= 8.6 for c in a.cuts) and any(13.5 <= c <= 14.6 for c in a.cuts), a.cuts
    moving = [m for t, m in zip(a.keyframes, a.motion) if 9 <= t < 14]
    still = [m for t, m in zip(a.keyframes, a.motion) if t < 7 or t > 16]
    assert min(moving) > max(still)
    assert a.silences and a.silences[0][0] == 0.0


def test_silent_clip_has_floor_energy(media):
    info = probe(media["silent"])
    a = analyse(media["silent"], info.duration, info.has_audio)
    assert set(a.energy_db) == {-90.0} and a.facecam is None


def test_highlight_choice_prefers_the_loud_moving_part(media):
    info = probe(media["story"])
    a = analyse(media["story"], info.duration, info.has_audio)
    segs = select([a], 6.0)
    assert abs(sum(s.duration for s in segs) - 6.0) < 0.5
    covered = sum(max(0.0, min(s.end, 14) - max(s.start, 8)) for s in segs)
    assert covered >= 4.5, segs


def _analysis(duration: float, loud: tuple[float, float] | None = None, cuts=(), seed_db=-30.0) -> Analysis:
    n = int(duration / 0.5)
    energy = [seed_db] * n
    if loud:
        for i in range(n):
            if loud[0] <= i * 0.5 < loud[1]:
                energy[i] = -8.0
    keys = [float(t) for t in range(int(duration))]
    motion = [0.2 if loud and loud[0] <= t < loud[1] else 0.01 for t in keys]
    return Analysis(duration=duration, energy_db=energy, keyframes=keys, motion=motion,
                    motion_x=[0.5] * len(keys), cuts=list(cuts), silences=silences(energy))


def test_source_shorter_than_the_target_is_used_whole():
    segs = select([_analysis(20.0)], 60.0)
    assert [(s.source, s.start, s.end) for s in segs] == [(0, 0.0, 20.0)]


def test_multi_clip_keeps_source_order_and_picks_from_each_loud_part():
    a, b = _analysis(60.0, loud=(40, 50)), _analysis(60.0, loud=(5, 15))
    segs = select([a, b], 20.0)
    assert [s.source for s in segs] == sorted(s.source for s in segs)
    def covered(source: int, lo: float, hi: float) -> float:
        return sum(max(0.0, min(s.end, hi) - max(s.start, lo)) for s in segs if s.source == source)

    assert covered(0, 40, 50) >= 5 and covered(1, 5, 15) >= 5, segs


@settings(max_examples=150, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=2.0, max_value=400.0), min_size=1, max_size=4),
    target=st.floats(min_value=3.0, max_value=120.0),
    cut_seed=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=12),
    loud_at=st.floats(min_value=0.0, max_value=0.9),
)
def test_selection_properties(durations, target, cut_seed, loud_at):
    analyses = []
    for d in durations:
        cuts = sorted(round(c * d, 2) for c in cut_seed)
        analyses.append(_analysis(d, loud=(loud_at * d, loud_at * d + 5), cuts=cuts))
    segs = select(analyses, target, fps=30)
    total = sum(s.duration for s in segs)
    available = sum(a.duration for a in analyses)
    assert total <= target + 0.05
    assert total >= min(target, available) - 0.55  # fills the target (or uses everything)
    keys = [(s.source, s.start) for s in segs]
    assert keys == sorted(keys)  # chronological, sources in order
    for s in segs:
        assert 0 <= s.start < s.end <= analyses[s.source].duration + 1 / 30
        assert abs(s.start * 30 - round(s.start * 30)) < 1e-4 and abs(s.end * 30 - round(s.end * 30)) < 1e-4
    for x, y in zip(segs, segs[1:]):
        assert x.source < y.source or x.end <= y.start + 1e-9  # no overlaps


def test_shots_never_shorter_than_min_shot_except_a_tiny_source():
    a = _analysis(30.0, cuts=[0.4, 0.9, 1.2, 10.0, 10.5, 29.6])
    lengths = [e - s for s, e in shots(a)]
    assert all(length >= MIN_SHOT - 1e-9 for length in lengths), lengths
    assert abs(sum(lengths) - 30.0) < 1e-6


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "media"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/media is not beside this checkout")
def test_facecam_is_a_small_face_that_stays_in_a_corner():
    # A real face (the vlog's presenter, shrunk to a streamer's camera) over a game-like picture.
    import av
    import numpy as np

    from afx.media import analysis

    with av.open(str(SHARED / "talking_head_vlog_with_broll_720p.mov")) as c:
        face = next(f for i, f in enumerate(c.decode(video=0)) if i == 30).reformat(
            width=160, height=90, format="gray").to_ndarray()
    rng = np.random.default_rng(1)

    def frames(where):
        out = []
        for t in range(20):
            image = rng.integers(40, 200, (270, 480), dtype=np.uint8)
            if where is not None:
                x, y = where
                image[y:y + 90, x:x + 160] = face
            out.append((float(t), image))
        return out

    corner = analysis.find_facecam(frames((8, 8)))
    assert corner is not None
    x, y, w, h = corner
    assert x <= 60 / 480 and y <= 30 / 270 and 0.1 < w <= 0.45 and 0 < h <= 0.5
    assert analysis.find_facecam(frames((160, 90))) is None, "a face in the middle is the game's, not a camera"
    assert analysis.find_facecam(frames(None)) is None

