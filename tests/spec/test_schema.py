"""The schemas mirror the contract (docs/auraflux-api-v1.txt) field for field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afx.spec.schema import KINDS, fast_validator, schema, schema_dir, validator
from tests.conftest import ROOT

API_REF = ROOT / "docs" / "auraflux-api-v1.txt"
SHARED_REF = ROOT.parent / "shared" / "auraflux-api-v1.txt"

_TYPE = r'(string\[\]|string|number|boolean|"[^"]+"(?:\|"[^"]+")*)'
_ROW = re.compile(rf"^([a-z][A-Za-z]*?){_TYPE}(.*)$")


def field_table() -> dict[str, dict]:
    """Rows of "POST /jobs — Field Reference": name, type, required text, description."""
    lines = API_REF.read_text(encoding="utf-8").splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("POST /jobs") and "Field Reference" in l)
    assert lines[start + 1].startswith("FieldTypeRequiredDescription")
    rows = {}
    for line in lines[start + 2:]:
        m = _ROW.match(line)
        if not m:
            break
        name, typ, rest = m.groups()
        rows[name] = {"type": typ, "rest": rest}
    return rows


def test_field_table_parses_all_rows():
    rows = field_table()
    # The reference lists 12 fields; if the text changes, this parser must be looked at.
    assert len(rows) == 12, rows.keys()


@pytest.mark.parametrize("name", list(field_table()))
def test_every_api_field_is_in_the_job_schema_with_its_type_enum_default_and_limits(name):
    row = field_table()[name]
    prop = schema("job")["properties"].get(name)
    assert prop is not None, f"{name} missing from job.schema.json"
    typ, rest = row["type"], row["rest"]
    if typ.startswith('"'):
        assert prop["enum"] == re.findall(r'"([^"]+)"', typ)
    elif typ == "string[]":
        assert prop["type"] == "array" and prop["items"]["type"] == "string"
        listed = re.findall(r'"([a-z]+)"', rest)
        if listed:  # platforms: the description lists the allowed values
            assert prop["items"]["enum"] == listed
    else:
        assert prop["type"] == typ, (name, prop["type"], typ)
    default = re.search(r"\(default: ([^)]+)\)", rest)
    if default:
        expected = default.group(1)
        assert str(prop["default"]) == expected, (name, prop.get("default"), expected)
    max_chars = re.search(r"\(max (\d+) chars\)", rest)
    if max_chars:
        assert prop["maxLength"] == int(max_chars.group(1))
    bounds = re.search(r"\((\d+)[–-](\d+)\)", rest)
    if bounds:
        assert (prop["minimum"], prop["maximum"]) == (int(bounds.group(1)), int(bounds.group(2)))


def test_platforms_row_lists_the_three_platforms():
    rest = field_table()["platforms"]["rest"]
    assert re.findall(r'"([a-z]+)"', rest) == ["tiktok", "youtube", "instagram"]


def test_upload_and_rate_limit_numbers_match_the_reference():
    text = API_REF.read_text(encoding="utf-8")
    assert "max 500MB" in text and "500MB max upload size" in text


@pytest.mark.skipif(not SHARED_REF.exists(), reason="../shared is not beside this checkout")
def test_repo_copy_of_the_reference_matches_shared():
    assert API_REF.read_bytes() == SHARED_REF.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_valid_2020_12(kind):
    s = schema(kind)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(s)


def _properties(node, path=""):
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield f"{path}.{key}".lstrip("."), value
            yield from _properties(value, f"{path}.{key}")
        for key in ("$defs",):
            for name, value in node.get(key, {}).items():
                yield from _properties(value, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from _properties(node["items"], path + "[]")


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description_and_an_example(kind):
    s = schema(kind)
    missing = []
    for path, prop in _properties(s):
        if "description" not in prop:
            missing.append(f"{path}: description")
        target = prop
        if "$ref" in prop:
            ref = prop["$ref"]
            doc, _, pointer = ref.partition("#")
            target = schema(doc.removesuffix(".schema.json")) if doc else s
            for part in filter(None, pointer.split("/")):
                target = target[part]
        if "examples" not in target and "examples" not in prop:
            missing.append(f"{path}: examples")
    assert not missing, missing


def test_examples_in_the_job_schema_are_valid_values():
    job = schema("job")
    v = validator("job")
    for name, prop in job["properties"].items():
        for example in prop.get("examples", []):
            errors = [e for e in v.evolve(schema=prop).iter_errors(example)] if "$ref" not in prop else []
            assert not errors, (name, example, errors)


def test_template_schema_covers_every_job_field_but_name_and_matrix():
    job = set(schema("job")["properties"])
    tpl = set(schema("template")["properties"])
    assert job - tpl == {"matrix"}
    # a template's name is its display name (POST /templates), not a job id
    assert {"id", "name", "description"} <= tpl
    assert "$ref" not in schema("template")["properties"]["name"]


def test_schemas_ship_inside_the_package():
    assert (schema_dir() / "job.schema.json").is_file()
    for kind in KINDS:
        assert json.loads((schema_dir() / f"{kind}.schema.json").read_text()) == schema(kind)
    assert Path(schema_dir()).resolve() == (ROOT / "schemas").resolve()


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["fetch", "upload", "compose", "generate", "short", "long", "tiktok", "youtube",
                     "instagram", "immediate", "scheduled", "manual", "hype", "https://x.org/v", "ftp://x",
                     "https://x.org:99999/v", "2026-05-26T09:00:00Z", "2026-13-01T00:00:00Z",
                     "2026-05-26 09:00:00+02:00", "media/a.mp4", "a" * 501, "", "file_1", "#FFD400", "white"]),
)
_LEAF_OR_LIST = st.one_of(_VALUES, st.lists(_VALUES, max_size=3))
_DOCS = st.dictionaries(
    st.sampled_from(list(schema("job")["properties"]) + ["bogus"]),
    st.one_of(_LEAF_OR_LIST, st.dictionaries(
        st.sampled_from(["layout", "captions", "voice", "title", "music", "size", "file", "game", "uppercase"]),
        st.one_of(_LEAF_OR_LIST, st.dictionaries(st.sampled_from(["size", "color", "file", "seconds"]),
                                                 _VALUES, max_size=2)), max_size=3)),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(_DOCS, st.sampled_from(["job", "template", "control"]))
def test_fast_validator_agrees_with_the_reference_validator(doc, kind):
    fast = fast_validator(kind)
    assert fast is not None
    reference = not any(True for _ in validator(kind).iter_errors(doc))
    assert fast.is_valid(doc) == reference, doc
