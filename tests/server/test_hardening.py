"""Smaller holes of the attack test (issue 11): what a hostile client sees and leaves behind."""

from __future__ import annotations

import socket
import time

import pytest

from tests.server.serverproc import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("hard") / "data") as server:
        yield server


@pytest.mark.parametrize("path", ["/jobs/{id}", "/jobs/{id}/result", "/jobs/{id}/files/video.mp4",
                                  "/jobs/job_x/files/{id}"])
def test_a_404_does_not_echo_a_huge_id(srv, path):
    huge = "job_" + "A" * 10_000
    with srv.client(srv.key()) as api:
        r = api.get(path.format(id=huge))
        if path.endswith("{id}") and "files" in path:  # job_x is not the account's: the job is the 404
            assert r.status_code == 404
        assert r.status_code == 404
        assert len(r.content) < 400, r.text
        assert "10004 characters" in r.text or "no job 'job_x'" in r.text


def test_a_404_of_a_template_or_upload_does_not_echo_a_huge_id(srv):
    huge = "tpl_" + "B" * 10_000
    with srv.client(srv.key()) as api:
        r = api.delete(f"/templates/{huge}")
        assert r.status_code == 404 and len(r.content) < 400, r.text
        r = api.post("/jobs", json={"entry": "upload", "fileId": "file_" + "C" * 10_000, "topic": "x"})
        assert r.status_code == 422 and len(r.content) < 1000, r.text


def test_a_client_that_disconnects_mid_upload_is_one_warning_line(srv):
    mark = srv.log.stat().st_size
    head = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n"
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST /v1/upload HTTP/1.1\r\nHost: x\r\n"
                  + f"Authorization: Bearer {srv.key()}\r\n".encode()
                  + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
                  + head + b"\0" * 5000)
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    said = ""
    while time.monotonic() < deadline:
        said = srv.log.read_bytes()[mark:].decode("utf-8", "replace")
        if "disconnected" in said:
            break
        time.sleep(0.1)
    assert "Traceback" not in said, said
    lines = [line for line in said.splitlines() if "disconnected" in line]
    assert len(lines) == 1 and "upload" in lines[0], said
    assert not list((srv.data_dir / "uploads").glob(".part-*")), "the partial file is removed"
