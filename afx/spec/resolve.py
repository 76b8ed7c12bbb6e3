"""Spec documents -> resolved Jobs: templates, matrix, variables, schema, local paths.

All problems of all files are collected; nothing stops at the first one (issue 2).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from afx.bulk import paused_gc
from afx.errors import Diagnostic, SpecError
from afx.spec import budget
from afx.spec import vars as specvars
from afx.spec.job import DEFAULTS, Job, freeze
from afx.spec.load import Document, Path_, dotted, load_file
from afx.spec.matrix import Combination, MatrixError, expand
from afx.spec.merge import Origins, merge
from afx.spec.repo import RepoFiles, collect, display_path
from afx.spec.schema import diagnostics, did_you_mean, field_names, string_paths

if TYPE_CHECKING:
    from afx.spec.cache import ResolveCache

JOB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?$")
# Names Windows cannot use for a folder (out/<name>/ must work for every teammate).
RESERVED_NAME = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
MAX_CHAIN = 32
CONTROL = ("name", "fromTemplateId", "vars", "matrix")  # read before anything is merged
TEMPLATE_ONLY = frozenset({"id", "name", "description", "fromTemplateId"})
# Fields holding local file paths: relative to the file that wrote them, inside the repo.
PATH_FIELDS: tuple[tuple[str, ...], ...] = (("file",), ("render", "music", "file"), ("render", "backgrounds"),
                                            ("render", "thumbnail", "file"))

# A template chain merged: its fields, where each was written, the template ids (nearest first).
Chain: TypeAlias = tuple[dict[str, Any], Origins, tuple[str, ...]]


@dataclass
class Template:
    id: str
    data: dict[str, Any]
    origins: Origins
    file: str
    line: int
    broken: bool = False  # its own errors are reported; jobs using it are not checked further


@dataclass
class Resolution:
    root: Path
    config: dict[str, Any]
    jobs: list[Job] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0
    # Local media named by a spec that are not on disk (with missing_media="warn"): media are
    # often not committed, so CI validates specs without them (issue 12).
    warnings: list[Diagnostic] = field(default_factory=list)
    reused: int = 0  # job files that came from the resolve cache, unchanged (afx/spec/cache.py)

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
        # template id -> its whole chain merged (or None when broken): each chain is merged
        # once per run, however many jobs use it.
        self.chains: dict[str, Chain | None] = {}
        # Template values are shared by every job using them: size and freeze each once.
        self._weights: dict[int, tuple[Any, int]] = {}
        self._frozen: dict[int, tuple[Any, Any]] = {}
        # Rules a caller relaxes (afx serve: a scheduled job's time may come later, by PATCH).
        self.relaxed: Callable[[Diagnostic], bool] = lambda d: False
        self.last_error: Exception | None = None  # of the last field that failed to render
        self.missing_ok = False  # a local file not on disk: a warning (afx validate), not an error
        self.warnings: list[Diagnostic] = []
        self.cache: ResolveCache | None = None  # unchanged job files come from it (afx/spec/cache.py)
        self.template_digests: dict[str, str] = {}  # template id -> sha256 of its file

    def _weight(self, value: Any) -> int:
        hit = self._weights.get(id(value))
        if hit is None or hit[0] is not value:
            hit = self._weights[id(value)] = (value, budget.weight(value))
        return hit[1]

    def _freeze(self, value: Any) -> Any:
        hit = self._frozen.get(id(value))
        if hit is None or hit[0] is not value:
            hit = self._frozen[id(value)] = (value, freeze(value))
        return hit[1]

    # -- templates ------------------------------------------------------------------------
    def load_templates(self) -> None:
        for path in self.files.template_files:
            docs, diags = load_file(path, display_path(path, self.cwd))
            self.diags.extend(diags)
            known = set(self.templates)
            for doc in docs:
                self._template(doc, path, single=len(docs) == 1)
            if self.cache is not None and not diags:
                digest = _file_digest(path)
                for tid in set(self.templates) - known:
                    self.template_digests[tid] = digest

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
        origins.prune(("vars",), 1)  # checked above; only the names' marks are needed later
        # A broken template stays known, so jobs naming it do not also report "not found".
        self.templates[tid] = Template(tid, doc.data, origins, doc.file, doc.start.line, broken=bool(found))

    def chain(self, doc: dict[str, Any], origins: Origins, owner: str) -> Chain | None:
        """Merge the template chain under `doc`. None (and a diagnostic) if it is broken."""
        ref = doc.get("fromTemplateId")
        if ref is None:
            base: Chain | None = ({}, Origins(), ())
        else:
            base = self._template_chain(ref, [owner], origins.locate(("fromTemplateId",)))
        if base is None:
            return None
        data, merged = merge(base[0], base[1], doc, origins)
        return data, merged, base[2]

    def _template_chain(self, tid: str, trail: list[str], ref_at: tuple[str, Any]
                        ) -> Chain | None:
        if tid in self.chains:
            return self.chains[tid]
        file, mark = ref_at

        def fail(message: str, hint: str = "") -> None:
            self.diags.append(Diagnostic(file, mark.line, mark.column, "fromTemplateId", message, hint))

        if tid in trail:
            fail(f"template cycle: {' -> '.join(trail + [tid])}")
            return None
        if len(trail) > MAX_CHAIN:
            fail(f"template chain is longer than {MAX_CHAIN} ({' -> '.join(trail[:3])} -> ...)")
            return None
        tpl = self.templates.get(tid)
        if tpl is None:
            fail(f"template {tid!r} not found ({' -> '.join(trail + [tid])})",
                 did_you_mean(tid, self.templates) or f"templates live in {self.files.root.name}/templates/")
            return None
        result: Chain | None = None
        if not tpl.broken:
            parent = tpl.data.get("fromTemplateId")
            base = ({}, Origins(), ()) if parent is None else self._template_chain(
                parent, trail + [tid], tpl.origins.locate(("fromTemplateId",)))
            if base is not None:
                own = {k: v for k, v in tpl.data.items() if k not in TEMPLATE_ONLY}
                data, merged = merge(base[0], base[1], own, tpl.origins)
                for key in TEMPLATE_ONLY:
                    merged.drop((key,))
                result = (data, merged, (tid,) + base[2])
        self.chains[tid] = result
        return result

    # -- jobs -----------------------------------------------------------------------------
    def load_jobs(self) -> list[Job]:
        jobs: list[Job] = []
        cache = self.cache
        for path in self.files.job_files:
            hit = cache.jobs(path, self.template_digests) if cache is not None else None
            if hit is not None:
                jobs.extend(hit)
                continue
            problems = len(self.diags) + len(self.warnings)
            docs, diags = load_file(path, display_path(path, self.cwd))
            self.diags.extend(diags)
            found: list[Job] = []
            for doc in docs:
                found.extend(self._job(doc, path, single=len(docs) == 1))
            jobs.extend(found)
            if cache is not None and len(self.diags) + len(self.warnings) == problems:
                cache.put(path, found, self.template_digests)  # successes only
        seen: dict[str, Job] = {}
        unique = []
        for job in jobs:
            # Case-insensitively: out/Foo and out/foo are one folder on macOS and Windows.
            first = seen.get(job.name.lower())
            if first is None:
                seen[job.name.lower()] = job
                unique.append(job)
                continue
            same = "" if first.name == job.name else f" (as {first.name!r})"
            if job.matrix and (first.file, first.line) == (job.file, job.line):
                file, mark = job.origins.locate(("matrix",), at_key=True)
                self.diags.append(Diagnostic(file, mark.line, mark.column, "matrix",
                                             f"two combinations give the job name {job.name!r}",
                                             "use {{ variables }} in name to tell them apart"))
                continue
            file, mark = job.origins.locate(("name",), at_key=True)
            self.diags.append(Diagnostic(file, mark.line, mark.column, "name",
                                         f"job name {job.name!r} is already used{same} at {first.source}",
                                         "job names must be unique in a spec repo"))
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
        origins.prune(("vars",), 1)  # checked above; only the names' marks are needed later
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

    def _expand(self, doc: Document, path: Path, data: dict[str, Any], origins: Origins, chain: tuple[str, ...],
                base: str, combo: Combination | None) -> Job | None:
        variables: dict[str, Any] = dict(data.get("vars") or {})  # read only: never copied
        data = copy.deepcopy({k: v for k, v in data.items() if k not in ("fromTemplateId", "vars", "matrix")})
        origins = Origins(dict(origins.table), origins.fallback)
        matrix_values: dict[str, Any] = {}
        if combo is not None:
            for key, value in combo.values.items():
                variables[key] = value
                matrix_values[key] = value
                if key in self.fields:
                    data[key] = copy.deepcopy(value)
                    origins.graft((key,), origins, combo.paths[key])
        before = len(self.diags)
        biggest = max(map(self._weight, variables.values()), default=0)
        name: str | None = base
        if specvars.has_markup(base):
            variables["afx"] = specvars.builtins(base)
            name = self._render(base, variables, origins, ("name",), biggest)
        elif combo is not None:
            name = f"{base}-{combo.suffix()}"
        if name is None:
            return None
        variables["afx"] = specvars.builtins(name)
        data["name"] = name
        # Only strings the schema knows as strings are rendered: an unknown field is
        # reported, not evaluated.
        with budget.job_budget():  # one budget for all of the job's fields (issue 11)
            produced = 0
            for spath in string_paths("job", data):
                text = _get(data, spath)
                if spath != ("name",) and specvars.has_markup(text):
                    rendered = self._render(text, variables, origins, spath, biggest)
                    if rendered is None:
                        if isinstance(self.last_error, budget.BudgetError):
                            break  # the job is over its budget: one error, not one per field
                        continue
                    produced += len(rendered)
                    if produced > budget.MAX_JOB_OUTPUT:
                        file, mark = origins.locate(spath)
                        self.diags.append(Diagnostic(
                            file, mark.line, mark.column, dotted(spath),
                            f"the job's rendered fields add up to more than {budget.MAX_JOB_OUTPUT} characters",
                            "render less text, or write it out"))
                        break
                    _set(data, spath, rendered)
        if len(self.diags) > before:
            return None
        found = [d for d in diagnostics("job", data, origins) if not self.relaxed(d)]
        if not any(d.path == "name" for d in found):
            problem = ""
            if not JOB_NAME.match(name):
                problem = "use letters, digits, '.', '_' and '-', not ending in '.' (it names the out/ folder)"
            elif RESERVED_NAME.match(name):
                problem = "it is a reserved file name on Windows"
            if problem:
                file, mark = origins.locate(("name",))
                found.append(Diagnostic(file, mark.line, mark.column, "name",
                                        f"{name!r} is not a valid job name", problem))
        path_problems, local_paths = self._check_paths(data, origins)
        found.extend(path_problems)
        if found:
            self.diags.extend(found)
            return None
        for key, value in DEFAULTS.items():
            data.setdefault(key, list(value) if isinstance(value, tuple) else value)
        user_vars = {k: self._freeze(v) for k, v in variables.items() if k != "afx"}
        real = path.resolve() if os.path.islink(path) else path  # its folder is resolved already
        return Job(name=name, fields=freeze(data), file=real, display=doc.file,
                   line=doc.start.line, root=self.root, template_chain=chain,
                   matrix=freeze(matrix_values), vars=freeze(user_vars), base_name=base, origins=origins,
                   paths=MappingProxyType(local_paths))

    def _render(self, text: str, variables: dict[str, Any], origins: Origins, spath: Path_, biggest: int) -> str | None:
        try:
            return specvars.render(text, variables, biggest)
        except budget.VarError as exc:
            self.last_error = exc
            file, mark = origins.locate(spath)
            self.diags.append(Diagnostic(file, mark.line, mark.column, dotted(spath), exc.message, exc.hint))
            return None

    def _check_paths(self, data: dict[str, Any], origins: Origins) -> tuple[list[Diagnostic], dict[Path_, Path]]:
        out: list[Diagnostic] = []
        resolved: dict[Path_, Path] = {}
        for fpath in PATH_FIELDS:
            value: Any = data
            for part in fpath:
                value = value.get(part) if isinstance(value, dict) else None
            items = [(fpath + (i,), v) for i, v in enumerate(value)] if isinstance(value, list) else [(fpath, value)]
            for where, text in items:
                if isinstance(text, str):
                    file, mark = origins.locate(where)
                    target, problem = self._local_path(text, file)
                    if problem and self.missing_ok and problem.startswith(MISSING):
                        self.warnings.append(Diagnostic(file, mark.line, mark.column, dotted(where),
                                                        problem[len(MISSING):], "it is needed to run the job"))
                        resolved[where] = target
                    elif problem:
                        out.append(Diagnostic(file, mark.line, mark.column, dotted(where),
                                              problem.removeprefix(MISSING)))
                    else:
                        resolved[where] = target
        return out, resolved

    def _local_path(self, text: str, written_in: str) -> tuple[Path, str]:
        """(absolute path, "") for a usable local file named in `written_in`, else (_, problem)."""
        target = Path()
        if os.path.isabs(text) or text.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", text):
            return target, f"{text!r} is an absolute path; give a path relative to the spec file, inside the spec repo"
        if "\x00" in text:
            return target, "path contains a NUL byte"
        base = (self.cwd / written_in).parent if written_in else self.root
        try:
            target = (base / text).resolve()
            if not target.is_relative_to(self.root):
                return target, f"{text!r} leaves the spec repo ({display_path(self.root, self.cwd)})"
            if not target.exists() and not target.is_symlink():
                return target, f"{MISSING}{text!r} not found (looked for {display_path(target, self.cwd)})"
            if not target.is_file():
                return target, f"{text!r} is not a regular file"
        except (OSError, RuntimeError) as exc:  # name too long, symlink loop
            return target, f"{text[:80]!r} cannot be used: {getattr(exc, 'strerror', None) or exc}"
        return target, ""


MISSING = "missing: "  # marks the one path problem that missing_media="warn" lets through


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def resolve(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None,
            missing_media: str = "error", cached: bool = False) -> Resolution:
    """Load, merge, expand, render and validate. Jobs that resolved, and every problem found.

    missing_media="warn": a local file that is not on disk is a warning, not an error (the
    path must still be a valid one inside the repo); its job resolves, with the path.
    cached: job files unchanged since the last resolution come from the resolve cache
    (afx/spec/cache.py), which is then written (into the store folder, made if need be)."""
    with paused_gc():  # (thousands of jobs: see afx/bulk.py)
        return _resolve(paths, cwd or Path.cwd(), missing_media, cached)


def _resolve(paths: Sequence[str | os.PathLike[str]], cwd: Path, missing_media: str, cached: bool) -> Resolution:
    files = collect(paths, cwd)
    r = _Resolver(files, cwd)
    r.missing_ok = missing_media == "warn"
    if cached:
        from afx.spec.cache import ResolveCache

        r.cache = ResolveCache(r.root, cwd, r.missing_ok, specvars.today().isoformat(), whole=not paths)
    r.load_templates()
    jobs = r.load_jobs()
    if r.cache is not None:
        r.cache.save()
    return Resolution(root=files.root, config=files.config, jobs=jobs, templates=r.templates,
                      diagnostics=sorted(set(r.diags)),
                      files=len(files.job_files) + len(files.template_files), warnings=sorted(set(r.warnings)),
                      reused=r.cache.hits if r.cache is not None else 0)


def _file_digest(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
