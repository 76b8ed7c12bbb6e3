"""Fresh clones of one spec repo, one after another at the same path (as CI runners check a
repo out: the publish stage's key includes the repo's path), run through the cheap pipeline
with a remote cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

AFX = str(Path(sys.executable).parent / "afx")
PIPELINE = "afx.testing.pipeline:PIPELINE"
SPECS = {
    "afx.yaml": "version: 1\n",
    "templates/base.yaml": "tone: hype\nplatforms: [tiktok]\n",
    "a.yaml": "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\n",
    "b.yaml": "fromTemplateId: base\nentry: upload\nfile: media/b.mp4\ntopic: Beta plays\n",
    "c.yaml": "entry: generate\ntopic: Fact three\ntone: calm\nplatforms: [instagram]\n",
    "vod.yaml": "entry: upload\nfile: media/b.mp4\ntopic: Stream night\nplatforms: [tiktok]\nclips: {count: 3}\n",
}
MEDIA = {"media/b.mp4": b"\x00\x00\x00\x18ftypisom" + b"\x01" * 64}


class Clones:
    """`fresh()` puts a new checkout of the specs at `root` (the last one moved aside)."""

    def __init__(self, base: Path, env: dict[str, str]) -> None:
        self.base, self.root, self.env = base, base / "checkout", env
        self.log = base / "runs.log"
        self.count = 0

    def fresh(self, specs: dict[str, str] | None = None, lock: str | None = None) -> Path:
        if self.root.exists():
            self.count += 1
            self.root.rename(self.base / f"clone-{self.count}")
        for rel, text in {**SPECS, **(specs or {})}.items():
            if text is None:
                continue
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for rel, data in MEDIA.items():
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_bytes(data)
        if lock is not None:
            (self.root / "afx.lock").write_text(lock)
        return self.root

    def afx(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        full = {**os.environ, "AFX_PIPELINE": PIPELINE, "AFX_TEST_LOG": str(self.log), "NO_COLOR": "1",
                **self.env, **env}
        full.pop("AFX_CACHE_DIR", None)
        return subprocess.run([AFX, *args], cwd=self.root, env=full, capture_output=True, text=True, timeout=120)

    def ran(self) -> Counter[tuple[str, ...]]:
        return Counter(tuple(line.split()) for line in self.log.read_text().splitlines() if line.strip())

    def lock(self) -> str:
        return (self.root / "afx.lock").read_text()


def events(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
