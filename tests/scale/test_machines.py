"""An API front and two workers on three "machines" (three data dirs that share nothing), with
PostgreSQL and a real S3 server between them (docs/scale.md): an upload received by the front
is rendered by a worker, its files are served by the front from the store, and the second
worker reuses the first one's stages from the shared stage cache.

Skipped where PostgreSQL or SeaweedFS cannot be had.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from afx.server import db
from tests.server.serverproc import Server, WorkerProc, wait_for

MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 64


@pytest.fixture
def cluster(postgres_url, s3_server, tmp_path):
    from afx.testing.services import new_database

    s3_server.make_bucket("afx-machines")
    return {"AFX_DATABASE_URL": new_database(postgres_url, "afx_machines"),
            "AFX_STORAGE_URL": f"s3://afx-machines/{tmp_path.name}", **s3_server.env}


def test_front_and_workers_on_separate_machines_share_only_the_database_and_the_store(cluster, tmp_path):
    engine = db.connect(cluster["AFX_DATABASE_URL"])
    first = WorkerProc(tmp_path / "worker-1", "-j", "1", env=cluster)
    with Server(tmp_path / "front", "--no-workers", env=cluster) as front:
        key = front.key(credits=50)
        with front.client(key) as api:
            r = api.post("/upload", files={"file": ("stream.mp4", MP4, "video/mp4")})
            assert r.status_code == 201, r.text
            file_id = r.json()["fileId"]
            body = {"entry": "upload", "fileId": file_id, "topic": "Clutch round", "platforms": []}
            r = api.post("/jobs", json=body)
            assert r.status_code == 201, r.text
            one = r.json()["jobId"]
            with first:  # the first worker machine: it has never seen the upload
                done = wait_for(api, one, ("complete", "published", "failed"), timeout=90)
            assert done["status"] == "complete", (done, first.log.read_text()[-2000:])
            assert (tmp_path / "worker-1" / "uploads").is_dir()  # fetched there from the store
            # the front never ran the job: it serves the video from the store (a presigned URL)
            result = api.get(f"/jobs/{one}/result").json()
            r = api.get(result["videoUrl"].removeprefix(front.url + "/v1"))
            assert r.status_code == 307, r.text
            video = httpx.get(r.headers["location"]).content
            made = tmp_path / "worker-1" / "accounts"
            assert video == next(made.rglob(f"out/{one}/video.mp4")).read_bytes()
            assert not (tmp_path / "front" / "accounts").exists() or not list(
                (tmp_path / "front" / "accounts").rglob("video.mp4"))
            # the same job again, on a second machine: its stages come from the shared cache
            r = api.post("/jobs", json=body)
            two = r.json()["jobId"]
            with WorkerProc(tmp_path / "worker-2", "-j", "1", env=cluster):
                done = wait_for(api, two, ("complete", "published", "failed"), timeout=90)
            assert done["status"] == "complete", done
    with db.read(engine) as conn:
        statuses = dict(conn.execute(select(db.jobs.c.id, db.jobs.c.status)).all())
    assert statuses == {one: "complete", two: "complete"}
    engine.dispose()
    # Worker 2 built nothing that worker 1 had: its stage results are worker 1's records,
    # fetched (the same manifests, made at the same instant), not made again.
    from afx.engine.store import Store

    mine, theirs = Store(tmp_path / "worker-1" / "cache"), Store(tmp_path / "worker-2" / "cache")
    try:
        made = {k: mine.manifest(k) for k in mine.stage_keys()}
        shared = {k: m for k, m in made.items() if m is not None and m.stage != "publish"}
        assert {m.stage for m in shared.values()} >= {"ingest", "render", "package"}, made
        for key, m in shared.items():
            got = theirs.manifest(key)
            assert got is not None and got.created == m.created and got.digest == m.digest, (m.stage, got)
    finally:
        mine.close()
        theirs.close()
