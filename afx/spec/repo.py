"""A spec repo on disk: where it starts, which files are specs, and its afx.yaml.

Layout (docs/specs.md):
- the root is the nearest folder, from the given path upwards, that holds `afx.yaml`;
- every `*.yaml` / `*.yml` below the root is a spec file, except `afx.yaml`, hidden files
  and folders, and `out/`;
- files under `<root>/templates/` hold templates, all others hold jobs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afx.errors import Diagnostic, UsageError
from afx.spec.load import load_file
from afx.spec.merge import Origins
from afx.spec.schema import diagnostics

CONFIG_NAME = "afx.yaml"
TEMPLATES_DIR = "templates"
SKIP_DIRS = frozenset({"out", "node_modules", "__pycache__"})
SPEC_SUFFIXES = (".yaml", ".yml")


def display_path(path: Path, cwd: Path | None = None) -> str:
    """Paths as a user typed them: relative to the working directory when below it."""
    # Not resolve(): a symlinked spec is shown as the link the user knows, not its target.
    cwd = cwd or Path.cwd()
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, os.path.abspath(cwd))
    return absolute if rel.startswith("..") else rel


def find_root(start: Path) -> Path:
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return here


def default_root(cwd: Path | None = None) -> Path:
    """The spec repo to use when no path is given: the one around cwd, else ./specs."""
    cwd = (cwd or Path.cwd()).resolve()
    root = find_root(cwd)
    if (root / CONFIG_NAME).is_file():
        return root
    if (cwd / "specs" / CONFIG_NAME).is_file():
        return cwd / "specs"
    return cwd


def _norm(path: Path) -> Path:
    """Absolute, with folder links resolved but a file link kept as the link."""
    return path.parent.resolve() / path.name


def is_template_file(path: Path, root: Path) -> bool:
    return _in_templates(_norm(path), root)


def _in_templates(normalized: Path, root: Path) -> bool:
    # On strings (both paths are normalized): pathlib's relative_to costs some 10 us, and
    # this runs for every file of the repo on every run.
    return str(normalized).startswith(os.path.join(str(root), TEMPLATES_DIR, ""))


def spec_files(folder: Path, links: set[Path] | None = None) -> list[Path]:
    """The spec files under `folder` (normalized), in os.walk's order; `links` gets those that
    are symbolic links (told by the directory listing: no lstat per file)."""
    out: list[Path] = []
    _scan(str(folder), out, links)
    return out


def _scan(folder: str, out: list[Path], links: set[Path] | None) -> None:
    # os.walk's rules (a linked folder is listed, not entered), on os.scandir's entries,
    # whose type comes with the listing: a 10,000-file repo is read without 10,000 stats.
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return
    base = Path(folder).resolve()  # what _norm does, once per folder
    # (a child of a resolved path needs no parsing: pathlib's own shortcut when it has one)
    child = getattr(base, "_make_child_relpath", base.joinpath)
    dirs: list[os.DirEntry[str]] = []
    for entry in sorted(entries, key=lambda e: e.name):
        name = entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not name.startswith(".") and name not in SKIP_DIRS:
                dirs.append(entry)
            continue
        if name.startswith(".") or name == CONFIG_NAME or not name.endswith(SPEC_SUFFIXES):
            continue
        path = child(name)
        out.append(path)
        if links is not None and entry.is_symlink():
            links.add(path)
    for entry in dirs:
        if not entry.is_symlink():
            _scan(entry.path, out, links)


@dataclass
class RepoFiles:
    root: Path
    job_files: list[Path]
    template_files: list[Path]
    config: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def collect(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None) -> RepoFiles:
    """Find the repo root, its config, its templates and the job files the paths name."""
    cwd = cwd or Path.cwd()
    targets = [Path(p) if Path(p).is_absolute() else cwd / p for p in paths]
    for t in targets:
        if not t.exists():
            raise UsageError(f"{display_path(t, cwd)}: no such file or folder")
    root = find_root(targets[0]) if targets else default_root(cwd)
    roots = {find_root(t) for t in targets}
    if len(roots) > 1:
        raise UsageError("paths belong to different spec repos: " + ", ".join(sorted(map(str, roots))),
                         hint="run afx once per spec repo")
    links: set[Path] = set()
    everything = spec_files(root, links)  # every path from here on is normalized (_norm)
    inside_templates = os.path.join(str(root), TEMPLATES_DIR, "")
    templates = [p for p in everything if str(p).startswith(inside_templates)]  # (_in_templates, once)
    if targets:
        chosen: list[Path] = []
        for t in targets:
            chosen.extend(spec_files(t) if t.is_dir() else [_norm(t)])
        jobs = [p for p in dict.fromkeys(chosen) if not _in_templates(p, root)]
        templates = list(dict.fromkeys(templates + [p for p in chosen if _in_templates(p, root)]))
    else:
        jobs = [p for p in everything if not str(p).startswith(inside_templates)]
    files = RepoFiles(root, [], [])
    real_root = root.resolve()
    inside = os.path.join(str(real_root), "")
    for group, found in ((files.job_files, jobs), (files.template_files, templates)):
        for path in found:
            # A spec symlinked from outside would let a repo read any YAML on the machine.
            # (Its folder is resolved already: only a link in the last part can lead out.)
            # (the listing told which of the repo's files are links; a target's are asked)
            linked = (bool(links) and path in links) if not targets else os.path.islink(path)
            real = path.resolve() if linked else path
            if str(real).startswith(inside) or real == real_root:
                group.append(path)
            else:
                files.diagnostics.append(Diagnostic(display_path(path, cwd), 0, 0, "",
                                                    "is a link to a file outside the spec repo"))
    config_path = root / CONFIG_NAME
    if config_path.is_file():
        files.config, problems = load_config(config_path, cwd)
        files.diagnostics.extend(problems)
    return files


def load_config(path: Path, cwd: Path | None = None) -> tuple[dict[str, Any], list[Diagnostic]]:
    docs, diags = load_file(path, display_path(path, cwd))
    if diags:
        return {}, diags
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        return {}, [Diagnostic(display_path(path, cwd), 1, 1, "", "afx.yaml must hold one mapping")]
    doc = docs[0]
    found = diagnostics("config", doc.data, Origins.of(doc))
    return (doc.data if not found else {}), found
