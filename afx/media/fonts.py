"""Fonts that are there after a pip install: Roboto (font-roboto) for text, Fjalla One for titles.

System fonts are never required (issue 4); DejaVu is only a last resort if a package is gone.
"""

from __future__ import annotations

import functools
from pathlib import Path

_FALLBACK = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@functools.cache
def font_file(role: str = "title") -> Path:
    """role: title (condensed display face), bold, regular."""
    try:
        if role == "title":
            import font_fjallaone

            path = Path(font_fjallaone.font_files["FjallaOne"])
        else:
            import font_roboto

            path = Path(font_roboto.font_files["RobotoBold" if role == "bold" else "Roboto"])
        if path.is_file():
            return path
    except (ImportError, KeyError):
        pass
    if _FALLBACK.is_file():
        return _FALLBACK
    raise FileNotFoundError("no font available: install font-roboto and font-fjallaone")
