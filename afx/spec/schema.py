"""The JSON Schemas in schemas/ and their errors as afx diagnostics; the only reader of schemas/.

The schemas are committed files; the parts that list registry names (platforms, publishers,
layouts, caption styles) are written from the registries by `make schemas` (afx/extensions.py).

Schema errors are turned into `file:line:col: field: message` with the field's own words:
- an unknown key gets `did you mean "durationMins"?`,
- a cross-field rule (under `allOf`) reports its `errorMessage` at the field it names,
- a pattern failure reports the property's `patternErrorMessage` instead of the regex.
`errorMessage` and `patternErrorMessage` are the keywords editors (yaml-language-server)
show too, so the editor and `afx validate` say the same thing.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from afx import times
from afx.errors import Diagnostic
from afx.spec.load import Mark, Path_, dotted

if TYPE_CHECKING:  # both are imported only when needed (see validator, fast_validator)
    import jsonschema_rs
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

KINDS = ("job", "template", "config")
# Fields read before templates are merged or a matrix expanded (the rest is checked after).
_CONTROL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {k: {"$ref": f"job.schema.json#/properties/{k}"}
                   for k in ("name", "fromTemplateId", "vars", "matrix")},
}


def schema_dir() -> Path:
    """The schemas shipped in the package (afx/schemas links to the repo's schemas/)."""
    return Path(str(resources.files("afx") / "schemas"))


@functools.cache
def schema_text(kind: str) -> str:
    return (schema_dir() / f"{kind}.schema.json").read_text(encoding="utf-8")


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    if kind == "control":
        return _CONTROL
    data: dict[str, Any] = json.loads(schema_text(kind))
    return data


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    # The pattern already asks for a UTC offset; this catches month 13 and the like.
    times.parse(value)
    return True


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    _ = parts.port  # raises ValueError for a port out of range
    return True


@functools.cache
def validator(kind: str) -> Validator:
    """The reference (Python) validator: located, detailed errors. Imported only when needed:
    valid documents never get here (see fast_validator)."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    checker.checks("uri", raises=ValueError)(_is_uri)
    registry: Registry = Registry().with_resources(
        (f"{k}.schema.json", Resource.from_contents(schema(k), default_specification=DRAFT202012)) for k in KINDS
    )
    cls = jsonschema.validators.validator_for(schema(kind))
    return cls(schema(kind), registry=registry, format_checker=checker)


def _as_predicate(check: Callable[[object], bool]) -> Callable[[str], bool]:
    def predicate(value: str) -> bool:
        try:
            return bool(check(value))
        except ValueError:
            return False

    return predicate


@functools.cache
def fast_validator(kind: str) -> jsonschema_rs.Validator | None:
    """jsonschema-rs compiled validator: a yes/no answer in microseconds, or None if absent.

    Valid documents (nearly all of them) never reach the Python validator, which is only
    asked for the detailed, located errors. Both use afx's own format checks, so they agree
    (tests/spec/test_schema.py checks that on generated documents).
    """
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - it is a dependency; the slow path still works
        return None
    registry = jsonschema_rs.Registry([(f"{k}.schema.json", schema(k)) for k in KINDS])
    return jsonschema_rs.validator_for(
        schema(kind), registry=registry, validate_formats=True,
        formats={"date-time": _as_predicate(_is_datetime), "uri": _as_predicate(_is_uri)})


class Locator(Protocol):
    """Finds where a field of a (possibly merged) document was written."""

    def locate(self, path: Path_, *, at_key: bool = False) -> tuple[str, Mark]: ...


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = [c for c in choices if isinstance(c, str)]
    lowered = {c.lower(): c for c in choices}
    if isinstance(word, str) and word.lower() in lowered:
        return f'did you mean "{lowered[word.lower()]}"?'
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else ""


def preview(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
               int: "a number", float: "a number"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _expected(spec: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
             "integer": "a whole number", "boolean": "true or false", "null": "null"}
    if isinstance(spec, list):
        return " or ".join(names.get(s, str(s)) for s in spec)
    return names.get(spec, str(spec))


def _walk(root: dict[str, Any], schema_path: Iterable[Any]) -> list[dict[str, Any]]:
    """The schema objects visited along an error's schema path, outermost first."""
    out: list[dict[str, Any]] = []
    node: Any = root
    for part in schema_path:
        if isinstance(node, dict):
            out.append(node)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    if isinstance(node, dict):
        out.append(node)
    return out


def _deref(kind: str, node: Any) -> Any:
    """Follow $ref (local, or to another afx schema) until a real definition."""
    for _ in range(8):
        if not isinstance(node, dict) or "$ref" not in node:
            break
        doc, _, pointer = node["$ref"].partition("#")
        target: Any = schema(doc.removesuffix(".schema.json")) if doc else schema(kind)
        for part in filter(None, pointer.split("/")):
            target = target[part]
        node = target
    return node


def _takes_text(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind) or (
        "enum" in node and any(isinstance(e, str) for e in node["enum"]))


def string_paths(kind: str, data: Any) -> list[Path_]:
    """Paths in `data` holding a string where the schema declares a string field.

    Unknown keys are not visited: variables are rendered only in fields afx knows.
    """
    def walk(value: Any, node: Any, path: Path_) -> Iterator[Path_]:
        node = _deref(kind, node)
        if not isinstance(node, dict):
            return
        if isinstance(value, str):
            if _takes_text(node):
                yield path
        elif isinstance(value, dict):
            props = node.get("properties", {})
            for key, child in value.items():
                if key in props:
                    yield from walk(child, props[key], path + (key,))
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, child in enumerate(value):
                yield from walk(child, node["items"], path + (i,))

    return list(walk(data, schema(kind), ()))


_DEFERRED = frozenset({"pattern", "format", "maxLength", "minLength", "enum", "const"})


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def diagnostics(kind: str, instance: Any, where: Locator, *, raw: bool = False) -> list[Diagnostic]:
    """Validate `instance` against schema `kind`; every problem as a located diagnostic.

    raw: the document is not rendered yet, so a string holding {{ ... }} is not checked for
    its pattern, length or value here; the resolved job is checked in full later.
    """
    fast = fast_validator(kind)
    if fast is not None and fast.is_valid(instance):
        return _orders(instance, where, set())
    root = schema(kind)
    out: list[Diagnostic] = []
    rules: list[Diagnostic] = []
    rules_seen: set[int] = set()
    for err in validator(kind).iter_errors(instance):
        path = tuple(err.absolute_path)
        if raw and err.validator in _DEFERRED and _templated(err.instance):
            continue
        walked = _walk(root, err.schema_path)
        rule = next((n for n in reversed(walked) if "errorMessage" in n), None)
        if rule is None:
            out.extend(_plain(err, path, where))
        elif id(rule) not in rules_seen:
            # Cross-field rules sit at the top of a document; they blame one field.
            rules_seen.add(id(rule))
            field = rule.get("x-afx-field", "")
            at = next((f for f in rule.get("x-afx-at", []) if isinstance(instance, dict) and f in instance), None)
            file, mark = where.locate((at,) if at else (), at_key=True)
            rules.append(Diagnostic(file, mark.line, mark.column, field, rule["errorMessage"]))
    # A field that already broke its own limit (200 > 120) need not also break a rule.
    blamed = {d.path for d in out}
    return out + [d for d in rules if d.path not in blamed] + _orders(instance, where, blamed)


def _orders(instance: Any, where: Locator, blamed: set[str]) -> list[Diagnostic]:
    """Bounds one field holds against another, which JSON Schema cannot say: clips.min at
    most clips.max (its default, 45, when max is not given)."""
    clips = instance.get("clips") if isinstance(instance, dict) else None
    if not isinstance(clips, dict) or "clips.min" in blamed or "clips.max" in blamed:
        return []
    low, high = clips.get("min", 15), clips.get("max", 45)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low <= high:
        return []
    at = ("clips", "min") if "min" in clips else ("clips", "max")
    file, mark = where.locate(at)
    return [Diagnostic(file, mark.line, mark.column, "clips.min",
                       f"the shortest clip ({low:g} s) is longer than the longest ({high:g} s)",
                       "make clips.min at most clips.max")]


def _plain(err: ValidationError, path: Path_, where: Locator) -> list[Diagnostic]:
    v = err.validator
    value: Any = err.instance  # the value the keyword judged: any JSON value
    want: Any = err.validator_value  # what the keyword asks for (a number, a list, a pattern...)
    sch = err.schema if isinstance(err.schema, dict) else {}
    if v == "additionalProperties" and isinstance(value, dict):
        known = set(sch.get("properties", {}))
        out = []
        for key in value:
            if key in known:
                continue
            file, mark = where.locate(path + (key,), at_key=True)
            out.append(Diagnostic(file, mark.line, mark.column, dotted(path + (key,)), "unknown field",
                                  did_you_mean(key, known)))
        return out
    if "propertyNames" in err.schema_path:
        file, mark = where.locate(path + (value,), at_key=True)
        msg = sch.get("patternErrorMessage") or f"{preview(value)} is not an allowed name"
        return [Diagnostic(file, mark.line, mark.column, dotted(path + (value,)), msg)]
    if v == "required":
        missing = [r for r in want if r not in value] if isinstance(value, dict) else []
        file, mark = where.locate(path, at_key=True)
        return [Diagnostic(file, mark.line, mark.column, dotted(path + (m,)), "is required") for m in missing]
    file, mark = where.locate(path)
    if v == "pattern" or v == "format":
        msg = sch.get("patternErrorMessage")
        if not msg:
            msg = f"{preview(value)} is not a valid {want}" if v == "format" else (
                f"{preview(value)} does not match {want}")
        else:
            msg = f"{preview(value)} {msg}" if v == "pattern" else f"{preview(value)}: {msg}"
        return [Diagnostic(file, mark.line, mark.column, dotted(path), msg)]
    if v == "type":
        msg = f"expected {_expected(want)}, got {_type_name(value)} {preview(value)}"
        return [Diagnostic(file, mark.line, mark.column, dotted(path), msg)]
    if v == "enum":
        choices = want
        msg = f"{preview(value)} is not one of {', '.join(json.dumps(c) for c in choices)}"
        return [Diagnostic(file, mark.line, mark.column, dotted(path), msg, did_you_mean(str(value), choices))]
    if v in ("maxLength", "minLength") and isinstance(value, str):
        word = "at most" if v == "maxLength" else "at least"
        msg = f"is {len(value)} characters long; it must be {word} {want}"
        return [Diagnostic(file, mark.line, mark.column, dotted(path), msg)]
    if v in ("maxItems", "minItems", "maxProperties", "minProperties") and isinstance(value, (list, dict)):
        word = "at most" if v.startswith("max") else "at least"
        unit = "items" if isinstance(value, list) else "entries"
        msg = f"has {len(value)} {unit}; {word} {want} allowed"
        return [Diagnostic(file, mark.line, mark.column, dotted(path), msg)]
    if v == "uniqueItems":
        return [Diagnostic(file, mark.line, mark.column, dotted(path), f"{preview(value)} lists an item twice")]
    if v == "const":
        return [Diagnostic(file, mark.line, mark.column, dotted(path), f"must be {preview(want)}")]
    return [Diagnostic(file, mark.line, mark.column, dotted(path), _tidy(err.message))]


_QUOTED = re.compile(r"'([^']{60})[^']+'")


def _tidy(message: str) -> str:
    return _QUOTED.sub(lambda m: f"'{m.group(1)}...'", message)


def field_names(kind: str = "job") -> list[str]:
    return list(schema(kind)["properties"])
