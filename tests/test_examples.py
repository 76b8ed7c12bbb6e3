"""The example spec repo in specs/ is valid and shows every feature it claims to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from afx.spec import resolve
from afx.spec.repo import spec_files
from afx.testing.media import make_clip
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("ex") / "specs"
    shutil.copytree(ROOT / "specs", target, ignore=shutil.ignore_patterns("*.mp4", "out", ".afx"))
    make_clip(target / "media" / "ace-round.mp4", seconds=1, width=320, height=180)  # what make demo makes
    return target


def test_examples_validate(examples):
    result = resolve([examples])
    assert result.ok, [str(d) for d in result.diagnostics]


def test_examples_cover_each_entry_kind_chain_matrix_and_vars(examples):
    result = resolve([examples])
    kinds = {j["entry"] for j in result.jobs}
    assert kinds == {"fetch", "upload", "compose", "generate"}
    assert any(len(j.template_chain) >= 2 for j in result.jobs), "a template chain"
    matrix = [j for j in result.jobs if j.matrix]
    assert len(matrix) == 4 and {j.base_name for j in matrix} == {"clutch"}
    cs2 = next(j for j in result.jobs if j.name == "cs2-weekly")
    assert cs2["topic"] == "Best CS2 plays this week (2026-W48)"  # vars + built-ins
    assert {j["publishMode"] for j in result.jobs} == {"immediate", "scheduled", "manual"}
    assert any(j["staging"] for j in result.jobs)


def test_every_example_spec_has_a_schema_modeline():
    specs = ROOT / "specs"
    for path in spec_files(specs) + [specs / "afx.yaml"]:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.is_file() and target.parent == (ROOT / "schemas").resolve(), path
        kind = "template" if "templates" in path.parts else ("config" if path.name == "afx.yaml" else "job")
        assert target.name == f"{kind}.schema.json", path
