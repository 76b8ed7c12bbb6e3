from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from afx import __version__
from tests.conftest import ROOT, afx

AFX = Path(sys.executable).parent / "afx"


def test_version_and_help(capsys):
    assert afx("--version").code == 0
    assert capsys.readouterr().out.strip() == f"afx {__version__}"
    assert afx("--help").code == 0
    out = capsys.readouterr().out
    assert "validate" in out and "Exit statuses" in out


def test_usage_error_is_exit_2():
    assert afx("resolve").code == 2
    assert afx("no-such-command").code == 2


def test_validate_ok_summary_and_quiet(repo):
    repo.write("a.yaml", "url: https://x.org/v\n")
    repo.write("m.yaml", "url: https://x.org/v\nmatrix: {tone: [hype, calm]}\n")
    r = repo.afx("validate")
    assert r.code == 0
    assert "ok: 3 jobs (2 from matrices), 0 templates in 2 files" in r.err
    assert repo.afx("validate", "-q").err == ""


def test_validate_json_lists_jobs(repo):
    repo.write("a.yaml", "url: https://x.org/v\n")
    for args in (("validate", "--json"), ("--json", "validate")):
        data = json.loads(repo.afx(*args).out)
        assert data["ok"] is True and data["jobs"] == ["a"] and data["diagnostics"] == []


def test_validate_selected_paths_still_sees_all_templates(repo):
    repo.write("templates/t.yaml", "tone: calm\n")
    repo.write("jobs/a.yaml", "fromTemplateId: t\nurl: https://x.org/v\n")
    repo.write("jobs/bad.yaml", "nope: 1\n")
    assert repo.afx("validate", "jobs/a.yaml").code == 0
    assert repo.afx("validate", "jobs").code == 2


def test_validate_missing_path_is_usage_error(repo):
    r = repo.afx("validate", "nope.yaml")
    assert r.code == 2 and "nope.yaml: no such file" in r.err


def test_color_always_never_and_no_color(repo):
    repo.write("a.yaml", "durationMins: 500\nurl: https://x.org/v\n")
    assert "\x1b[" in repo.afx("validate", "--color", "always").err
    assert "\x1b[" not in repo.afx("validate", "--color", "never", tty=True).err
    assert "\x1b[" in repo.afx("validate", tty=True).err
    assert "\x1b[" not in repo.afx("validate", tty=True, environ={"NO_COLOR": "1"}).err


def test_resolve_prints_yaml_json_and_api_body(repo):
    repo.write("templates/t.yaml", "tone: hype\nplatforms: [tiktok]\n")
    repo.write("a.yaml", "fromTemplateId: t\nurl: https://x.org/v\ntopic: '{{ afx.job }}'\nrender: {layout: fit}\n")
    r = repo.afx("resolve", "a")
    assert r.code == 0
    doc = yaml.safe_load(r.out)
    assert doc["name"] == "a" and doc["tone"] == "hype" and doc["topic"] == "a" and doc["render"] == {"layout": "fit"}
    assert r.out.startswith("# a: a.yaml:1 via templates t")
    data = json.loads(repo.afx("resolve", "a", "--json").out)
    assert data[0]["platforms"] == ["tiktok"]
    body = json.loads(repo.afx("resolve", "--api", "a").out)
    assert body == {"entry": "fetch", "url": "https://x.org/v", "topic": "a", "tone": "hype", "format": "short",
                    "durationMins": 1, "platforms": ["tiktok"], "publishMode": "immediate", "staging": False}


def test_resolve_by_path_and_matrix_base_name(repo):
    repo.write("m.yaml", "name: m\nurl: https://x.org/v\nmatrix: {tone: [hype, calm]}\n")
    assert [d["name"] for d in json.loads(repo.afx("resolve", "--json", "m").out)] == ["m-hype", "m-calm"]
    assert [d["name"] for d in json.loads(repo.afx("resolve", "--json", "m.yaml").out)] == ["m-hype", "m-calm"]
    assert len(json.loads(repo.afx("resolve", "--api", "m").out)) == 2


def test_resolve_unknown_job_suggests(repo):
    repo.write("cs2-weekly.yaml", "url: https://x.org/v\n")
    r = repo.afx("resolve", "cs2-wekly")
    assert r.code == 2 and 'did you mean "cs2-weekly"?' in r.err


def test_schema_print_and_write(tmp_path):
    r = afx("schema", "template")
    assert json.loads(r.out)["title"] == "afx template"
    assert json.loads(afx("schema").out)["title"] == "afx job"
    r = afx("schema", "--write", str(tmp_path / "s"))
    assert r.code == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "config.schema.json", "job.schema.json", "template.schema.json"]
    assert (tmp_path / "s" / "job.schema.json").read_text() == (ROOT / "schemas" / "job.schema.json").read_text()


def test_init_scaffolds_a_valid_repo_with_modelines(tmp_path):
    target = tmp_path / "channel"
    r = afx("init", str(target))
    assert r.code == 0, r.text
    assert (target / "schemas" / "job.schema.json").is_file()
    for spec in (target / "hello.yaml", target / "templates" / "house-style.yaml", target / "afx.yaml"):
        first = spec.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        ref = first.split("=", 1)[1]
        assert (spec.parent / ref).resolve().is_file(), ref
    assert "out/" in (target / ".gitignore").read_text()
    r = afx("validate", str(target), "--json")
    assert r.code == 0 and json.loads(r.out)["jobs"] == ["hello"]
    again = afx("init", str(target))
    assert again.code == 2 and "already a spec repo" in again.err


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    target = tmp_path / "x"
    target.mkdir()
    (target / "hello.yaml").write_text("mine\n")
    r = afx("init", str(target))
    assert r.code == 2 and "refusing to overwrite" in r.err
    assert sorted(p.name for p in target.iterdir()) == ["hello.yaml"]


def test_console_script_runs_in_a_real_process(repo):
    assert AFX.exists(), "install the project (make test does)"
    repo.write("a.yaml", "url: https://x.org/v\ndurationMins: 0\n")
    p = subprocess.run([str(AFX), "validate"], cwd=repo.root, capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 2
    assert "a.yaml:2:15: durationMins: 0 is less than the minimum of 1" in p.stderr


def test_default_repo_is_specs_folder_below_cwd(tmp_path):
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("*.mp4", "out", ".afx"))
    (tmp_path / "specs" / "media").mkdir(exist_ok=True)
    (tmp_path / "specs" / "media" / "ace-round.mp4").write_bytes(b"\x00")
    r = afx("validate", cwd=tmp_path)
    assert r.code == 0, r.text
    assert "(specs)" in r.err


@pytest.mark.parametrize("argv", [["validate", "--json"], ["--json", "resolve", "nope"]])
def test_json_errors_are_json(repo, argv):
    repo.write("a.yaml", "durationMins: 0\n")
    r = repo.afx(*argv)
    assert r.code == 2
    json.loads(r.out)
