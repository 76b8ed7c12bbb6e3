"""A real render shared through a remote cache (issue 15): a fresh clone fetches a small
lavfi-made job's stages and gets byte-identical out/ files, rendering nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.mediafix import ff

AFX = str(Path(sys.executable).parent / "afx")
JOB = ("entry: upload\nfile: media/clip.mp4\ntopic: Shared render\nplatforms: [tiktok]\n"
       "render: {voice: none, title: {enabled: false}}\n")


def _checkout(root: Path, clip: bytes) -> None:
    (root / "media").mkdir(parents=True)
    (root / "afx.yaml").write_text("version: 1\n")
    (root / "a.yaml").write_text(JOB)
    (root / "media" / "clip.mp4").write_bytes(clip)


def _run(root: Path, cache: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("AFX_PIPELINE", "AFX_CACHE_DIR")}
    proc = subprocess.run([AFX, "run", "--json", "--cache", str(cache)], cwd=root, env={**env, "NO_COLOR": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_fetched_artifacts_give_identical_outputs(tmp_path):
    source = tmp_path / "clip.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=3", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(source))
    root, cache = tmp_path / "checkout", tmp_path / "cache"
    _checkout(root, source.read_bytes())
    first = _run(root, cache)
    assert any(e.get("stage") == "render" and e.get("status") == "done" for e in first)
    video = hashlib.sha256((root / "out" / "a" / "video.mp4").read_bytes()).hexdigest()
    lock = (root / "afx.lock").read_text()
    root.rename(tmp_path / "first")

    _checkout(root, source.read_bytes())
    second = _run(root, cache)
    ran = {e["stage"] for e in second if e.get("event") == "stage" and e.get("status") == "done"}
    assert ran <= {"publish"}, ran
    assert any(e.get("stage") == "render" and e.get("remote") for e in second)
    assert hashlib.sha256((root / "out" / "a" / "video.mp4").read_bytes()).hexdigest() == video
    # every out/ file the same, but the publish stage's own record (it runs in each clone, at its own time)
    files = json.loads((root / "afx.lock").read_text())["jobs"]["a"]["files"]
    before = json.loads(lock)["jobs"]["a"]["files"]
    assert {k: v for k, v in files.items() if k != "publish.json"} == {
        k: v for k, v in before.items() if k != "publish.json"}
    assert "video.mp4" in files and "thumb.jpg" in files
