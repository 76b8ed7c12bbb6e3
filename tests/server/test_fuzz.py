"""schemathesis against afx serve's own /openapi.json: no request makes the server fail (5xx).

A small budget here (make test); `make fuzz` runs the same with many more examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.serverproc import Server

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed")


def test_no_server_errors(tmp_path):
    examples = os.environ.get("AFX_FUZZ_EXAMPLES", "8")
    with Server(tmp_path / "data", "--rate-limit", "1000000", "--max-active", "1000000") as srv:
        key = srv.key(credits=1_000_000)
        proc = subprocess.run(
            [str(SCHEMATHESIS), "run", srv.url + "/openapi.json", "--checks", "not_a_server_error",
             "-n", examples, "--seed", "7", "-H", f"Authorization: Bearer {key}", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=1200, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path)
        log = srv.log.read_text()
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "passed" in proc.stdout
    assert "Traceback" not in log, log[-4000:]
