from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SpecRepo

AFX = str(Path(sys.executable).parent / "afx")
PIPELINE = "afx.testing.pipeline:PIPELINE"


class EngineRepo(SpecRepo):
    """A spec repo run through the cheap test pipeline, counting real stage runs."""

    def __init__(self, root: Path, log: Path) -> None:
        super().__init__(root)
        self.log = log
        self.started: list[subprocess.Popen] = []

    def runs(self) -> Counter:
        """(job, stage) -> how many times it really ran, since the last call."""
        if not self.log.exists():
            return Counter()
        lines = self.log.read_text().split("\n")
        self.log.write_text("")
        return Counter(tuple(line.split()) for line in lines if line.strip())

    def ran(self) -> set[tuple[str, str]]:
        return set(self.runs())

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "AFX_PIPELINE": PIPELINE, "AFX_TEST_LOG": str(self.log), "NO_COLOR": "1"}
        env.update(extra)
        return env

    def popen(self, *args: str, **extra_env: str) -> subprocess.Popen:
        # A test suite started in the background (`make test &`) runs with SIGINT ignored,
        # which children inherit; Ctrl-C tests need afx to see SIGINT as a terminal sends it.
        # Its own session: signals from the tests reach afx alone (as `kill -INT` would), and
        # whatever a failed test leaves running is killed with its process group.
        proc = subprocess.Popen([AFX, *args], cwd=self.root, env=self.env(**extra_env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.started.append(proc)
        return proc

    def kill_leftovers(self) -> None:
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()

    def run_process(self, *args: str, timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([AFX, *args], cwd=self.root, env=self.env(**extra_env), capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture
def erepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineRepo]:
    log = tmp_path / "runs.log"
    monkeypatch.setenv("AFX_PIPELINE", PIPELINE)
    monkeypatch.setenv("AFX_TEST_LOG", str(log))
    monkeypatch.delenv("AFX_CACHE_DIR", raising=False)
    repo = EngineRepo(tmp_path / "repo", log)
    repo.write("templates/base.yaml", "tone: hype\nplatforms: [tiktok]\n")
    repo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\n")
    repo.write("b.yaml", "fromTemplateId: base\nentry: upload\nfile: media/b.mp4\ntopic: Beta plays\n")
    repo.write("media/b.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x01" * 64)
    yield repo
    repo.kill_leftovers()
