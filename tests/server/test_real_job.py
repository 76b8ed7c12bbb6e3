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
