"""One real job through afx serve: the real pipeline (voice, render, package, publish to the
outbox), from POST /v1/jobs to a downloaded, playable video and thumbnail."""

from __future__ import annotations

from tests.server.serverproc import Server, wait_for


def test_compose_job_end_to_end(tmp_path):
    with Server(tmp_path / "data", "--rate-limit", "100000", pipeline=None) as srv, \
            srv.client(srv.key(credits=5)) as api:
        created = api.post("/jobs", json={
            "entry": "compose", "topic": "Three facts about loudness", "tone": "calm", "platforms": ["tiktok"],
            "script": "Loudness is measured in LUFS. Platforms play everything at about minus fourteen. "
                      "So a mix that is too loud just gets turned down."})
        assert created.status_code == 201, created.text
        job = created.json()["jobId"]
        done = wait_for(api, job, ("published", "failed"), timeout=300)
        assert done["status"] == "published", (done, srv.log.read_text()[-3000:])
        result = api.get(f"/jobs/{job}/result").json()
        video = tmp_path / "video.mp4"
        video.write_bytes(api.get(result["videoUrl"]).content)
        thumb = api.get(result["thumbnailUrl"]).content
        assert thumb[:3] == b"\xff\xd8\xff"  # a JPEG
        assert result["publishCopy"]["title"] and result["publishCopy"]["hashtags"]
        assert result["publishResults"][0] == {**result["publishResults"][0], "platform": "tiktok",
                                               "status": "published", "publisher": "outbox"}
        assert 0 < result["afx"]["score"]["total"] <= 100

    from afx.media.probe import probe

    info = probe(video)
    assert (info.width, info.height) == (1080, 1920) and info.has_audio
    assert 5 < info.duration < 30


def test_a_job_with_clips_end_to_end(tmp_path):
    """A 40 s recording with speech, uploaded, cut into its best 5-10 s moment by the real
    stages, the clip job rendered from its own cut (two clips, their overlap and their
    refunds are tested with the cheap pipeline: tests/server/test_clips.py)."""
    from tests.server.speech import speech_vod

    source = speech_vod(tmp_path / "vod.mp4")
    with Server(tmp_path / "data", "--rate-limit", "100000", pipeline=None) as srv, \
            srv.client(srv.key(credits=5)) as api:
        file_id = api.post("/upload", files={"file": ("vod.mp4", source.read_bytes(), "video/mp4")}).json()["fileId"]
        created = api.post("/jobs", json={"entry": "upload", "fileId": file_id, "topic": "Hardest level",
                                          "tone": "hype", "platforms": ["tiktok"],
                                          "clips": {"count": 1, "min": 5, "max": 10}})
        assert created.status_code == 201, created.text
        answer = created.json()
        parent = answer["jobId"]
        assert answer["creditCost"] == 1 and [c["jobId"] for c in answer["clips"]] == [f"{parent}-01"]
        done = wait_for(api, parent, ("complete", "failed"), timeout=300)
        assert done["status"] == "complete", (done, srv.log.read_text()[-3000:])
        cuts = done["clips"]
        assert len(cuts) == 1 and all(5 - 0.05 <= c["end"] - c["start"] <= 10 + 0.05 for c in cuts), cuts
        videos = []
        for cut in cuts:
            clip = wait_for(api, cut["jobId"], ("published", "failed"), timeout=400)
            assert clip["status"] == "published", (clip, srv.log.read_text()[-3000:])
            assert clip["parentId"] == parent and (clip["start"], clip["end"]) == (cut["start"], cut["end"])
            videos.append(tmp_path / f"{cut['jobId']}.mp4")
            videos[-1].write_bytes(api.get(clip["outputUrl"]).content)
        result = api.get(f"/jobs/{parent}/result").json()
        assert [c["jobId"] for c in result["clips"]] == [c["jobId"] for c in cuts] and result["candidates"]
        assert api.get("/account").json()["credits"]["balance"] == 4

    from afx.media.probe import probe

    for video in videos:
        info = probe(video)
        assert (info.width, info.height) == (1080, 1920) and info.has_audio
        assert 5 <= info.duration <= 25, info.duration  # the cut, and the voice's hook and call to action
