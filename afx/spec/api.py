"""Request bodies -> Jobs, through the same resolver as spec files (issue 7).

`afx serve` has no second validation path: a POST /jobs body is a spec document with no
file behind it. It is merged over the account's templates, its variables rendered, checked
against the same schema and turned into the same immutable Job. Diagnostics name the body
field (`body: durationMins: 200 is greater than the maximum of 120`), which the server turns
into a 422 naming the field.

What a spec repo may do and a request may not: name local files (a request uploads them
with POST /upload and passes `fileId`), and expand a matrix (one POST creates one job).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from afx.errors import Diagnostic, SpecError, shown
from afx.spec.job import Job, freeze
from afx.spec.load import Document, Mark, Path_
from afx.spec.merge import Origins
from afx.spec.repo import RepoFiles
from afx.spec.resolve import PATH_FIELDS, _Resolver
from afx.spec.schema import diagnostics

BODY = "body"
MAX_BODY = 256 * 1024  # bytes of JSON: a job is a few hundred; a template a few thousand
MAX_DEPTH = 32
_NOWHERE = Mark(0, 0)


class BodyError(SpecError):
    """A request body that is not JSON, or not an object, or too deep."""


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, bounded size and depth."""
    if len(raw) > MAX_BODY:
        raise BodyError([Diagnostic(BODY, 0, 0, "", f"the body is larger than {MAX_BODY // 1024} KB")])

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {shown(key)}")
            out[key] = value
        return out

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constant, object_pairs_hook=pairs)
    except UnicodeDecodeError:
        raise BodyError([Diagnostic(BODY, 0, 0, "", "the body is not UTF-8")]) from None
    except RecursionError:
        raise BodyError([Diagnostic(BODY, 0, 0, "", f"the body nests deeper than {MAX_DEPTH} levels")]) from None
    except ValueError as exc:
        raise BodyError([Diagnostic(BODY, 0, 0, "", f"the body is not valid JSON: {exc}")]) from None
    if _depth(value) > MAX_DEPTH:
        raise BodyError([Diagnostic(BODY, 0, 0, "", f"the body nests deeper than {MAX_DEPTH} levels")])
    if any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(value)):
        raise BodyError([Diagnostic(BODY, 0, 0, "", "numbers must be finite")])
    if any(isinstance(v, str) and not _utf8(v) for v in _leaves(value, keys=True)):
        raise BodyError([Diagnostic(BODY, 0, 0, "", "the body has a lone UTF-16 surrogate (\\ud800-\\udfff), "
                                    "which is not text")])
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _leaves(value: Any, keys: bool = False) -> Any:
    """Every scalar in a JSON value (and with `keys`, every object key too)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if keys:
                yield k
            yield from _leaves(v, keys)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, keys)
    else:
        yield value


def _doc(data: dict[str, Any], label: str) -> Document:
    return Document(label, 0, data, _NOWHERE, {})


def template_problems(body: Any) -> list[Diagnostic]:
    """What is wrong with a POST /templates body (empty: it can be saved)."""
    if not isinstance(body, dict):
        return [Diagnostic(BODY, 0, 0, "", "the body must be a JSON object")]
    found = [Diagnostic(BODY, 0, 0, "id", "is assigned by the server", "leave it out")] if "id" in body else []
    found += _refused(body)
    found += diagnostics("template", body, Origins.of(_doc(body, BODY)), raw=True)
    return found


def _refused(body: Mapping[str, Any]) -> list[Diagnostic]:
    found = []
    if "matrix" in body:
        found.append(Diagnostic(BODY, 0, 0, "matrix", "is not accepted over HTTP: one request creates one job",
                                "expand it locally (`afx push` sends one job per combination)"))
    for path in PATH_FIELDS:
        value: Any = body
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            hint = "upload it with POST /upload and pass fileId" if path == ("file",) else "not available over HTTP"
            found.append(Diagnostic(BODY, 0, 0, ".".join(path), "names a local file, which a request cannot",
                                    hint))
    return found


def unknown_upload(file_id: Any) -> SpecError:
    return SpecError([Diagnostic(BODY, 0, 0, "fileId", f"no upload {shown(file_id)} in this account",
                                 "POST /upload returns the fileId to use")])


def resolve_body(body: Any, *, name: str, root: Path, templates: Mapping[str, Mapping[str, Any]] = MappingProxyType({}),
                 uploads: Callable[[str], Path | None] | None = lambda file_id: None) -> Job:
    """The Job a POST /jobs body describes, named `name`, or SpecError with every problem.

    `templates` are the account's (id -> saved body); `uploads` finds one of the account's
    uploads by fileId. The fileId is checked on the merged job, wherever it came from (the
    body or a template): a fileId that is not the account's is an error naming the field.
    With uploads=None the caller checks it (afx serve resolves in a process without the
    database, then checks `fields["fileId"]` itself).
    """
    if not isinstance(body, dict):
        raise SpecError([Diagnostic(BODY, 0, 0, "", "the body must be a JSON object")])
    problems = _refused(body)
    if problems:
        raise SpecError(problems)
    resolver = _Resolver(RepoFiles(root, [], []), root)
    # The reference sets a scheduled job's time with PATCH /jobs/:id/schedule: until then it
    # waits, unscheduled; a spec file must give scheduledAt.
    resolver.relaxed = lambda d: d.path == "scheduledAt" and d.message.startswith("required when publishMode")
    for tid, data in templates.items():
        resolver._template(_doc({**data, "id": tid}, f"template {tid}"), Path(tid), single=True)
    data = {k: v for k, v in body.items() if k != "name"}  # the server names its jobs
    data["name"] = name
    jobs = resolver._job(_doc(data, BODY), root / f"{name}.json", single=True)
    if resolver.diags or len(jobs) != 1:
        raise SpecError(sorted(set(resolver.diags)) or [Diagnostic(BODY, 0, 0, "", "does not describe a job")])
    job = jobs[0]
    file_id = job.get("fileId")
    if file_id is not None and uploads is not None:
        path = uploads(file_id)
        if path is None:
            raise unknown_upload(file_id)
        # The stored upload is the job's input file: ingest reads it and the cache key hashes it.
        job = dataclasses.replace(job, paths=MappingProxyType({**job.paths, ("fileId",): path}))
    return job


def job_from_fields(fields: Mapping[str, Any], *, name: str, root: Path, upload: Path | None = None) -> Job:
    """Rebuild a job the server accepted from its resolved fields, without resolving again.

    Resolving again could change it: `{{ afx.today }}` renders differently tomorrow, and a
    template may have been deleted since ("jobs previously submitted are unaffected").
    """
    paths: Mapping[Path_, Path] = MappingProxyType({("fileId",): upload} if upload is not None else {})
    return Job(name=name, fields=freeze(dict(fields)), file=root / f"{name}.json", display=BODY, line=0,
               root=root, paths=paths)
