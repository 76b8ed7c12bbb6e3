"""The environment a command talks to: streams, terminal, colour, verbosity, JSON mode.

Injectable, as in httpie's `Environment`, so tests can simulate a terminal or NO_COLOR.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import click


@dataclass
class Environment:
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    color_mode: str = "auto"  # auto | always | never
    json: bool = False
    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    def _color_for(self, isatty: bool | None) -> bool:
        if self.color_mode == "always":
            return True
        if self.color_mode == "never" or "NO_COLOR" in self.environ:
            return False
        return bool(isatty) and self.environ.get("TERM") != "dumb"

    @property
    def color(self) -> bool:
        """Colour for messages: they go to stderr."""
        return self._color_for(self.stderr_isatty)

    @property
    def live(self) -> bool:
        """A live progress display (a terminal on stderr, not --json, not -q)."""
        return bool(self.stderr_isatty) and not self.json and self.verbosity >= 0 and \
            self.environ.get("TERM") != "dumb"

    def style(self, text: str, **styles: Any) -> str:
        return click.style(text, **styles) if self.color else text

    def out(self, text: str = "") -> None:
        click.echo(text, file=self.stdout, color=self._color_for(self.stdout_isatty))

    def info(self, text: str) -> None:
        """Progress and summaries: on stderr, silenced by -q."""
        if self.verbosity >= 0:
            click.echo(text, file=self.stderr, color=self.color)

    def debug(self, text: str) -> None:
        if self.verbosity > 0:
            click.echo(self.style(text, dim=True), file=self.stderr, color=self.color)

    def error(self, text: str) -> None:
        click.echo(text, file=self.stderr, color=self.color)

    def emit_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
