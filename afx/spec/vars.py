"""{{ variables }} in string fields: sandboxed, strict, bounded Jinja2.

Specs are hostile input (docs/architecture.md). Beyond `ImmutableSandboxedEnvironment` and
`StrictUndefined`, a spec expression
- may use `{{ ... }}` and `{% if %}` only: no loops, macros, assignments or includes, so
  evaluation time is linear in the text;
- has no globals (`range`, `lipsum`...), a short allow-list of filters, and attributes only
  from an allow-list per type (harmless `str` and `date` methods; nothing on numbers);
- pays for every value it builds from one budget per field: `*`, `+`, `%`, `join`,
  `replace`, `list`, `string`, `tojson` are charged the size of their result *before* it
  is built, so `['a' * 200000] * 2000` fails instead of allocating;
- may not name large variables so often that the output could explode (`{{ x ~ x ~ ...}}`);
- stops its output at MAX_OUTPUT characters;
- holds at most MAX_EXPRESSIONS `{{ }}` / `{% %}` per field, counted before anything is
  compiled: compiling is the expensive part (5,900 `{{ afx.job }}` took seconds, issue 11),
  and a job's rendered fields together are held to MAX_JOB_OUTPUT (afx.spec.resolve).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

MAX_OUTPUT = 256 * 1024  # characters per rendered field (a long-form script fits)
MAX_SOURCE = 64 * 1024  # characters of template text per field
BUDGET = 4 * MAX_OUTPUT  # characters of intermediate values one field may build
MAX_EXPRESSIONS = 256  # {{ }} and {% %} per field: a spec names a variable a few times
MAX_NODES = 2000  # parts (names, operators, constants...) of one field's expressions, checked before compiling
MAX_JOB_OUTPUT = 4 * MAX_OUTPUT  # characters all rendered fields of one job may add up to
MAX_JOB_EXPRESSIONS = 1024  # {{ }} and {% %} in all fields of one job
MAX_JOB_NODES = 8000  # expression parts in all fields of one job (~0.3 s of compiling)
_job_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("afx_job_budget", default=None)
_MARKERS = ("{{", "{%", "{#")


class VarError(Exception):
    """A problem rendering one field: the message names what went wrong, the caller names where."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint



@contextlib.contextmanager
def job_budget() -> Iterator[None]:
    """Fields rendered inside share one job's budget of expressions and expression parts."""
    token = _job_budget.set([MAX_JOB_EXPRESSIONS, MAX_JOB_NODES])
    try:
        yield
    finally:
        _job_budget.reset(token)


class BudgetError(VarError):
    """The job as a whole is over a budget: the other fields are not rendered."""


def spend(expressions: int = 0, nodes: int = 0) -> None:
    box = _job_budget.get()
    if box is None:
        return
    box[0] -= expressions
    box[1] -= nodes
    if box[0] < 0:
        raise BudgetError(f"the job's fields hold more than {MAX_JOB_EXPRESSIONS} {{{{ }}}} expressions in all",
                       "put the repeated text in a variable, or write it out")
    if box[1] < 0:
        raise BudgetError(f"the job's expressions have more than {MAX_JOB_NODES} parts in all",
                       "put the repeated text in a variable, or write it out")


def weight(value: Any, limit: int = BUDGET) -> int:
    """Roughly how many characters `value` holds; stops counting past `limit`."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if isinstance(value, float):
        return 24
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        total = len(value)
        items = value.items() if isinstance(value, dict) else ((v, None) for v in value)
        for a, b in items:
            total += weight(a, limit) + (weight(b, limit) if b is not None else 0)
            if total > limit:
                return limit + 1
        return total
    if isinstance(value, Mapping):
        return weight(dict(value), limit)
    return 32



def slug(value: Any) -> str:
    """Lower-case, ASCII letters and digits joined by '-': safe in file and job names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(slug(v) for v in value) or "none"
    if isinstance(value, int) and value.bit_length() > 128:
        return "n"
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value)[:200]).strip("-").lower()
    return text or "x"



def has_markup(text: str) -> bool:
    return any(m in text for m in _MARKERS)



def today() -> _dt.date:
    """Today's date, or the date of SOURCE_DATE_EPOCH for reproducible builds and tests."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC).date()
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



def largest(variables: Mapping[str, Any]) -> int:
    """Weight of the largest variable: with the count of names, bounds what `~` can build."""
    return max((weight(v) for v in variables.values()), default=0)



def render(source: str, variables: Mapping[str, Any], largest_var: int | None = None) -> str:
    """Render one string field. Raises VarError with a message fit for a diagnostic."""
    if len(source) > MAX_SOURCE:
        raise VarError(f"template text is longer than {MAX_SOURCE} characters")
    count = source.count("{{") + source.count("{%")
    if count > MAX_EXPRESSIONS:
        raise VarError(f"{count} {{{{ }}}} expressions in one field; the limit is {MAX_EXPRESSIONS}",
                       "put the repeated text in a variable, or write it out")
    spend(expressions=count)
    from afx.spec import sandbox  # Jinja is imported only by specs that use it

    return sandbox.render(source, variables, largest_var)
