"""How `afx push` shows the pusher's events and outcome (afx/cli/commands/push.py)."""

from __future__ import annotations

import io

from afx.cli.commands.push import Show, report
from afx.cli.env import Environment
from afx.remote import events as ev
from afx.remote.push import Outcome


def env(*, color_mode: str = "never", json: bool = False, verbosity: int = 0) -> tuple[Environment, io.StringIO,
                                                                                      io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Environment(stdout=out, stderr=err, stdout_isatty=False, stderr_isatty=False, environ={},
                       color_mode=color_mode, json=json, verbosity=verbosity), out, err


def test_events_become_lines_and_a_poll_that_changes_nothing_is_quiet() -> None:
    e, out, err = env()
    show = Show(e)
    for event in [ev.NotSent("a", ("script", "copy"), False), ev.Converted("a", "media/x.mkv", "remuxed into MP4"),
                  ev.Uploading("a", "media/x.mkv", 3 * 1024 * 1024 + 1),
                  ev.Uploaded("a", "media/x.mkv", "file_1", True),
                  ev.Submitted("a", "job_1", "queued", True, 2, 8),
                  ev.Progress("a", "queued", "", None, 0.75),  # what Submitted showed already
                  ev.Progress("a", "running", "render", 0.5, 1.1), ev.Progress("a", "running", "render", 0.5, 1.7),
                  ev.Downloaded("a", "complete", "out/a/", ("video.mp4", "result.json"), False),
                  ev.Found("b", "job_2", "running", ""), ev.Progress("b", "running", "", None, 1),
                  ev.Waiting("c", "1 job(s) queued or running"), ev.Waiting("c", "again"),
                  ev.Resubmitting("d", "job_3", ""), ev.Resubmitting("d", "job_3", "cancelled"),
                  ev.Submitted("d", "job_4", "queued", False, 1, 7), ev.Scheduled("d", "2030-01-01T00:00:00Z"),
                  ev.FileUnknown("e", "file_9"), ev.NotSubmitted("e", "POST /v1/jobs: 402 ..."),
                  ev.Failed("f", "failed", "render: boom"), ev.Downloaded("g", "published", "out/g/", (), True)]:
        show(event)
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "a: script, copy not sent (not a POST /jobs field)",
        "a: media/x.mkv: remuxed into MP4",
        "a: uploading media/x.mkv (3.0 MB)",
        "a: uploaded media/x.mkv as file_1 (the server had it already)",
        "a: submitted as job_1 (2 credits, balance 8)",
        "a: running (render 50%)",
        "a: complete -> out/a/ (video.mp4, result.json)",
        "b: job_2: running (submitted before)",
        "c: waiting for a free slot (1 job(s) queued or running)",
        "d: job_3 is gone from the server; submitting again",
        "d: job_3 cancelled; submitting again",
        "d: already submitted as job_4",
        "d: publishes at 2030-01-01T00:00:00Z",
        "e: the server does not know file_9; uploading again",
        "e: error: POST /v1/jobs: 402 ...",
        "f: failed: render: boom",
        "g: published; out/g/ is up to date",
    ]


def test_colour_and_quiet_come_from_the_environment() -> None:
    e, _, err = env(color_mode="always")
    Show(e)(ev.Failed("f", "cancelled", "cancelled"))
    assert err.getvalue() == "\x1b[1mf\x1b[0m: \x1b[31mcancelled: cancelled\x1b[0m\n"
    e, _, err = env(verbosity=-1)
    Show(e)(ev.Submitted("a", "job_1", "queued", True, None, None))
    assert err.getvalue() == ""


def test_an_empty_push_reports_none() -> None:
    e, out, err = env(json=True)
    assert report(e, "https://h/v1", Outcome([]), lambda: 0.31) == 0
    assert out.getvalue() == '{\n  "api": "https://h/v1",\n  "ok": true,\n  "jobs": []\n}\n'
    assert err.getvalue() == "0 jobs on https://h/v1: none (0 submitted now) in 0.3s\n"
