"""YAML loading for spec files: safe, bounded, and every value keeps its line and column.

PyYAML's C composer builds the node tree (fast, safe: it constructs nothing); afx then
builds plain Python values itself so it can
- keep a line/column for every key and value (errors must point at them, issue 2),
- resolve plain scalars with YAML 1.2 core rules (its own resolver) (`no`, `on`, `yes` stay strings, timestamps
  stay strings: `scheduledAt` must reach the schema as the text the user wrote),
- refuse every tag outside the JSON-compatible core (`!!python/object`, `!!binary`, `!foo`),
- bound the work an alias can cause (billion-laughs) and the nesting depth,
- reject duplicate keys instead of silently keeping the last one.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml

from afx.errors import Diagnostic

MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 20_000  # values per document after alias expansion
MAX_ALIASES = 100
MAX_DEPTH = 48

Path_: TypeAlias = tuple[str | int, ...]  # a path into a document: keys (str) and list indices (int)


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """One YAML document: plain values plus where each of them was written."""

    file: str
    index: int
    data: Any
    start: Mark
    # path -> (mark of the key, mark of the value). The root has path ().
    marks: dict[Path_, tuple[Mark, Mark]] = field(default_factory=dict)

    def key_mark(self, path: Path_) -> Mark:
        return self._nearest(path)[0]

    def value_mark(self, path: Path_) -> Mark:
        return self._nearest(path)[1]

    def _nearest(self, path: Path_) -> tuple[Mark, Mark]:
        path = tuple(path)
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (self.start, self.start))

    def diag(self, path: Path_, message: str, *, at_key: bool = False, hint: str = "") -> Diagnostic:
        mark = self.key_mark(path) if at_key else self.value_mark(path)
        return Diagnostic(self.file, mark.line, mark.column, dotted(path), message, hint)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part) if part else '""'
            out += f".{text}" if out else text
    return out


class _LoadProblem(Exception):
    def __init__(self, mark: Mark, path: Path_, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.mark, self.path, self.message, self.hint = mark, path, message, hint


_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _TIMESTAMP, _MERGE = (_CORE + t for t in ("map", "seq", "timestamp", "merge"))

# YAML 1.2 core schema for plain scalars.
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema for untagged plain scalars; `<<` is marked so it can be refused."""


for _tag, _regexp, _first in (
    (_BOOL, _BOOL_RE, "tTfF"),
    (_INT, _INT_RE, "-+0123456789"),
    (_FLOAT, _FLOAT_RE, "-+0123456789."),
    (_NULL, _NULL_RE, ["~", "n", "N", ""]),
    (_MERGE, re.compile(r"^<<$"), "<"),
):
    _CoreResolver.add_implicit_resolver(_tag, _regexp, list(_first))

try:  # libyaml's parser is in every PyYAML wheel; the pure-Python one is the fallback.
    # (types-PyYAML's yaml.cyaml imports CParser from yaml._yaml without re-exporting it)
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,  # type: ignore[no-redef]
                  yaml.composer.Composer):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)


class _Loader(_Parser, _CoreResolver):
    """Parse and compose only: afx builds values itself (see _Builder)."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _CoreResolver.__init__(self)


def _mark(m: Any) -> Mark:
    return Mark(m.line + 1, m.column + 1)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


MAX_DIGITS = 40


def _to_int(text: str) -> int:
    t = text.replace("_", "")
    if len(t.lstrip("+-")) > MAX_DIGITS:
        raise ValueError(f"more than {MAX_DIGITS} digits")
    if t.startswith("0o"):
        return int(t[2:], 8)
    if t.startswith("0x"):
        return int(t[2:], 16)
    return int(t, 10)


def _to_float(text: str) -> float:
    # .inf, .nan and 1e400 have no JSON form: a spec is also a POST /jobs body.
    value = float(text.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf")
                  .replace(".nan", "nan").replace(".NaN", "nan").replace(".NAN", "nan"))
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


class _Builder:
    def __init__(self) -> None:
        self.marks: dict[Path_, tuple[Mark, Mark]] = {}
        self.values = 0
        self.aliases = 0
        self.seen: set[int] = set()

    def build(self, node: Any, path: Path_, key_mark: Mark, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _LoadProblem(_mark(node.start_mark), path, f"nesting is deeper than {MAX_DEPTH} levels")
        self.values += 1
        if self.values > MAX_VALUES:
            raise _LoadProblem(
                self.marks.get(path[:1], (_mark(node.start_mark),))[0],
                path[:1],
                f"document expands to more than {MAX_VALUES} values",
                "YAML aliases (*name) that repeat large anchors are refused (alias bomb)",
            )
        # The composer hands back the same node object for every alias of one anchor.
        if id(node) in self.seen and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                # An alias node carries its anchor's position; blame the entry being built.
                raise _LoadProblem(
                    self.marks.get(path[:1], (_mark(node.start_mark),))[0], path[:1],
                    f"more than {MAX_ALIASES} alias expansions in one document",
                    "YAML alias bombs are refused; use templates to share fields",
                )
        self.seen.add(id(node))
        vmark = _mark(node.start_mark)
        self.marks[path] = (key_mark, vmark)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise _LoadProblem(vmark, path, f"tag {_short_tag(node.tag)} is not allowed in a spec")
            return [
                self.build(child, path + (i,), _mark(child.start_mark), depth + 1)
                for i, child in enumerate(node.value)
            ]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise _LoadProblem(vmark, path, f"tag {_short_tag(node.tag)} is not allowed in a spec")
            out: dict[str, Any] = {}
            first: dict[str, Mark] = {}
            for knode, vnode in node.value:
                kmark = _mark(knode.start_mark)
                if knode.tag == _MERGE:
                    raise _LoadProblem(
                        kmark, path, "YAML merge keys (<<) are not supported",
                        "put shared fields in a template and use fromTemplateId",
                    )
                if not isinstance(knode, yaml.ScalarNode):
                    raise _LoadProblem(kmark, path, "mapping keys must be plain strings")
                key = self._scalar(knode, path)
                if not isinstance(key, str):
                    key = knode.value  # `1: x` or `true: x`: keys are text in a JSON document
                if key in first:
                    raise _LoadProblem(
                        kmark, path + (key,), f"duplicate key (first given at line {first[key].line})"
                    )
                first[key] = kmark
                out[key] = self.build(vnode, path + (key,), kmark, depth + 1)
            return out
        raise _LoadProblem(vmark, path, f"unsupported YAML node {type(node).__name__}")  # pragma: no cover

    def _scalar(self, node: Any, path: Path_) -> Any:
        tag, text = node.tag, node.value
        mark = _mark(node.start_mark)
        try:
            if tag in (_STR, _TIMESTAMP):
                return text
            if tag == _INT:
                return _to_int(text)
            if tag == _FLOAT:
                return _to_float(text)
            if tag == _BOOL:
                if not _BOOL_RE.match(text):
                    raise ValueError(text)
                return text.lower() == "true"
            if tag == _NULL:
                return None
        except ValueError as exc:
            raise _LoadProblem(mark, path, f"cannot read {text[:40]!r} as {_short_tag(tag)}: {exc}"[:200]) from None
        raise _LoadProblem(mark, path, f"tag {_short_tag(tag)} is not allowed in a spec",
                           "specs hold plain data: strings, numbers, booleans, lists and mappings")


def decode(raw: bytes, display: str) -> tuple[str | None, list[Diagnostic]]:
    """UTF-8 (with or without BOM) or a diagnostic at the first bad byte."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Diagnostic(display, line, col, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                       "save the file as UTF-8")
        ]


def load_text(text: str, display: str) -> tuple[list[Document], list[Diagnostic]]:
    """All documents of one file. Empty documents (a stray `---`) are skipped."""
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    try:
        # types-PyYAML lists PyYAML's own loader classes only; compose_all needs just a parser,
        # a composer and a resolver, which _Loader is.
        for index, node in enumerate(yaml.compose_all(text, Loader=_Loader)):  # type: ignore[arg-type]
            if node is None:
                continue
            builder = _Builder()
            start = _mark(node.start_mark)
            try:
                data = builder.build(node, (), start)
            except _LoadProblem as p:
                diags.append(Diagnostic(display, p.mark.line, p.mark.column, dotted(p.path), p.message, p.hint))
                continue
            if data is None:
                continue
            docs.append(Document(display, index, data, start, builder.marks))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "YAML syntax error"
        diags.append(Diagnostic(display, line, col, "", f"YAML syntax error: {what}"))
    except yaml.reader.ReaderError as exc:  # control characters and the like
        pos = exc.position
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        diags.append(Diagnostic(display, line, col, "", f"character {char!r} is not allowed in YAML"))
    except yaml.YAMLError as exc:  # pragma: no cover - every other error carries a mark
        diags.append(Diagnostic(display, 1, 1, "", f"YAML error: {exc}"))
    if not docs and not diags:
        diags.append(Diagnostic(display, 1, 1, "", "spec file is empty", "remove it or add a job"))
    return docs, diags


def load_file(path: str | os.PathLike[str], display: str | None = None) -> tuple[list[Document], list[Diagnostic]]:
    """Read and parse one spec file, refusing oversized and non-UTF-8 files before parsing."""
    display = display or os.fspath(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            return [], [Diagnostic(display, 0, 0, "", "not a regular file")]
        size = info.st_size
        if size > MAX_FILE_BYTES:
            return [], [
                Diagnostic(display, 1, 1, "", f"spec file is {size / 1048576:.1f} MiB, over the "
                           f"{MAX_FILE_BYTES // 1048576} MiB limit", "keep media out of spec files")
            ]
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [], [Diagnostic(display, 0, 0, "", f"cannot read: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:  # grew between stat and read
        return [], [Diagnostic(display, 1, 1, "", f"spec file is over the {MAX_FILE_BYTES // 1048576} MiB limit")]
    text, diags = decode(raw, display)
    if text is None:
        return [], diags
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return [], [Diagnostic(display, line, 1, "", "file contains NUL bytes: not a text spec")]
    return load_text(text, display)
