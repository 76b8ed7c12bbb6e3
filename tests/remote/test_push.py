"""afx/remote/push.py driven by a ManualClock and an in-memory API: what it does and when,
seen through its events and the requests it makes (no network, no real waiting)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest

from afx.client import ApiError
from afx.remote import events as ev
from afx.remote.items import Item
from afx.remote.push import Outcome, Polling, Pusher
from afx.spec.select import select
from afx.times import ManualClock
from tests.conftest import SpecRepo
from tests.remote.fakeapi import FakeApi

Seen = list[tuple[float, ev.Event]]  # (the clock's monotonic time, event)


def run(repo: SpecRepo, api: FakeApi, clock: ManualClock, *, wait: bool = True, timeout: float = 3600,
        polling: Polling = Polling()) -> tuple[Outcome, Seen]:
    resolution, jobs = select((), cwd=repo.root)
    seen: Seen = []
    pusher = Pusher(api, resolution.root, wait=wait, clock=clock, polling=polling,
                    on_event=lambda e: seen.append((clock.monotonic(), e)))
    items = [Item(job) for job in jobs]
    try:
        return pusher.run(items, timeout), seen
    finally:
        pusher.save(items)


E = TypeVar("E", bound=ev.Event)


def of(seen: Seen, kind: type[E], job: str | None = None) -> list[tuple[float, E]]:
    return [(t, e) for t, e in seen if isinstance(e, kind) and (job is None or e.job == job)]


def lock(repo: SpecRepo) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo.root / "afx.lock").read_text())
    return data


def test_polls_back_off_from_half_a_second_to_ten(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Slow\n")
    clock = ManualClock()
    api = FakeApi(clock, run_for=120)
    started = time.monotonic()
    outcome, seen = run(repo, api, clock)
    assert time.monotonic() - started < 10, "the clock's time, not the machine's"
    assert [i.status for i in outcome.items] == ["complete"] and not outcome.timed_out

    posted = next(c.at for c in api.calls if c.method == "POST")
    polls = [c.at for c in api.calls if c.method == "GET"]
    gaps = [b - a for a, b in zip([posted, *polls], polls)]
    expected = [min(10.0, 0.5 * 1.5 ** n) for n in range(len(gaps))]
    assert gaps == pytest.approx(expected)
    assert gaps[0] == pytest.approx(0.5) and max(gaps) == pytest.approx(10.0)
    # Each poll that found it running said when the next one comes.
    assert [e.next_in for _, e in of(seen, ev.Progress)] == pytest.approx(expected[1:len(of(seen, ev.Progress)) + 1])
    assert all(e.stage == "render" and 0 <= (e.progress or 0) < 1 for _, e in of(seen, ev.Progress))
    [(at, done)] = of(seen, ev.Downloaded)
    assert at >= posted + 120 and done == ev.Downloaded("a", "complete", "out/a/", ("job_1.mp4", "result.json"), False)
    assert (repo.root / "out" / "a" / "job_1.mp4").read_bytes().startswith(b"VIDEO")


def test_polling_settings_are_the_callers(repo: SpecRepo) -> None:
    for name in "abcd":
        repo.write(f"{name}.yaml", f"entry: compose\ntopic: Job {name}\n")
    clock = ManualClock()
    api = FakeApi(clock, run_for=5)
    outcome, _ = run(repo, api, clock, polling=Polling(start=1, growth=2, max=4, list_at=4))
    assert {i.status for i in outcome.items} == {"complete"}
    assert not [c for c in api.calls if c.method == "GET"], "four jobs: one GET /jobs serves them all"
    posted = max(c.at for c in api.calls if c.method == "POST")
    lists = [posted] + [c.at for c in api.calls if c.method == "LIST"]
    assert [b - a for a, b in zip(lists, lists[1:])] == pytest.approx([1, 2, 4, 4][:len(lists) - 1])


def test_a_full_server_gets_the_next_job_when_one_of_ours_finishes(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: First\n")
    repo.write("b.yaml", "entry: compose\ntopic: Second\n")
    clock = ManualClock()
    api = FakeApi(clock, run_for=30, max_active=1)
    outcome, seen = run(repo, api, clock)
    assert [(i.name, i.status, i.new) for i in outcome.items] == [("a", "complete", True), ("b", "complete", True)]

    [(_, waiting)] = of(seen, ev.Waiting, "b")
    assert waiting == ev.Waiting("b", "1 job(s) queued or running")
    [(a_done, _)] = of(seen, ev.Downloaded, "a")
    [(b_submitted, submitted)] = of(seen, ev.Submitted, "b")
    assert b_submitted == a_done and submitted.new, "b goes the moment a's slot is free"
    # Meanwhile b asked again with a backoff of its own, each time under a new form of its key
    # (the server stores a refusal under the key it was given).
    asks = [c for c in api.calls if c.method == "POST" and c.what.startswith(outcome.items[1].request)]
    gaps = [b.at - a.at for a, b in zip(asks, asks[1:-1])]
    assert gaps[:4] == pytest.approx([0.5, 0.5, 0.75, 1.125]) and max(gaps) <= 10
    assert [c.what for c in asks] == [outcome.items[1].request] + [f"{outcome.items[1].request}.{n}"
                                                                    for n in range(1, len(asks))]


def test_the_timeout_is_measured_on_the_injected_clock(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Forever\n")
    clock = ManualClock()
    api = FakeApi(clock, run_for=10_000)
    started, real = clock.monotonic(), time.monotonic()
    outcome, _ = run(repo, api, clock, timeout=30)
    assert outcome.timed_out == "timed out after 30s waiting for a"
    assert 30 <= clock.monotonic() - started < 30.1
    assert time.monotonic() - real < 10
    [item] = outcome.items
    assert item.error == "timed out after 30s (running)" and item in outcome.errors
    assert lock(repo)["jobs"]["a"]["remote"][api.api]["status"] == "running"


def test_a_second_push_waits_for_the_job_the_first_made(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Once\n")
    clock = ManualClock()
    api = FakeApi(clock, run_for=20)
    first, _ = run(repo, api, clock, wait=False)
    [item] = first.items
    assert item.status == "queued" and item.submitted == "2026-05-28T20:26:40Z"  # the clock's wall time
    record = lock(repo)["jobs"]["a"]["remote"][api.api]
    assert record == {"jobId": "job_1", "spec": item.job.digest, "status": "queued",
                      "submitted": "2026-05-28T20:26:40Z", "request": item.request}

    clock.advance(5)
    second, seen = run(repo, api, clock)
    assert [c.method for c in api.calls].count("POST") == 1, "nothing submitted again"
    assert [e for _, e in seen][:1] == [ev.Found("a", "job_1", "running", "2026-05-28T20:26:40Z")]
    assert second.items[0].status == "complete" and second.items[0].new is False

    third, seen = run(repo, api, clock)
    assert [e for _, e in seen] == [ev.Found("a", "job_1", "complete", "2026-05-28T20:26:40Z"),
                                    ev.Downloaded("a", "complete", "out/a/", ("job_1.mp4", "result.json"), True)]
    assert set(lock(repo)["jobs"]["a"]["remote"][api.api]["files"]) == {"job_1.mp4", "result.json"}


def test_a_refusal_stored_under_a_key_moves_on_to_its_next_form(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Was broke\n")
    clock = ManualClock()
    api = FakeApi(clock)
    resolution, [job] = select((), cwd=repo.root)
    probe = Item(job)
    probe.set_body(job.to_api_body(None, extensions=True))
    api.keys[probe.request] = ApiError("POST /v1/jobs: 402 insufficient_credits", status=402,
                                       code="insufficient_credits")
    outcome, seen = run(repo, api, clock, wait=False)
    assert [c.what for c in api.calls if c.method == "POST"] == [probe.request, probe.request + ".1"]
    assert outcome.items[0].key == probe.request + ".1" and outcome.items[0].job_id == "job_1"
    assert of(seen, ev.Submitted)[0][1].new is True


def test_errors_for_one_job_and_errors_for_all(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Fine\n")
    repo.write("b.yaml", "entry: compose\ntopic: Doomed\n")
    clock = ManualClock()
    api = FakeApi(clock, fail=frozenset({"Doomed"}))
    outcome, seen = run(repo, api, clock)
    assert [i.status for i in outcome.items] == ["complete", "failed"] and outcome.failed == [outcome.items[1]]
    assert [e for _, e in of(seen, ev.Failed)] == [ev.Failed("b", "failed", "render: failed on purpose")]

    def refuse(body: object, idempotency_key: str | None = None) -> dict[str, Any]:
        raise ApiError("POST /v1/jobs: 403 forbidden", status=403, code="forbidden")

    api.submit_job = refuse  # type: ignore[method-assign]
    repo.write("c.yaml", "entry: compose\ntopic: New\n")
    with pytest.raises(ApiError, match="403"):
        run(repo, api, clock)

    def unprocessable(body: object, idempotency_key: str | None = None) -> dict[str, Any]:
        raise ApiError("POST /v1/jobs: 422 invalid_request: topic", status=422, code="invalid_request")

    api.submit_job = unprocessable  # type: ignore[method-assign]
    outcome, seen = run(repo, api, clock)  # b failed remotely, so it is submitted again
    assert [(i.name, i.status) for i in outcome.items] == [("a", "complete"), ("b", "error"), ("c", "error")]
    assert [e for _, e in of(seen, ev.Resubmitting)] == [ev.Resubmitting("b", "job_2", "failed")]
    assert outcome.errors == outcome.items[1:] and outcome.items[2].error.startswith("POST /v1/jobs: 422")
    assert [e for _, e in of(seen, ev.NotSubmitted)] == [
        ev.NotSubmitted(name, "POST /v1/jobs: 422 invalid_request: topic") for name in "bc"]


def test_a_remembered_file_the_server_does_not_know_is_uploaded_again(repo: SpecRepo, tmp_path: Path) -> None:
    from tests.mediafix import plain_clip

    plain_clip(tmp_path / "clip.mp4", seconds=1, size="160x120", audio=False)
    repo.write("media/clip.mp4", (tmp_path / "clip.mp4").read_bytes())
    repo.write("a.yaml", "entry: upload\nfile: media/clip.mp4\ntopic: Clip\nplatforms: [youtube]\n")
    clock = ManualClock()
    api = FakeApi(clock)
    run(repo, api, clock, wait=False)
    [sha] = lock(repo)["remote"][api.api]["uploads"]
    assert lock(repo)["remote"][api.api]["uploads"][sha] == "file_1"

    other = FakeApi(clock)  # the same URL, its data wiped: file_1 and job_1 are unknown
    other.files = {}
    (repo.root / "afx.lock").write_text(json.dumps({**lock(repo), "jobs": {}}))
    outcome, seen = run(repo, other, clock, wait=False)
    assert [type(e) for _, e in seen] == [ev.FileUnknown, ev.Uploading, ev.Uploaded, ev.Submitted]
    assert seen[0][1] == ev.FileUnknown("a", "file_1")
    assert lock(repo)["remote"][api.api]["uploads"] == {sha: "file_1"} and other.files
    assert outcome.items[0].job_id == "job_1"


def test_no_wait_leaves_the_jobs_a_full_server_refused(repo: SpecRepo) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: First\n")
    repo.write("b.yaml", "entry: compose\ntopic: Second\n")
    clock = ManualClock()
    outcome, _ = run(repo, FakeApi(clock, run_for=30, max_active=1), clock, wait=False)
    assert [i.status for i in outcome.items] == ["queued", "error"]
    assert outcome.items[1].error.startswith("not submitted: the server's limit")
    assert "b" not in lock(repo)["jobs"]


def test_the_pusher_never_prints(repo: SpecRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.yaml", "entry: compose\ntopic: Quiet\n")
    clock = ManualClock()
    run(repo, FakeApi(clock), clock)
    assert capsys.readouterr() == ("", "")
    assert Path(repo.root / "out" / "a" / "result.json").is_file()
