"""Every cURL example of the API reference, run as written against `afx serve`.

Only what names the hosted service changes: the base URL, the key, and the example ids
(job_abc123, tpl_abc) and file path, which become a real job, template and file here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server.serverproc import Server

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "auraflux-api-v1.txt"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\0" * 4096

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def examples() -> list[str]:
    text = REFERENCE.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]


def test_the_reference_has_every_endpoints_example():
    found = examples()
    assert len(found) == 11
    joined = "\n".join(found)
    for fragment in ("-X POST https://api.auraflux.co/v1/jobs ", "-X DELETE", "approve-publish", "/upload",
                     "-X PATCH", "/account", "-X POST https://api.auraflux.co/v1/templates"):
        assert fragment in joined


def test_every_curl_example_works(tmp_path):
    clip = tmp_path / "myclip.mp4"
    clip.write_bytes(MP4)
    # One worker, slow renders: the jobs stay queued or running, so each example finds its
    # job in the state the reference assumes (cancellable, approvable, schedulable).
    with Server(tmp_path / "data", "--workers", "1", env={"AFX_TEST_SLEEP": "render:60"}) as srv, \
            srv.client(key := srv.key(credits=100)) as api:
        running = api.post("/jobs", json={"entry": "compose", "topic": "First"}).json()["jobId"]
        staged = api.post("/jobs", json={"entry": "compose", "topic": "Staged", "staging": True}).json()["jobId"]
        queued = api.post("/jobs", json={"entry": "compose", "topic": "To cancel"}).json()["jobId"]
        template = api.post("/templates", json={"name": "To delete"}).json()["id"]
        ids = {"DELETE /jobs": queued, "approve-publish": staged, "schedule": staged}
        answers = []
        for example in examples():
            command = example.replace(" \\ ", " ")
            command = command.replace("https://api.auraflux.co/v1", srv.url + "/v1")
            command = command.replace("af_live_YOUR_KEY", key)
            command = command.replace("/path/to/myclip.mp4", str(clip))
            command = command.replace("tpl_abc", template)
            if "-X DELETE" in command and "/jobs/" in command:
                command = command.replace("job_abc123", ids["DELETE /jobs"])
            elif "approve-publish" in command:
                command = command.replace("job_abc123", ids["approve-publish"])
            elif "/schedule" in command:
                command = command.replace("job_abc123", ids["schedule"])
            else:
                command = command.replace("job_abc123", running)
            assert "auraflux.co" not in command and "YOUR_KEY" not in command
            argv = shlex.split(command)
            proc = subprocess.run([*argv, "-s", "-o", str(tmp_path / "body"), "-w", "%{http_code}"],
                                  capture_output=True, text=True, timeout=30)
            body = (tmp_path / "body").read_text() if (tmp_path / "body").exists() else ""
            answers.append((example[:60], proc.stdout, body))
            assert proc.returncode == 0, (example, proc.stderr)
            assert re.fullmatch(r"2\d\d", proc.stdout), (example, proc.stdout, body)
        assert len(answers) == 11
        assert api.get(f"/jobs/{queued}").json()["status"] == "cancelled"
        assert api.get(f"/jobs/{staged}").json()["scheduledAt"] == "2026-05-26T09:00:00Z"
        assert api.get("/templates").json()["templates"][-1]["name"] == "Weekly highlights"
