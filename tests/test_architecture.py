"""Checks that keep the codebase as docs/architecture.md describes it (issue 13).

The import rules are import-linter's (pyproject.toml, run by `make test`); the types are
mypy's. These are the rest: what the docs cite exists, and long functions say why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"(?<![\w./-])((?:afx|docs|tests|bench|schemas|specs)/[\w./-]*\w\.(?:py|md|json|yaml|txt))")
LONG = 60
LONG_OK = re.compile(r"over 60 lines", re.IGNORECASE)


def _texts() -> list[tuple[Path, str]]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "afx").rglob("*.py"))]
    return [(p, p.read_text(encoding="utf-8")) for p in files if p.is_file()]


def test_every_file_the_docs_and_the_code_cite_is_in_the_repository():
    missing = []
    for path, text in _texts():
        for cited in set(CITED.findall(text)):
            if "<" in cited or "*" in cited:
                continue
            if not (ROOT / cited).exists():
                missing.append(f"{path.relative_to(ROOT)} cites {cited}")
    assert not missing, "\n".join(sorted(missing))


def test_the_architecture_document_is_in_the_repository_and_names_its_files():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for section in ("Add a publisher", "Add a layout", "Add an endpoint", "Add a stage"):
        assert section in doc, section
    assert len(set(CITED.findall(doc))) >= 20, "the recipes name the files to touch"


def test_no_function_in_the_engine_server_or_stages_runs_over_60_lines_without_saying_why():
    long = []
    for package in ("engine", "server", "stages"):
        for path in sorted((ROOT / "afx" / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    body = "\n".join(lines[node.lineno - 1:node.end_lineno])
                    if size > LONG and not LONG_OK.search(body):
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size} lines)")
    assert not long, "\n".join(long)


def test_the_citation_check_can_fail(tmp_path):
    assert CITED.findall("see afx/engine/nonexistent.py and docs/x.md.") == ["afx/engine/nonexistent.py", "docs/x.md"]
    assert not (ROOT / "afx/engine/nonexistent.py").exists()


def test_no_module_of_afx_imports_itself_back_through_others():
    """No import cycles, the lazy imports inside functions included (they hide a cycle
    rather than remove it: asr <-> tts was one)."""
    import grimp

    graph = grimp.build_graph("afx")
    cycles = sorted({tuple(sorted((m, n))) for m in graph.modules for n in graph.find_modules_directly_imported_by(m)
                     if graph.chain_exists(importer=n, imported=m)})
    assert not cycles, cycles
