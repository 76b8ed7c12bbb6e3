"""The merge rule for templates, with provenance.

Rule (docs/specs.md, issue 2): mappings merge deeply, lists are replaced, `null` removes a
key, and the overriding document (the job, or a child template) wins.

Every value carries where it was written, so an error in a merged job still points at the
template line that supplied the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from afx.spec.load import Document, Mark, Path_


@dataclass
class Origins:
    """path -> (file, key mark, value mark) for every value of a merged document."""

    table: dict[Path_, tuple[str, Mark, Mark]] = field(default_factory=dict)
    fallback: tuple[str, Mark] = ("", Mark(1, 1))

    @classmethod
    def of(cls, doc: Document) -> Origins:
        return cls({p: (doc.file, k, v) for p, (k, v) in doc.marks.items()}, (doc.file, doc.start))

    def locate(self, path: Path_, *, at_key: bool = False) -> tuple[str, Mark]:
        path = tuple(path)
        while path not in self.table and path:
            path = path[:-1]
        if path not in self.table:
            return self.fallback
        file, key, value = self.table[path]
        return file, key if at_key else value

    def subtree(self, prefix: Path_) -> dict[Path_, tuple[str, Mark, Mark]]:
        n = len(prefix)
        return {p: o for p, o in self.table.items() if p[:n] == prefix}

    def prune(self, prefix: Path_, depth: int) -> None:
        """Forget marks deeper than `depth` below `prefix` (vars contents: never needed again)."""
        n = len(prefix)
        for p in [p for p in self.table if p[:n] == prefix and len(p) > n + depth]:
            del self.table[p]

    def drop(self, prefix: Path_) -> None:
        for p in list(self.subtree(prefix)):
            del self.table[p]

    def graft(self, prefix: Path_, other: Origins, other_prefix: Path_) -> None:
        """Copy other's entries under other_prefix to this table under prefix."""
        self.drop(prefix)
        n = len(other_prefix)
        for p, o in other.subtree(other_prefix).items():
            self.table[prefix + p[n:]] = o


def merge(base: dict[str, Any], base_origins: Origins, over: dict[str, Any], over_origins: Origins,
          skip: frozenset[str] = frozenset()) -> tuple[dict[str, Any], Origins]:
    """A new document: `over` merged onto `base`. Neither input is modified.

    `skip` names top-level keys of `base` that are not inherited (a template's id, name...).
    """
    origins = Origins(dict(base_origins.table), over_origins.fallback)
    for key in skip:
        origins.drop((key,))
    result = {k: v for k, v in base.items() if k not in skip}
    _merge_into(result, over, (), origins, over_origins)
    return _strip_nulls(result, (), origins), origins


def _merge_into(target: dict[str, Any], over: dict[str, Any], path: Path_, origins: Origins,
                over_origins: Origins) -> None:
    for key, value in over.items():
        here = path + (key,)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merged = dict(target[key])
            # Keep the key's own mark pointing at the overriding document.
            if here in over_origins.table:
                origins.table[here] = over_origins.table[here]
            _merge_into(merged, value, here, origins, over_origins)
            target[key] = merged
        else:
            target[key] = value
            origins.graft(here, over_origins, here)


def _strip_nulls(doc: Any, path: Path_, origins: Origins) -> Any:
    """`null` in a mapping removes the key (after merging, so it can cancel a template's value)."""
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key, value in doc.items():
        if value is None:
            origins.drop(path + (key,))
            continue
        out[key] = _strip_nulls(value, path + (key,), origins) if isinstance(value, dict) else value
    return out
