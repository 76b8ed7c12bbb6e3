"""{{ variables }} in string fields: sandboxed, strict, bounded Jinja2.

Specs are hostile input (architecture.md). Beyond `ImmutableSandboxedEnvironment` and
`StrictUndefined`, a spec expression
- may use `{{ ... }}` and `{% if %}` only: no loops, macros, assignments or includes, so
  evaluation time is linear in the text;
- has no `range`, `lipsum` or other globals, a short list of filters, and only harmless
  string methods (no `center`, `ljust`, `zfill`, `replace`, `join`, `format`...), because
  each of those turns a few bytes of spec into gigabytes;
- checks `*`, `**`, `+` and `%` before computing them, and stops output at MAX_OUTPUT;
- may not name large variables so often that the output could explode (`{{ x ~ x ~ x ...}}`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import re
from typing import Any, Mapping

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_OUTPUT = 256 * 1024  # characters per rendered field (script may be long-form)
MAX_SOURCE = 64 * 1024  # characters of template text per field
_MARKERS = ("{{", "{%", "{#")

_SAFE_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "rfind", "rpartition", "rsplit", "rstrip",
    "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
})
_SAFE_DATE_ATTRS = frozenset({
    "year", "month", "day", "weekday", "isoweekday", "isocalendar", "isoformat", "strftime",
})
_ALLOWED_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "last", "length",
    "list", "lower", "max", "min", "reverse", "round", "sort", "string", "sum", "title",
    "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount", "map",
    "select", "reject", "selectattr", "rejectattr", "attr", "dictsort", "items",
)
_FORBIDDEN_NODES = (
    nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Assign, nodes.AssignBlock,
    nodes.With, nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.Block,
    nodes.Scope, nodes.ScopedEvalContextModifier, nodes.EvalContextModifier,
)
_WIDTH = re.compile(r"%[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


class VarError(Exception):
    """A problem rendering one field: the message names what went wrong, the caller names where."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_width(fmt: str) -> None:
    for m in _WIDTH.finditer(fmt):
        for part in m.groups():
            if part == "*" or (part and int(part) > 1000):
                raise SecurityError("format widths over 1000 are not allowed")


class SpecEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            count = right if _sized(left) or isinstance(left, str) else left
            seq = left if isinstance(left, (str, list, tuple)) else right
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                if len(seq) * max(count, 0) > MAX_OUTPUT:
                    raise SecurityError(f"result would be longer than {MAX_OUTPUT} characters")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and (
                    abs(right) > 256 or abs(left).bit_length() * abs(right) > 4096):
                raise SecurityError("power is too large")
        elif operator == "+":
            if _sized(left) + _sized(right) > MAX_OUTPUT:
                raise SecurityError(f"result would be longer than {MAX_OUTPUT} characters")
        elif operator == "%" and isinstance(left, str):
            _check_width(left)
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _SAFE_STR_METHODS
        if isinstance(obj, (_dt.date, _dt.datetime)):
            return attr in _SAFE_DATE_ATTRS
        if isinstance(obj, (list, tuple)):
            return attr in ("index", "count")
        if isinstance(obj, dict):
            return attr in ("items", "keys", "values", "get")
        return True

    def wrap_str_format(self, value: Any) -> Any:
        if super().wrap_str_format(value) is None:
            return None

        def refuse(*_a: Any, **_k: Any) -> str:
            # `'{:>1000000000}'.format(1)`: widths inside format specs are not checkable cheaply.
            raise SecurityError("str.format is not allowed in specs; use ~ to join text")

        return refuse


def _bounded_join(value: Any, d: str = "", attribute: Any = None) -> str:
    items = [str(v) for v in value]
    if sum(map(len, items)) + len(d) * max(len(items) - 1, 0) > MAX_OUTPUT:
        raise SecurityError(f"join result would be longer than {MAX_OUTPUT} characters")
    return d.join(items)


def _bounded_replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    s = str(s)
    hits = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(s) + hits * max(len(new) - len(old), 0) > MAX_OUTPUT:
        raise SecurityError(f"replace result would be longer than {MAX_OUTPUT} characters")
    return s.replace(old, new) if count is None else s.replace(old, new, count)


def slug(value: Any) -> str:
    """Lower-case, ASCII letters and digits joined by '-': safe in file and job names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(slug(v) for v in value) or "none"
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value)).strip("-").lower()
    return text or "x"


@functools.cache
def environment() -> SpecEnvironment:
    env = SpecEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    builtin = env.filters
    env.filters = {name: builtin[name] for name in _ALLOWED_FILTERS}
    env.filters.update(join=_bounded_join, replace=_bounded_replace, slug=slug)
    env.globals = {}
    return env


def has_markup(text: str) -> bool:
    return any(m in text for m in _MARKERS)


def today() -> _dt.date:
    """Today's date, or the date of SOURCE_DATE_EPOCH for reproducible builds and tests."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc).date()
    return _dt.date.today()


def builtins(job_name: str) -> dict[str, Any]:
    day = today()
    return {
        "today": day.isoformat(),
        "date": day,
        "year": day.year,
        "week": day.isocalendar()[1],
        "job": job_name,
    }


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    env = environment()
    try:
        ast = env.parse(source)
        for bad in _FORBIDDEN_NODES:
            found = next(ast.find_all(bad), None)
            if found is not None:
                raise VarError(f"{{% {type(found).__name__.lower()} %}} is not allowed",
                               "spec fields may use {{ expressions }} and {% if %} only")
        names = sum(1 for _ in ast.find_all(nodes.Name))
        return env.from_string(ast), names
    except TemplateSyntaxError as exc:  # includes unknown filters and tests
        raise VarError(f"template syntax error: {exc.message}") from None


def _largest(variables: Mapping[str, Any]) -> int:
    largest = 0
    for value in variables.values():
        if isinstance(value, str):
            size = len(value)
        elif isinstance(value, (int, float, bool)) or value is None:
            size = 24
        else:
            size = len(json.dumps(value, default=str))
        largest = max(largest, size)
    return largest


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render one string field. Raises VarError with a message fit for a diagnostic."""
    if len(source) > MAX_SOURCE:
        raise VarError(f"template text is longer than {MAX_SOURCE} characters")
    template, names = _compile(source)
    if names * _largest(variables) > 4 * MAX_OUTPUT:
        raise VarError("expression could expand to more than "
                       f"{4 * MAX_OUTPUT} characters", "name large variables fewer times")
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise VarError(f"rendered text is longer than {MAX_OUTPUT} characters")
            out.append(chunk)
    except UndefinedError as exc:
        name = _undefined_name(exc.message or "")
        choices = [k for k in variables if not k.startswith("_")]
        from afx.spec.schema import did_you_mean  # local: schema imports jsonschema, keep this light

        hint = did_you_mean(name, choices) if name else ""
        if not hint:
            hint = "defined: " + ", ".join(sorted(choices)) if choices else "define it under vars"
        raise VarError(f"undefined variable {name!r}" if name else (exc.message or "undefined"), hint) from None
    except SecurityError as exc:
        raise VarError(f"not allowed in a spec: {exc}") from None
    except TemplateError as exc:
        raise VarError(f"template error: {exc}") from None
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise VarError(f"expression failed: {type(exc).__name__}: {exc}") from None
    return "".join(out)


def _undefined_name(message: str) -> str:
    m = re.match(r"'([^']+)' is undefined", message)
    if m:
        return m.group(1)
    m = re.search(r"has no attribute '([^']+)'", message)
    return m.group(1) if m else ""
