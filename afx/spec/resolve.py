"""Spec documents -> resolved Jobs: templates, matrix, variables, schema, local paths.

All problems of all files are collected; nothing stops at the first one (issue 2).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from afx.errors import Diagnostic, SpecError
from afx.spec import vars as specvars
from afx.spec.job import DEFAULTS, Job, freeze
from afx.spec.load import Document, dotted, load_file
from afx.spec.matrix import MatrixError, expand
from afx.spec.merge import Origins, merge
from afx.spec.repo import RepoFiles, collect, display_path, iter_strings
from afx.spec.schema import did_you_mean, diagnostics, field_names

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CONTROL = ("name", "fromTemplateId", "vars", "matrix")  # read before anything is merged
TEMPLATE_ONLY = frozenset({"id", "name", "description", "fromTemplateId"})
# Fields holding local file paths: relative to the file that wrote them, inside the repo.
PATH_FIELDS = (("file",), ("render", "music", "file"), ("render", "backgrounds"))


@dataclass
class Template:
    id: str
    data: dict
    origins: Origins
    file: str
    line: int


@dataclass
class Resolution:
    root: Path
    config: dict
    jobs: list[Job] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def raise_for_errors(self) -> None:
        if self.diagnostics:
            raise SpecError(self.diagnostics)

    def job(self, name: str) -> list[Job]:
        """Jobs called `name`, or all jobs a matrix spec called `name` expanded into."""
        exact = [j for j in self.jobs if j.name == name]
        return exact or [j for j in self.jobs if j.matrix and j.base_name == name]


def _stem(path: Path) -> str:
    stem = path.name
    for suffix in (".yaml", ".yml"):
        stem = stem.removesuffix(suffix)
    for suffix in (".job", ".template", ".tpl"):
        stem = stem.removesuffix(suffix)
    return stem


class _Resolver:
    def __init__(self, files: RepoFiles, cwd: Path) -> None:
        self.files, self.cwd = files, cwd
        self.root = files.root.resolve()
        self.diags: list[Diagnostic] = list(files.diagnostics)
        self.templates: dict[str, Template] = {}
        self.fields = set(field_names("job")) - set(CONTROL)

    # -- templates ------------------------------------------------------------------------
    def load_templates(self) -> None:
        for path in self.files.template_files:
            docs, diags = load_file(path, display_path(path, self.cwd))
            self.diags.extend(diags)
            for doc in docs:
                self._template(doc, path, single=len(docs) == 1)

    def _template(self, doc: Document, path: Path, single: bool) -> None:
        if not isinstance(doc.data, dict):
            self.diags.append(doc.diag((), "a template must be a mapping of fields"))
            return
        origins = Origins.of(doc)
        found = diagnostics("template", doc.data, origins, raw=True)
        self.diags.extend(found)
        tid = doc.data.get("id")
        if not isinstance(tid, str):
            if not single:
                self.diags.append(doc.diag((), "id is required when a file holds several templates", at_key=True))
                return
            tid = _stem(path)
        if tid in self.templates:
            first = self.templates[tid]
            self.diags.append(doc.diag(("id",) if "id" in doc.data else (),
                                       f"template id {tid!r} is already used at {first.file}:{first.line}"))
            return
        if not found:
            self.templates[tid] = Template(tid, doc.data, origins, doc.file, doc.start.line)
        else:  # keep the id known so jobs naming it do not also report "not found"
            self.templates[tid] = Template(tid, {}, origins, doc.file, doc.start.line)

    def chain(self, doc: dict, origins: Origins, owner: str) -> tuple[dict, Origins, tuple[str, ...]] | None:
        """Merge the template chain under `doc`. None (and a diagnostic) if it is broken."""
        names: list[str] = []
        layers: list[Template] = []
        ref, ref_origins = doc.get("fromTemplateId"), origins
        while ref is not None:
            if ref in names:
                loop = " -> ".join([owner, *names, ref])
                file, mark = ref_origins.locate(("fromTemplateId",))
                self.diags.append(Diagnostic(file, mark.line, mark.column, "fromTemplateId",
                                             f"template cycle: {loop}"))
                return None
            tpl = self.templates.get(ref)
            if tpl is None:
                trail = " -> ".join([owner, *names, ref])
                file, mark = ref_origins.locate(("fromTemplateId",))
                self.diags.append(Diagnostic(
                    file, mark.line, mark.column, "fromTemplateId", f"template {ref!r} not found ({trail})",
                    did_you_mean(ref, self.templates) or f"templates live in {self.files.root.name}/templates/"))
                return None
            names.append(ref)
            layers.append(tpl)
            ref, ref_origins = tpl.data.get("fromTemplateId"), tpl.origins
        data: dict = {}
        merged = Origins()
        for tpl in reversed(layers):
            data, merged = merge(data, merged, tpl.data, tpl.origins)
            for key in TEMPLATE_ONLY:
                data.pop(key, None)
                merged.drop((key,))
        data, merged = merge(data, merged, doc, origins)
        return data, merged, tuple(names)

    # -- jobs -----------------------------------------------------------------------------
    def load_jobs(self) -> list[Job]:
        jobs: list[Job] = []
        for path in self.files.job_files:
            docs, diags = load_file(path, display_path(path, self.cwd))
            self.diags.extend(diags)
            for doc in docs:
                jobs.extend(self._job(doc, path, single=len(docs) == 1))
        seen: dict[str, Job] = {}
        unique = []
        for job in jobs:
            if job.name in seen:
                first = seen[job.name]
                file, mark = job.origins.locate(("name",), at_key=True)
                self.diags.append(Diagnostic(file, mark.line, mark.column, "name",
                                             f"job name {job.name!r} is already used at {first.source}",
                                             "job names must be unique in a spec repo"))
                continue
            seen[job.name] = job
            unique.append(job)
        return unique

    def _job(self, doc: Document, path: Path, single: bool) -> list[Job]:
        if not isinstance(doc.data, dict):
            self.diags.append(doc.diag((), "a job must be a mapping of fields"))
            return []
        origins = Origins.of(doc)
        control = {k: doc.data[k] for k in CONTROL if k in doc.data}
        found = diagnostics("control", control, origins, raw=True)
        if found:
            self.diags.extend(found)
            return []
        base = control.get("name")
        if base is None:
            if not single:
                self.diags.append(doc.diag((), "name is required when a file holds several jobs", at_key=True))
                return []
            base = _stem(path)
        chained = self.chain(doc.data, origins, str(base))
        if chained is None:
            return []
        data, merged, chain = chained
        try:
            combos = expand(control["matrix"]) if "matrix" in control else [None]
        except MatrixError as exc:
            file, mark = origins.locate(exc.path)
            self.diags.append(Diagnostic(file, mark.line, mark.column, dotted(exc.path), exc.message))
            return []
        out = []
        for combo in combos:
            job = self._expand(doc, path, data, merged, chain, str(base), combo)
            if job is not None:
                out.append(job)
        return out

    def _expand(self, doc: Document, path: Path, data: dict, origins: Origins, chain: tuple[str, ...],
                base: str, combo: Any) -> Job | None:
        data = copy.deepcopy(data)
        origins = Origins(dict(origins.table), origins.fallback)
        variables: dict[str, Any] = dict(data.get("vars") or {})
        matrix_values: dict[str, Any] = {}
        if combo is not None:
            for key, value in combo.values.items():
                variables[key] = value
                matrix_values[key] = value
                if key in self.fields:
                    data[key] = copy.deepcopy(value)
                    origins.graft((key,), origins, combo.paths[key])
        before = len(self.diags)
        name = base
        if specvars.has_markup(base):
            variables["afx"] = specvars.builtins(base)
            name = self._render(base, variables, origins, ("name",))
        elif combo is not None:
            name = f"{base}-{combo.suffix()}"
        if name is None:
            return None
        variables["afx"] = specvars.builtins(name)
        for key in ("fromTemplateId", "vars", "matrix"):
            data.pop(key, None)
        data["name"] = name
        for spath, text in list(iter_strings(data)):
            if spath != ("name",) and specvars.has_markup(text):
                rendered = self._render(text, variables, origins, spath)
                if rendered is not None:
                    _set(data, spath, rendered)
        if len(self.diags) > before:
            return None
        found = diagnostics("job", data, origins)
        if not JOB_NAME.match(name) and not any(d.path == "name" for d in found):
            file, mark = origins.locate(("name",))
            found.append(Diagnostic(file, mark.line, mark.column, "name",
                                    f"{name!r} is not a valid job name",
                                    "use letters, digits, '.', '_' and '-' (it names the out/ folder)"))
        found.extend(self._check_paths(data, origins))
        if found:
            self.diags.extend(found)
            return None
        for key, value in DEFAULTS.items():
            data.setdefault(key, list(value) if isinstance(value, tuple) else value)
        user_vars = {k: v for k, v in variables.items() if k != "afx"}
        return Job(name=name, fields=freeze(data), file=path.resolve(), display=doc.file,
                   line=doc.start.line, root=self.root, template_chain=chain,
                   matrix=freeze(matrix_values), vars=freeze(user_vars), base_name=base, origins=origins)

    def _render(self, text: str, variables: dict, origins: Origins, spath: tuple) -> str | None:
        try:
            return specvars.render(text, variables)
        except specvars.VarError as exc:
            file, mark = origins.locate(spath)
            self.diags.append(Diagnostic(file, mark.line, mark.column, dotted(spath), exc.message, exc.hint))
            return None

    def _check_paths(self, data: dict, origins: Origins) -> list[Diagnostic]:
        out = []
        for fpath in PATH_FIELDS:
            value: Any = data
            for part in fpath:
                value = value.get(part) if isinstance(value, dict) else None
            items = [(fpath + (i,), v) for i, v in enumerate(value)] if isinstance(value, list) else [(fpath, value)]
            for where, text in items:
                if isinstance(text, str):
                    problem = self._path_problem(text, origins.locate(where)[0])
                    if problem:
                        file, mark = origins.locate(where)
                        out.append(Diagnostic(file, mark.line, mark.column, dotted(where), problem))
        return out

    def _path_problem(self, text: str, written_in: str) -> str:
        if os.path.isabs(text) or text.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", text):
            return f"{text!r} is an absolute path; give a path relative to the spec file, inside the spec repo"
        if "\x00" in text:
            return "path contains a NUL byte"
        base = (self.cwd / written_in).parent if written_in else self.root
        target = (base / text).resolve()
        if not target.is_relative_to(self.root):
            return f"{text!r} leaves the spec repo ({display_path(self.root, self.cwd)})"
        if not target.exists():
            return f"{text!r} not found (looked for {display_path(target, self.cwd)})"
        if not target.is_file():
            return f"{text!r} is not a regular file"
        return ""


def _set(doc: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def resolve(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None) -> Resolution:
    """Load, merge, expand, render and validate. Jobs that resolved, and every problem found."""
    cwd = cwd or Path.cwd()
    files = collect(paths, cwd)
    r = _Resolver(files, cwd)
    r.load_templates()
    jobs = r.load_jobs()
    return Resolution(root=files.root, config=files.config, jobs=jobs, templates=r.templates,
                      diagnostics=sorted(set(r.diags)),
                      files=len(files.job_files) + len(files.template_files))
