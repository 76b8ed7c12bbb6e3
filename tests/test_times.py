"""afx/times.py: the one place times are read and written."""

import pytest

from afx import times


@pytest.mark.parametrize("text, utc", [
    ("2026-05-26T09:00:00Z", "2026-05-26T09:00:00Z"),
    ("2026-05-26t11:00:00+02:00", "2026-05-26T09:00:00Z"),
    (" 2026-05-26T09:00:00.75z ", "2026-05-26T09:00:00Z"),
    ("2026-05-25T23:30:00-10:00", "2026-05-26T09:30:00Z"),
])
def test_a_typed_time_becomes_utc_to_the_second(text, utc):
    assert times.rfc3339(text) == utc


@pytest.mark.parametrize("text, why", [
    ("2026-05-26T09:00:00", "needs a UTC offset"),
    ("2026-13-01T00:00:00Z", "is not an RFC 3339 time"),
    ("tomorrow", "is not an RFC 3339 time"),
    ("1969-12-31T23:59:59Z", "between 1970 and 9999"),
])
def test_a_bad_time_says_why(text, why):
    with pytest.raises(times.BadTime, match=why):
        times.rfc3339(text)


def test_stored_times_read_back_and_unreadable_ones_are_none():
    ts = times.timestamp("2026-05-26T09:00:00Z")
    assert times.iso(ts) == "2026-05-26T09:00:00Z"
    assert times.timestamp("2026-05-26T11:00:00+02:00") == ts
    assert times.timestamp("garbage") is None and times.timestamp(None) is None
    assert times.iso(None) is None and times.iso(0) is None


def test_a_manual_clock_moves_only_when_told_or_slept_on():
    clock = times.ManualClock(now=100.0, mono=5.0)
    clock.sleep(2.5)
    clock.advance(0.5)
    assert (clock.time(), clock.monotonic()) == (103.0, 8.0)
    clock.sleep(-1)
    assert clock.time() == 103.0
