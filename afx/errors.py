"""One error family and one exit-status table for all of afx (docs/architecture.md)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ExitStatus(enum.IntEnum):
    OK = 0
    STALE = 1  # `--check`: something would change
    INVALID = 2  # invalid spec or usage
    STAGE_FAILED = 3
    REMOTE_ERROR = 4
    INTERRUPTED = 130


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place: `file:line:col: path.to.field: message`.

    `line` and `column` are 1-based; 0 means "the file as a whole". `path` is the dotted
    field path inside the document ("" when the problem is not about one field).
    """

    file: str
    line: int = 0
    column: int = 0
    path: str = ""
    message: str = ""
    hint: str = field(default="", compare=False)

    def location(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file

    def __str__(self) -> str:
        where = self.location()
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text}; {self.hint}"
        return f"{where}: {text}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class AfxError(Exception):
    """Base of every error afx reports to a user. Carries the exit status it maps to."""

    exit_status: ExitStatus = ExitStatus.INVALID

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class UsageError(AfxError):
    exit_status = ExitStatus.INVALID


class SpecError(AfxError):
    """One or more problems in spec files, all collected before reporting (issue 2)."""

    exit_status = ExitStatus.INVALID

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        n = len(self.diagnostics)
        files = len({d.file for d in self.diagnostics})
        super().__init__(
            f"{n} error{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        return data


class StageError(AfxError):
    exit_status = ExitStatus.STAGE_FAILED


class RemoteError(AfxError):
    exit_status = ExitStatus.REMOTE_ERROR


def shown(value: object, limit: int = 60) -> str:
    """`value` as an error message quotes it: repr, cut to about `limit` characters, so a
    hostile 10 KB id is not echoed back whole (issue 11)."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
