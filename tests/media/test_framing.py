"""The auto layout's decisions and its virtual camera (issue 12, part 2), on modelled faces."""

from __future__ import annotations

from afx.media.framing import FPS, Box, camera, contains, crop_width, frame, shots

CW = crop_width(1920, 1080, 1080, 1920)  # a 16:9 source's 9:16 window: 0.316 of its width


def still(cx: float, seconds: float = 6.0, w: float = 0.08, every: float = 0.25) -> list:
    return [(i * every, [Box(cx, 0.35, w, w * 16 / 9)]) for i in range(int(seconds / every) + 1)]


def at(path: list, t: float) -> float:
    for (t0, x0), (t1, x1) in zip(path, path[1:]):
        if t0 <= t <= t1:
            return x0 + (x1 - x0) * (t - t0) / max(t1 - t0, 1e-9)
    return path[-1][1]


def per_frame_moves(path: list, seconds: float) -> list[float]:
    xs = [at(path, i / FPS) for i in range(int(seconds * FPS) + 1)]
    return [abs(b - a) for a, b in zip(xs, xs[1:])]


def test_a_single_face_off_centre_is_framed_and_the_camera_then_holds_still():
    f = frame(still(0.78), 6.0, CW)
    assert f.mode == "crop" and f.subjects == 1
    assert contains(at(f.path, 0.0), CW, Box(0.78, 0.35, 0.08, 0.14)), "framed from the first frame"
    assert max(per_frame_moves(f.path, 6.0)) == 0.0, "a still subject: a still camera"


def test_the_camera_follows_a_walk_smoothly_and_keeps_the_face_in():
    walk = [(i * 0.25, [Box(0.25 + 0.5 * i / 32, 0.4, 0.07, 0.12)]) for i in range(33)]  # 8 s, 0.25 -> 0.75
    f = frame(walk, 8.0, CW)
    moves = per_frame_moves(f.path, 8.0)
    assert max(moves) < 0.01, "under 1 % of the frame width a frame"
    inside = [contains(at(f.path, t), CW, b[0]) for t, b in walk]
    assert sum(inside) / len(inside) >= 0.9


def test_small_wobbles_inside_the_dead_zone_do_not_move_the_camera():
    wobble = [(i * 0.25, [Box(0.5 + (0.02 if i % 2 else -0.02), 0.4, 0.08, 0.14)]) for i in range(24)]
    f = frame(wobble, 6.0, CW)
    assert max(per_frame_moves(f.path, 6.0)) == 0.0


def test_scene_cuts_split_a_segment_into_shots_framed_each_on_its_own():
    assert shots(10.0, 20.0, [12.0, 12.2, 15.0, 25.0]) == [(10.0, 12.0), (12.0, 15.0), (15.0, 20.0)]
    first, second = frame(still(0.2, 3.0), 3.0, CW), frame(still(0.8, 3.0), 3.0, CW)
    assert contains(at(first.path, 2.9), CW, Box(0.2, 0.35, 0.08, 0.14))
    assert contains(at(second.path, 0.0), CW, Box(0.8, 0.35, 0.08, 0.14)), "on the new shot at once"


def test_two_people_apart_are_stacked_left_on_top():
    two = [(i * 0.5, [Box(0.25, 0.4, 0.1, 0.18), Box(0.75, 0.42, 0.1, 0.18)]) for i in range(12)]
    f = frame(two, 6.0, CW)
    assert f.mode == "stack" and f.subjects == 2
    (x1, y1, w1, h1), (x2, y2, w2, h2) = f.windows
    assert x1 <= 0.2 and x1 + w1 >= 0.3 and x2 <= 0.7 and x2 + w2 >= 0.8
    assert abs(w1 / h1 * 16 / 9 - 9 / 8) < 0.01, "each window is half a 9:16 frame (9:8)"


def test_two_people_close_together_share_one_crop():
    pair = [(i * 0.5, [Box(0.45, 0.4, 0.06, 0.1), Box(0.55, 0.4, 0.06, 0.1)]) for i in range(12)]
    f = frame(pair, 6.0, CW)
    assert f.mode == "crop" and f.subjects == 2
    c = at(f.path, 3.0)
    assert contains(c, CW, Box(0.45, 0.4, 0.06, 0.1)) and contains(c, CW, Box(0.55, 0.4, 0.06, 0.1))


def test_a_face_seen_once_is_not_a_subject_and_no_face_follows_motion():
    glimpse = [(0.0, [Box(0.9, 0.5, 0.05, 0.09)])] + [(i * 0.25, []) for i in range(1, 24)]
    f = frame(glimpse, 6.0, CW, motion=[(t, 0.3) for t in range(7)])
    assert f.subjects == 0 and f.mode == "crop" and abs(at(f.path, 3.0) - 0.3) < CW * 0.2


def test_camera_stays_inside_the_frame():
    path = camera([(0.0, 0.0), (5.0, 1.0)], 5.0, CW)
    assert all(CW / 2 - 1e-9 <= x <= 1 - CW / 2 + 1e-9 for _, x in path)
