"""Budgets that keep resolving a hostile spec or request body cheap (issue 11, hole 2):
counted before anything is compiled, reported once, naming the limit and the field."""

from __future__ import annotations

import pytest

from afx.errors import SpecError
from afx.spec import budget as specbudget
from afx.spec import vars as specvars
from afx.spec.api import resolve_body
from afx.spec.vars import VarError, render


def test_a_field_with_too_many_expressions_is_refused_before_compiling():
    with pytest.raises(VarError) as info:
        render("{{ afx }}" * 257, {"afx": "x"})
    assert info.value.message == "257 {{ }} expressions in one field; the limit is 256"
    assert render("{{ afx }}" * 256, {"afx": "x"}) == "x" * 256


def test_a_field_whose_expression_is_too_large_is_refused_before_compiling():
    source = "{{ " + " ~ ".join(["a"] * 2500) + " }}"  # one expression, 2,500 names
    with pytest.raises(VarError) as info:
        render(source, {"a": "x"})
    assert "parts; the limit is 2000" in info.value.message


def _body(fields: dict) -> dict:
    return {"entry": "compose", "topic": "x", **fields}


def _problems(body: dict, tmp_path) -> list[str]:
    with pytest.raises(SpecError) as info:
        resolve_body(body, name="job_1", root=tmp_path, uploads=None)
    return [f"{d.path}: {d.message}" for d in info.value.diagnostics]


def test_a_job_over_its_expression_budget_is_one_error_not_one_per_field(tmp_path):
    tag = "{{ afx.job }}" * 250  # under the limit of one field, over the job's in five
    problems = _problems(_body({"copy": {"hashtags": [tag] * 10}}), tmp_path)
    budget = [p for p in problems if "in all" in p]
    assert budget == [f"copy.hashtags[4]: the job's fields hold more than {specvars.MAX_JOB_EXPRESSIONS} "
                      "{{ }} expressions in all"], problems


def test_a_job_over_its_output_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(specbudget, "MAX_JOB_OUTPUT", 1000)
    problems = _problems(_body({"vars": {"t": "y" * 600}, "script": "{{ t }}", "topic": "{{ t }}"}), tmp_path)
    assert any("rendered fields add up to more than 1000 characters" in p for p in problems), problems
