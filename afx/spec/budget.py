"""What one field and one job of a spec may cost (issue 11), and the errors for going over.

The sandbox (afx/spec/sandbox.py) charges what expressions build; afx/spec/vars.py counts
expressions before anything is compiled; afx/spec/resolve.py holds a job's fields to their
sum. `slug`, the safe-name filter, is here too: the sandbox and the matrix both use it, and
the sandbox imports nothing of vars (which imports the sandbox).
"""

from __future__ import annotations

import contextlib
import contextvars
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


def largest(variables: Mapping[str, Any]) -> int:
    """Weight of the largest variable: with the count of names, bounds what `~` can build."""
    return max((weight(v) for v in variables.values()), default=0)
