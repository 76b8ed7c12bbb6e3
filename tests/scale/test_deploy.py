"""deploy/compose.yaml and docs/scale.md stay true to the code: every afx command they run
parses with afx's own CLI, and every AFX_* variable they set is one afx reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from afx.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _afx_reads() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "afx").rglob("*.py"):
        names.update(re.findall(r"\bAFX_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    return names


def _parses(argv: list[str]) -> None:
    assert argv[0] == "afx", argv
    command = cli.commands.get(argv[1])
    assert command is not None, f"no such command: afx {argv[1]}"
    with command.make_context(argv[1], argv[2:], parent=click.Context(cli)):
        pass


def test_the_compose_file_runs_real_commands_with_real_settings():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    commands = [s["command"] for s in compose["services"].values() if str(s.get("command", "")).startswith("afx ")]
    assert {c.split()[1] for c in commands} == {"serve", "worker"}
    for command in commands:
        _parses(shlex.split(command))
    env = compose["x-afx-env"]
    unknown = {k for k in env if k.startswith("AFX_")} - _afx_reads()
    assert not unknown, f"compose sets variables afx does not read: {unknown}"
    assert env["AFX_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["AFX_STORAGE_URL"].startswith("s3://")


def test_the_scale_docs_name_real_settings_and_flags():
    text = (ROOT / "docs" / "scale.md").read_text()
    unknown = set(re.findall(r"\bAFX_[A-Z_]+\b", text)) - _afx_reads()
    assert not unknown, f"docs/scale.md names variables afx does not read: {unknown}"
    lines = re.findall(r"^afx (?:run|lock merge|worker|serve)(?= |$)[^#\n]*", text, flags=re.M)
    assert len(lines) >= 3, lines
    for line in lines:
        argv = shlex.split(line.replace("FILE...", "a.lock"))
        if argv[1] == "lock":
            argv = ["afx", "lock", *argv[2:]]
            group = cli.commands["lock"]
            assert isinstance(group, click.Group) and "merge" in group.commands
            continue
        _parses(argv)


@pytest.mark.parametrize("bad", [["afx", "worker", "--concurrency", "2"], ["afx", "serve", "--no-such-flag"]])
def test_a_wrong_command_would_be_caught(bad):
    with pytest.raises(click.UsageError):
        _parses(bad)
