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

import datetime as _dt
import os
from collections.abc import Mapping
from typing import Any

from afx.spec.budget import (  # noqa: F401 - vars has always offered these names
    BUDGET,
    MAX_EXPRESSIONS,
    MAX_JOB_EXPRESSIONS,
    MAX_JOB_NODES,
    MAX_JOB_OUTPUT,
    MAX_NODES,
    MAX_OUTPUT,
    MAX_SOURCE,
    BudgetError,
    VarError,
    job_budget,
    largest,
    slug,
    spend,
    weight,
)

_MARKERS = ("{{", "{%", "{#")


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
