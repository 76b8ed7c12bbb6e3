from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from afx.cli.env import Environment
from afx.cli.main import run

ROOT = Path(__file__).resolve().parents[1]

# make test (and CI) draws the same examples every run, and a loaded machine's slowness is
# not a failure; HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("afx", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "afx"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class SpecRepo:
    """A throwaway spec repo: write files, run afx in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "afx.yaml").write_text("version: 1\n")

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def afx(self, *args: str, tty: bool = False, environ: dict[str, str] | None = None) -> Result:
        return afx(*args, cwd=self.root, tty=tty, environ=environ)

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def afx(*args: str, cwd: Path | None = None, tty: bool = False, environ: dict[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, stdout_isatty=tty, stderr_isatty=tty, environ=environ or {})
    import os

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        code = run(list(args), env)
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def repo(tmp_path: Path) -> SpecRepo:
    return SpecRepo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2026-11-28 00:00 UTC: built-in {{ afx.today }} is reproducible in tests.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795824000")


# Media fixtures (generated clips, a loopback HTTP server) for every test folder.
from tests.mediafix import media, origin, server  # noqa: E402, F401


# Real servers on loopback (afx/testing/services.py), one per test session, skipped cleanly
# where this machine cannot run them.
@pytest.fixture(scope="session")
def postgres_url():
    from afx.testing import services

    try:
        with services.postgres() as url:
            yield url
    except services.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def s3_server():
    from afx.testing import services

    try:
        with services.s3() as server:
            yield server
    except services.Unavailable as exc:
        pytest.skip(str(exc))
