from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afx.spec.vars import MAX_OUTPUT, VarError, builtins, render, slug


def test_renders_variables_and_filters():
    assert render("Best {{ game }} plays — week {{ week }}", {"game": "CS2", "week": 48}) == \
        "Best CS2 plays — week 48"
    assert render("{{ game | upper }} {{ tags | join(', ') }}", {"game": "cs2", "tags": ["a", "b"]}) == "CS2 a, b"
    assert render("{% if hype %}LET'S GO{% else %}ok{% endif %}", {"hype": True}) == "LET'S GO"
    assert render("{{ name | slug }}", {"name": "Valorant: Clutch!"}) == "valorant-clutch"


def test_builtins_follow_source_date_epoch():
    b = builtins("my-job")
    assert b["today"] == "2026-11-28" and b["year"] == 2026 and b["week"] == 48 and b["job"] == "my-job"
    assert render("{{ afx.date.strftime('%d %B') }}", {"afx": b}) == "28 November"


def test_undefined_is_strict_with_a_suggestion():
    with pytest.raises(VarError) as info:
        render("Best {{ gmae }} plays", {"game": "CS2"})
    assert "undefined variable 'gmae'" in info.value.message
    assert 'did you mean "game"' in info.value.hint


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ x.__class__ }}",
    "{{ ''.format(1) }}",
    "{{ '{0}'.format_map(x) }}",
    "{{ 'a'.center(1000000000) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ 'ab'.replace('a', 'x') }}",
    "{{ ','.join(x) }}",
])
def test_sandbox_escapes_and_dangerous_methods_are_refused(source):
    with pytest.raises(VarError) as info:
        render(source, {"x": ["a"]})
    assert info.value.message


@pytest.mark.parametrize("source", [
    "{{ 'a' * 1000000000 }}",
    "{{ [1] * 1000000000 }}",
    "{{ (10 ** 100) ** (10 ** 100) }}",
    "{{ 2 ** 100000 }}",
    "{{ '%1000000000s' % 'a' }}",
    "{{ x | replace('a', big) }}",
    "{{ lipsum(1000000) }}",
    "{{ range(100000000) | list }}",
    "{% for i in x %}{% for j in x %}.{% endfor %}{% endfor %}",
    "{% set y = 1 %}{{ y }}",
    "{% macro m() %}{% endmacro %}",
    "{% include 'x' %}",
    "{{ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x }}",
    "{{ x|center(1000000000) }}",
    "{{ x|indent(1000000000) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    # found in review: list repetition counted items not size, %(key) widths, int methods
    "{{ ['a' * 200000] * 2000 }}",
    "{{ (['a' * 1000] * 200) | tojson }}",
    "{{ ('%s' * 100000) % (('a' * 200000,) * 100000) }}",
    "{{ '%(a)1000000000s' % {'a': 1} }}",
    "{{ (1).to_bytes(1000000000, 'big') | length }}",
    "{{ ([[0] * 100000] * 1000) | sum(start=[]) }}",
    "{{ ('a' * 200000) ~ ('a' * 200000) ~ ('a' * 200000) ~ ('a' * 200000) ~ ('a' * 200000) }}",
    "{{ x | list | list | tojson | list | tojson }}",
])
def test_amplification_and_statements_are_refused_fast(source):
    variables = {"x": "a" * 200_000, "big": "b" * 100_000}
    started = time.perf_counter()
    with pytest.raises(VarError):
        render(source, variables)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("source", [
    "{{ " + "[" * 100 + "]" * 100 + " }}",
    "{{ " + "+".join(["1"] * 1000) + " }}",
    "{{ 1" + "|abs" * 1000 + " }}",
])
def test_deeply_nested_expressions_are_var_errors_not_crashes(source):
    with pytest.raises(VarError) as info:
        render(source, {})
    assert "nested" in info.value.message or "complex" in info.value.message


@pytest.mark.parametrize("source", ["{{ self }}", "{{ x.__len__ }}", "{{ (1).real }}", "{{ x | map('upper') }}"])
def test_special_names_number_attributes_and_map_are_unavailable(source):
    with pytest.raises(VarError):
        render(source, {"x": ["a"]})


def test_output_is_bounded():
    with pytest.raises(VarError) as info:
        render("{{ x }}" * 8, {"x": "a" * (MAX_OUTPUT // 4)})
    assert "longer" in info.value.message or "expand" in info.value.message


def test_syntax_errors_are_var_errors():
    with pytest.raises(VarError) as info:
        render("{{ game ", {"game": 1})
    assert "syntax" in info.value.message


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("{}%#|~*+.'\"()[]_ abgx0123456789") + ["{{", "}}", "{%", "%}", "if ",
                                                                             "endif", "upper", "**"]),
                max_size=30).map("".join))
def test_any_text_renders_or_fails_with_a_var_error(source):
    try:
        out = render(source, {"a": "x", "b": [1, 2], "g": {"k": "v"}})
    except VarError as exc:
        assert exc.message
    else:
        assert isinstance(out, str) and len(out) <= MAX_OUTPUT


@pytest.mark.parametrize("value,expected", [
    ("CS2", "cs2"), ("Valorant Clutch!", "valorant-clutch"), (["tiktok", "youtube"], "tiktok-youtube"),
    (True, "true"), (3, "3"), ("", "x"), ("ÄÖ", "x"),
])
def test_slug(value, expected):
    assert slug(value) == expected
