"""Registering an extension while afx runs, for tests: `with registered(layouts={...}): ...`.

In afx itself an extension is a module and a line in its registry, and the committed schemas
are made from the registries (afx/extensions.py, `make schemas`). An entry added while afx
runs must reach both: `registered` adds it to its registry and makes the schemas' registry
parts again, in memory (afx.extensions.apply on the loaded schema documents, whose compiled
validators are then dropped), so a spec naming it validates; on leaving, both are undone.

Registries are per process: the engine may run stages in other processes (spawned workers),
so a stage that needs an extension registers it where it runs (tests/engine/fakes.py wraps
its stages so). An entry that is already registered, as the same object, is left as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from afx import extensions
from afx.media.captions import STYLES, Style
from afx.media.layouts import LAYOUTS
from afx.media.layouts.base import Layout
from afx.publish.base import Publisher
from afx.publish.publishers import PUBLISHERS
from afx.spec import schema


@contextlib.contextmanager
def registered(*, layouts: Mapping[str, Layout] | None = None,
               publishers: Mapping[str, Callable[[], Publisher]] | None = None,
               caption_styles: Mapping[str, Style] | None = None) -> Iterator[None]:
    """These entries in their registries, and the schemas accepting them, until the block ends."""
    added: list[tuple[dict[str, Any], str]] = []
    try:
        _add(LAYOUTS, layouts, added)
        _add(PUBLISHERS, publishers, added)
        _add(STYLES, caption_styles, added)
        if added:
            _remake_schemas()
        yield
    finally:
        for registry, name in reversed(added):
            del registry[name]
        if added:
            _remake_schemas()


def _add(registry: dict[str, Any], entries: Mapping[str, Any] | None, added: list[tuple[dict[str, Any], str]]) -> None:
    for name, entry in (entries or {}).items():
        if name in registry:
            if registry[name] is not entry:
                raise ValueError(f"{name!r} is already registered as something else")
            continue
        registry[name] = entry
        added.append((registry, name))


def _remake_schemas() -> None:
    extensions.apply({kind: schema.schema(kind) for kind in schema.KINDS})
    schema.validator.cache_clear()
    schema.fast_validator.cache_clear()
