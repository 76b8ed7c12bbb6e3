"""A job with clips fans out into clip jobs once its clips stage has run (issue 14), through
`afx run/plan/status/jobs` with the cheap test pipeline (its Moments stage gives an hour-long
source's moments from the source's content, so the same source always has the same ones)."""

from __future__ import annotations

import json
import shutil

CLIP_STAGES = ["edit", "script", "render", "package", "publish"]


def _vod(repo, count=5, extra=""):
    repo.write("vod.yaml", f"entry: upload\nfile: media/b.mp4\ntopic: Stream night\nplatforms: [tiktok]\n"
                           f"clips: {{count: {count}{extra}}}\n")
    (repo.root / "a.yaml").unlink(missing_ok=True)
    (repo.root / "b.yaml").unlink(missing_ok=True)


def _clips(repo):
    return json.loads((repo.root / "out" / "vod" / "clips.json").read_text())


def test_plan_promises_the_clips_then_runs_them_as_jobs(erepo):
    _vod(erepo)
    r = erepo.afx("plan")
    assert r.code == 0 and "vod: 5 clips, after analysis" in r.out, r.text
    data = json.loads(erepo.afx("plan", "--json").out)
    assert [j["job"] for j in data["jobs"]] == ["vod"] and data["jobs"][0]["clips"] == "5 clips, after analysis"
    assert [s["stage"] for s in data["jobs"][0]["stages"]] == ["ingest", "analyze", "moments", "clips"]
    r = erepo.afx("run")
    assert r.code == 0, r.text
    names = [f"vod-{k:02d}" for k in range(1, 6)]
    runs = erepo.runs()
    assert {s for (j, s) in runs if j == "vod"} == {"ingest", "analyze", "moments", "clips"}
    for name in names:  # full jobs, reusing the parent's ingest and analysis (the same keys)
        assert {s for (j, s) in runs if j == name} == set(CLIP_STAGES)
        result = json.loads((erepo.root / "out" / name / "result.json").read_text())
        assert result["jobId"] == name and result["status"] == "complete"
    clips = _clips(erepo)
    assert [c["name"] for c in clips["clips"]] == names
    assert [c["rank"] for c in clips["clips"]] == [1, 2, 3, 4, 5]
    scores = [c["score"] for c in clips["clips"]]
    assert scores == sorted(scores, reverse=True)  # rank order is score order
    lock = json.loads((erepo.root / "afx.lock").read_text())["jobs"]
    assert lock["vod"]["clips"] == names and all(n in lock for n in names)
    assert set(lock["vod"]["stages"]) == {"ingest", "analyze", "moments", "clips"}
    # Each clip job's cut is its clip, pinned.
    seg = json.loads((erepo.root / "out" / "vod-02" / "result.json").read_text())
    assert seg["jobId"] == "vod-02"
    status = erepo.afx("status")
    assert "5 clips (vod-01 … vod-05)" in status.out and "vod-03" in status.out and "0 of 6 jobs stale" in status.err


def test_every_candidate_is_explained(erepo):
    _vod(erepo, 3)
    assert erepo.afx("run").code == 0
    clips = _clips(erepo)
    taken = {c["name"] for c in clips["clips"]}
    assert all(c["why"] and c["signals"] for c in clips["clips"])
    assert len(clips["candidates"]) >= 12
    for cand in clips["candidates"]:
        assert {"start", "end", "score", "signals", "why", "taken"} <= set(cand)
        if cand["taken"]:
            assert cand["taken"] in taken
        else:
            assert cand["why"].startswith("not taken: ")
    assert {c["taken"] for c in clips["candidates"] if c["taken"]} == taken


def test_raising_count_runs_only_the_new_clips(erepo):
    _vod(erepo, 5)
    assert erepo.afx("run").code == 0
    first = _clips(erepo)["clips"]
    erepo.runs()
    _vod(erepo, 8)
    r = erepo.afx("run")
    assert r.code == 0, r.text
    runs = erepo.runs()
    assert {(j, s) for (j, s) in runs if j == "vod"} == {("vod", "clips")}  # moments reused: same pool
    assert not [j for (j, s) in runs if j in {f"vod-{k:02d}" for k in range(1, 6)}], runs
    for k in range(6, 9):
        assert {s for (j, s) in runs if j == f"vod-{k:02d}"} == set(CLIP_STAGES)
    assert _clips(erepo)["clips"][:5] == first  # the first five unchanged, names and cuts
    # Lowering it again: the surplus clip jobs leave afx.lock (a full run prunes).
    _vod(erepo, 3)
    assert erepo.afx("run").code == 0
    lock = json.loads((erepo.root / "afx.lock").read_text())["jobs"]
    assert sorted(lock) == ["vod", "vod-01", "vod-02", "vod-03"]
    assert not [j for (j, s) in erepo.runs() if j in ("vod-01", "vod-02", "vod-03")]


def test_same_source_same_clips_and_names_from_scratch(erepo):
    _vod(erepo, 4, ", minGap: 30")
    assert erepo.afx("run").code == 0
    before = _clips(erepo)
    shutil.rmtree(erepo.root / ".afx")
    shutil.rmtree(erepo.root / "out")
    assert erepo.afx("run").code == 0
    assert _clips(erepo) == before
    starts = sorted((c["start"], c["end"]) for c in before["clips"])
    assert all(b[0] >= a[1] + 30 for a, b in zip(starts, starts[1:]))  # minGap held


def test_a_clip_job_can_be_named_and_run_alone(erepo):
    _vod(erepo, 3)
    r = erepo.afx("plan", "vod-02")
    assert r.code == 2 and "no clip job named 'vod-02'" in r.err and "afx run vod" in r.err
    assert erepo.afx("run").code == 0
    erepo.runs()
    r = erepo.afx("run", "vod-02", "--force", "render")
    assert r.code == 0, r.text
    assert {j for (j, s) in erepo.runs()} == {"vod-02"}
    r = erepo.afx("plan", "vod-09")
    assert r.code == 2 and "vod has 3 clip jobs: vod-01, vod-02, vod-03" in r.err
    rows = json.loads(erepo.afx("jobs", "--json").out)["jobs"]
    assert rows[0]["job"] == "vod" and rows[0]["clips"] == ["vod-01", "vod-02", "vod-03"]
    assert rows[0]["platforms"] == {}
    assert [r["parent"] for r in rows[1:]] == ["vod"] * 3


def test_a_clip_name_taken_by_another_job_fails_the_parent(erepo):
    _vod(erepo, 3)
    erepo.write("other.yaml", "name: vod-02\nentry: compose\ntopic: Other\n")
    r = erepo.afx("run")
    assert r.code == 3
    assert "the clip job 'vod-02' would have the name of the job in other.yaml" in r.err
    assert not (erepo.root / "out" / "vod-01").exists()


def test_until_stops_the_clip_jobs_too(erepo):
    _vod(erepo, 2)
    assert erepo.afx("run", "--until", "edit").code == 0
    runs = erepo.runs()
    assert {s for (j, s) in runs if j == "vod-01"} == {"edit"}
    assert not (erepo.root / "out" / "vod-01" / "result.json").exists()


def test_report_shows_the_clips_and_why(erepo):
    _vod(erepo, 2)
    assert erepo.afx("run").code == 0
    assert erepo.afx("report").code == 0
    page = (erepo.root / "out" / "report.html").read_text()
    assert '<section class="job clips" id="vod">' in page and "2 clips of 2 asked for" in page
    assert '<a href="#vod-01">vod-01</a>' in page and '<section class="job" id="vod-02">' in page
    assert "moments not taken" in page and "not taken: scored below the 2 clips asked for" in page


def test_json_events_announce_the_clip_jobs(erepo):
    _vod(erepo, 2)
    r = erepo.afx("run", "--json")
    assert r.code == 0, r.text
    events = [json.loads(line) for line in r.out.splitlines()]
    fan = [e for e in events if e["event"] == "fanout"]
    assert [(e["job"], e["jobs"]) for e in fan] == [("vod", ["vod-01", "vod-02"])]
    done = [e["job"] for e in events if e["event"] == "job"]
    assert done == ["vod", "vod-01", "vod-02"]
    assert events.index(fan[0]) < min(i for i, e in enumerate(events) if e.get("job") == "vod-01")


def test_a_failure_elsewhere_keeps_the_clip_jobs_in_afx_lock(erepo, monkeypatch):
    _vod(erepo, 3)
    erepo.write("zz.yaml", "entry: compose\ntopic: Other\n")
    assert erepo.afx("run").code == 0
    erepo.write("zz.yaml", "entry: compose\ntopic: Other, changed\n")
    monkeypatch.setenv("AFX_TEST_FAIL", "script:zz")
    r = erepo.afx("run")
    assert r.code == 3 and "skipped" in r.err
    lock = json.loads((erepo.root / "afx.lock").read_text())["jobs"]
    assert sorted(lock) == ["vod", "vod-01", "vod-02", "vod-03", "zz"]  # none retired


def test_a_name_collision_keeps_the_clip_jobs_it_had(erepo):
    _vod(erepo, 3)
    assert erepo.afx("run").code == 0
    erepo.write("vod-02.yaml", "entry: compose\ntopic: Other\n")
    assert erepo.afx("run").code == 3
    lock = json.loads((erepo.root / "afx.lock").read_text())["jobs"]
    assert {"vod-01", "vod-03"} <= set(lock) and lock["vod"]["clips"] == ["vod-01", "vod-02", "vod-03"]


def test_clips_json_follows_the_settings_even_when_the_moments_do_not_change(erepo):
    _vod(erepo, 2)
    assert erepo.afx("run").code == 0
    _vod(erepo, 2, ", keywords: [clutch]")
    assert erepo.afx("run").code == 0
    assert _clips(erepo)["settings"]["keywords"] == ["clutch"]


def test_force_runs_a_shared_stage_once_not_once_per_clip(erepo):
    _vod(erepo, 2)
    assert erepo.afx("run").code == 0
    erepo.runs()
    assert erepo.afx("run", "--force", "analyze").code == 0
    assert [j for (j, s) in erepo.runs() if s == "analyze"] == ["vod"]
    assert erepo.afx("run", "--force").code == 0
    runs = erepo.runs()
    assert {s for (j, s) in runs if j == "vod-01"} == set(CLIP_STAGES)  # its own stages, forced
    assert [j for (j, s) in runs if s == "ingest"] == ["vod"]
