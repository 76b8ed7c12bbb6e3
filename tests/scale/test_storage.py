"""The server's shared files (afx/server/storage.py) on a real S3 server and in a folder:
uploads fetched by a worker elsewhere, a job's files served by a front that never ran it."""

from __future__ import annotations

import hashlib
import urllib.request

import pytest

from afx.server.storage import SharedFiles, StorageProblem


@pytest.fixture(params=["s3", "folder"])
def shared(request, tmp_path):
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        s3.make_bucket("afx-storage")
        mp = request.getfixturevalue("monkeypatch")
        for k, v in s3.env.items():
            mp.setenv(k, v)
        url = f"s3://afx-storage/{tmp_path.name}"
    else:
        url = str(tmp_path / "bucket")
        (tmp_path / "bucket").mkdir()
    return lambda machine: SharedFiles(url, tmp_path / machine)


def test_an_upload_reaches_a_worker_on_another_machine_checked(shared, tmp_path):
    front, worker = shared("front"), shared("worker")
    src = tmp_path / "front" / "uploads" / "file_1.mp4"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 5000)
    front.put_upload("acct_1", "file_1.mp4", src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "worker" / "uploads" / "file_1.mp4"
    assert worker.fetch_upload("acct_1", "file_1.mp4", dest, digest) == dest
    assert dest.read_bytes() == src.read_bytes()
    # the row's digest does not match what the store holds: refused, nothing left behind
    other = tmp_path / "worker" / "uploads" / "file_2.mp4"
    front.put_upload("acct_1", "file_2.mp4", src)
    with pytest.raises(StorageProblem, match="sha256"):
        worker.fetch_upload("acct_1", "file_2.mp4", other, "0" * 64)
    assert not other.exists() and not list(other.parent.glob(".fetch-*"))
    with pytest.raises(StorageProblem, match="not in the shared store"):
        worker.fetch_upload("acct_2", "file_1.mp4", tmp_path / "worker" / "x.mp4", digest)  # another account's


def test_a_jobs_files_are_served_from_the_store_by_a_front_that_never_ran_it(shared, tmp_path):
    worker, front = shared("worker"), shared("front")
    out = tmp_path / "worker" / "out" / "job_1"
    out.mkdir(parents=True)
    (out / "video.mp4").write_bytes(b"video bytes" * 100)
    (out / "thumbnail.jpg").write_bytes(b"jpeg")
    (out / "secret.txt").write_bytes(b"not exported")
    (out / ".afx-files").write_text("thumbnail.jpg\nvideo.mp4\n")
    record = worker.push_outputs("acct_1", "job_1", out)
    assert set(record) == {"thumbnail.jpg", "video.mp4"}
    found = front.locate("acct_1", "job_1", "video.mp4")
    assert found is not None
    if found.url:  # S3: a presigned URL anyone can GET for a while
        with urllib.request.urlopen(found.url) as resp:
            assert resp.read() == b"video bytes" * 100
    else:  # a folder: a checked copy in the front's cache
        assert found.path is not None and found.path.read_bytes() == b"video bytes" * 100
    assert front.locate("acct_1", "job_1", "secret.txt") is None
    assert front.locate("acct_2", "job_1", "video.mp4") is None
    with pytest.raises(StorageProblem):
        front.locate("acct_1", "../job_1", "video.mp4")
