"""The resolved, immutable Job every other part of afx works from (docs/architecture.md)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from afx.spec.load import Path_
from afx.spec.merge import Origins

# POST /jobs fields, in the order of the field reference (docs/auraflux-api-v1.txt).
API_FIELDS = ("entry", "url", "urls", "fileId", "topic", "tone", "format", "durationMins",
              "platforms", "publishMode", "staging", "fromTemplateId")
# Fields with a default in the field reference; a resolved job always has them.
DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "entry": "fetch", "format": "short", "durationMins": 1, "platforms": (), "publishMode": "immediate",
    "staging": False,
})
# Order of keys in a resolved job document (`afx resolve`): name first, then the API order.
FIELD_ORDER = ("name",) + API_FIELDS + ("file", "script", "scheduledAt", "copy", "render")


def freeze(value: Any) -> Any:
    # (a leaf is not passed down a call: 10,000 cached jobs are frozen on every run)
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) if isinstance(v, _NESTED) else v for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) if isinstance(v, _NESTED) else v for v in value)
    return value


_NESTED = (dict, list, tuple)


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Job:
    name: str
    fields: Mapping[str, Any]  # resolved: templates merged, variables rendered, defaults applied
    file: Path  # the spec file that defines the job
    display: str  # that file as shown to the user
    line: int
    root: Path  # the spec repo root
    template_chain: tuple[str, ...] = ()
    matrix: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    vars: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    base_name: str = ""  # the name as written, before matrix expansion
    paths: Mapping[Path_, Path] = field(default_factory=lambda: MappingProxyType({}))  # local files, absolute
    origins: Origins = field(default_factory=Origins, compare=False, repr=False)
    parent: str = ""  # a clip job: the job whose recording it was cut from (issue 14)

    def __reduce__(self) -> tuple[Callable[..., Job], tuple[Any, ...]]:
        # MappingProxyType does not pickle; parallel runs send jobs to worker processes.
        return (_rebuild, (self.name, thaw(self.fields), self.file, self.display, self.line, self.root,
                           self.template_chain, thaw(self.matrix), thaw(self.vars), self.base_name, self.origins,
                           dict(self.paths), self.parent))

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    @property
    def source(self) -> str:
        return f"{self.display}:{self.line}"

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the resolved document: equal digests mean equal jobs (computed once:
        the fields are immutable)."""
        return hashlib.sha256(canonical_json(self.fields).encode()).hexdigest()

    def derive(self, name: str, fields: Mapping[str, Any]) -> Job:
        """A job made from this one (a clip job of a job with clips): its own name and fields,
        this job's spec file, local files and provenance, and this job as its parent."""
        return Job(name=name, fields=freeze(thaw(fields)), file=self.file, display=self.display, line=self.line,
                   root=self.root, template_chain=self.template_chain, matrix=self.matrix, vars=self.vars,
                   base_name=name, paths=self.paths, origins=self.origins, parent=self.name)

    def local_path(self, key: str = "file") -> Path | None:
        """A local file field, resolved (and checked) by the resolver against the spec that wrote it."""
        return self.local_path_at((key,))

    def local_path_at(self, path: Path_) -> Path | None:
        return self.paths.get(tuple(path))

    def to_dict(self) -> dict[str, Any]:
        """The resolved job as a spec document (`afx resolve`)."""
        data = thaw(self.fields)
        ordered = {k: data[k] for k in FIELD_ORDER if k in data}
        ordered.update({k: v for k, v in data.items() if k not in ordered})
        return ordered

    def to_api_body(self, file_ids: Mapping[str, str] | None = None, *, extensions: bool = False) -> dict[str, Any]:
        """The exact POST /jobs body for this job.

        Templates are already merged, so fromTemplateId is not sent. A local `file` becomes a
        `fileId`: the one POST /upload returned (`file_ids`, keyed by the path as written), or
        a visible placeholder `upload:<path>` until it has been uploaded. With `extensions`
        (for an `afx serve` API), afx's own fields come too (script, copy, render, ...),
        except local file paths, which a server cannot read.
        """
        data = thaw(self.fields)
        if extensions:
            body = {k: v for k, v in data.items() if k not in ("name", "fromTemplateId", "file")}
            for path in LOCAL_PATHS:
                _drop(body, path)
        else:
            body = {k: data[k] for k in API_FIELDS if k in data and k != "fromTemplateId"}
        if "file" in data:
            body["fileId"] = (file_ids or {}).get(data["file"], f"upload:{data['file']}")
        order = list(API_FIELDS)
        return {k: body[k] for k in sorted(body, key=lambda k: (order.index(k) if k in order else len(order), k))}

    def local_only(self, *, extensions: bool = False) -> list[str]:
        """Fields this job has that to_api_body leaves out (to tell the user)."""
        sent = self.to_api_body({}, extensions=extensions)
        data = thaw(self.fields)
        out = [k for k in data if k not in sent and k not in ("name", "fromTemplateId", "file")]
        if extensions:
            out += [".".join(p) for p in LOCAL_PATHS if _has(data, p)]
        return out


LOCAL_PATHS = (("render", "music", "file"), ("render", "backgrounds"), ("render", "thumbnail", "file"))


def _has(data: Any, path: Path_) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _drop(data: Any, path: Path_) -> None:
    for part in path[:-1]:
        if not isinstance(data, dict) or part not in data:
            return
        data = data[part]
    if isinstance(data, dict):
        data.pop(path[-1], None)


def _rebuild(name: str, fields: dict[str, Any], file: Path, display: str, line: int, root: Path,
             chain: tuple[str, ...], matrix: dict[str, Any], variables: dict[str, Any], base_name: str,
             origins: Origins, paths: dict[Path_, Path], parent: str = "") -> Job:
    return Job(name=name, fields=freeze(fields), file=file, display=display, line=line, root=root,
               template_chain=chain, matrix=freeze(matrix), vars=freeze(variables), base_name=base_name,
               origins=origins, paths=MappingProxyType(paths), parent=parent)
