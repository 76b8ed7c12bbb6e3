"""The Jinja2 sandbox behind afx.spec.vars (imported only when a spec uses {{ }}).

See afx.spec.vars for the rules this enforces.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from afx.spec.budget import BUDGET, MAX_NODES, MAX_OUTPUT, MAX_SOURCE, VarError, largest, slug, spend, weight

_SAFE_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "rfind", "rpartition", "rsplit", "rstrip",
    "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
})
_SAFE_DATE_ATTRS = frozenset({"year", "month", "day", "weekday", "isoweekday", "isocalendar", "isoformat",
                              "strftime"})
_SAFE_ATTRS: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _SAFE_STR_METHODS),
    ((_dt.date, _dt.datetime), _SAFE_DATE_ATTRS),
    ((list, tuple), frozenset({"index", "count"})),
    (dict, frozenset({"items", "keys", "values", "get"})),
)
# Filters that cannot build more than their input: used as Jinja ships them.
_PLAIN_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "int", "items",
    "last", "length", "lower", "max", "min", "reverse", "round", "sort", "title", "trim",
    "truncate", "unique", "upper", "urlencode", "wordcount",
)
# Filters whose result may be larger than their input: charged to the budget first.
_CHARGED_FILTERS = ("list", "string", "tojson")
_FORBIDDEN_NODES = (
    nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Assign, nodes.AssignBlock,
    nodes.With, nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.Block,
    nodes.Scope, nodes.ScopedEvalContextModifier, nodes.EvalContextModifier,
)
_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs", "super"})
_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")

_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("afx_vars_budget")


def charge(amount: int, what: str = "expression") -> None:
    """Spend from the current field's budget before building a value of `amount` characters."""
    box = _budget.get(None)
    if box is None:
        return
    box[0] -= max(amount, 0)
    if box[0] < 0 or amount > MAX_OUTPUT:
        raise SecurityError(f"{what} would build more than {BUDGET} characters")


def _widths(fmt: str) -> int:
    total = 0
    for m in _WIDTH.finditer(fmt):
        for part in m.groups():
            if part == "*" or (part and int(part) > 1000):
                raise SecurityError("format widths over 1000 are not allowed")
            total += int(part) if part else 0
    return total


class SpecEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            seq, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
                charge(weight(seq) * max(count, 0), "repetition")
            else:
                charge(weight(left) + weight(right))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and (
                    abs(right) > 256 or abs(left).bit_length() * abs(right) > 4096):
                raise SecurityError("power is too large")
        elif operator == "+":
            charge(weight(left) + weight(right), "joining")
        elif operator == "%" and isinstance(left, str):
            charge(weight(left) + weight(right) + _widths(left), "formatting")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return any(isinstance(obj, types) and attr in allowed for types, allowed in _SAFE_ATTRS)

    def wrap_str_format(self, value: Any) -> Any:
        if super().wrap_str_format(value) is None:
            return None

        def refuse(*_a: Any, **_k: Any) -> str:
            # `'{:>1000000000}'.format(1)`: widths inside format specs are not checkable cheaply.
            raise SecurityError("str.format is not allowed in specs; use ~ to join text")

        return refuse


def _bounded_join(value: Any, d: str = "", attribute: Any = None) -> str:
    items = [str(v) for v in value]
    charge(sum(map(len, items)) + len(d) * max(len(items) - 1, 0), "join")
    return d.join(items)


def _bounded_replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    charge(len(text) + hits * max(len(new) - len(old), 0), "replace")
    return text.replace(old, new) if count is None else text.replace(old, new, count)


def _charged(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # list('abc') and tojson roughly triple their input; charge that up front. tojson
        # is called with Jinja's eval context first.
        value = args[1] if name == "tojson" else args[0]
        charge(3 * weight(value) + 2, name)
        return fn(*args, **kwargs)

    return wrapper


@functools.cache
def environment() -> SpecEnvironment:
    env = SpecEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    builtin = env.filters
    env.filters = {name: builtin[name] for name in _PLAIN_FILTERS}
    env.filters.update({name: _charged(name, builtin[name]) for name in _CHARGED_FILTERS})
    env.filters.update(join=_bounded_join, replace=_bounded_replace, slug=slug)
    env.globals = {}
    return env


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> tuple[Any, int, int]:
    """(ast, its number of nodes, its number of names), checked: no forbidden construct."""
    env = environment()
    try:
        ast = env.parse(source)
        size = sum(1 for _ in ast.find_all(nodes.Node))
        if size > MAX_NODES:  # compiling costs ~40 us a node: refuse before paying it (issue 11)
            raise VarError(f"the field's expressions have {size} parts; the limit is {MAX_NODES}",
                           "put the repeated text in a variable, or write it out")
        for bad in _FORBIDDEN_NODES:
            found = next(ast.find_all(bad), None)
            if found is not None:
                raise VarError(f"{{% {type(found).__name__.lower()} %}} is not allowed",
                               "spec fields may use {{ expressions }} and {% if %} only")
        names = 0
        for node in ast.find_all(nodes.Name):
            if node.name in _SPECIAL_NAMES:
                raise VarError(f"{node.name!r} is not available in specs")
            names += 1
        return ast, size, names
    except TemplateSyntaxError as exc:  # includes unknown filters and tests
        raise VarError(f"template syntax error: {exc.message}") from None
    except (RecursionError, SyntaxError, MemoryError):
        raise VarError(_TOO_COMPLEX) from None


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    ast, _, _ = _parse(source)
    try:
        return environment().from_string(ast)
    except TemplateSyntaxError as exc:  # unknown filters and tests are found compiling
        raise VarError(f"template syntax error: {exc.message}") from None
    except (RecursionError, SyntaxError, MemoryError):
        raise VarError(_TOO_COMPLEX) from None


_TOO_COMPLEX = "expression is nested too deeply or is too complex"



def render(source: str, variables: Mapping[str, Any], largest_var: int | None = None) -> str:
    """Render one string field. Raises VarError with a message fit for a diagnostic."""
    if len(source) > MAX_SOURCE:
        raise VarError(f"template text is longer than {MAX_SOURCE} characters")
    _, size, names = _parse(source)
    spend(nodes=size)  # the job's budget, before compiling
    template = _compile(source)
    if largest_var is None:
        largest_var = largest(variables)
    if names * largest_var > BUDGET:
        raise VarError(f"expression could expand to more than {BUDGET} characters",
                       "name large variables fewer times")
    out: list[str] = []
    size = 0
    token = _budget.set([BUDGET])
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise VarError(f"rendered text is longer than {MAX_OUTPUT} characters")
            out.append(chunk)
    except UndefinedError as exc:
        raise _undefined(exc, variables) from None
    except SecurityError as exc:
        raise VarError(f"not allowed in a spec: {exc}") from None
    except TemplateError as exc:
        raise VarError(f"template error: {exc}") from None
    except (RecursionError, MemoryError):
        raise VarError(_TOO_COMPLEX) from None
    except (ArithmeticError, ValueError, TypeError, LookupError) as exc:
        raise VarError(f"expression failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        _budget.reset(token)
    return "".join(out)



def _undefined(exc: UndefinedError, variables: Mapping[str, Any]) -> VarError:
    from afx.spec.schema import did_you_mean  # local: schema imports jsonschema, keep this light

    message = exc.message or ""
    m = re.match(r"'([^']+)' is undefined", message) or re.search(r"has no attribute '([^']+)'", message)
    name = m.group(1) if m else ""
    choices = [k for k in variables if not k.startswith("_")]
    hint = did_you_mean(name, choices) if name else ""
    if not hint:
        hint = "defined: " + ", ".join(sorted(choices)) if choices else "define it under vars"
    return VarError(f"undefined variable {name!r}" if name else (message[:200] or "undefined"), hint)
