"""afx schema: print a JSON Schema, or write them all for editors (`--write DIR`)."""

from __future__ import annotations

from pathlib import Path

from afx.cli.env import Environment
from afx.errors import ExitStatus
from afx.fsutil import atomic_write
from afx.spec.schema import KINDS, schema_text


def write_schemas(folder: Path) -> list[Path]:
    return [atomic_write(folder / f"{kind}.schema.json", schema_text(kind)) for kind in KINDS]


def schema(env: Environment, kind: str, write_dir: str | None) -> int:
    if write_dir:
        written = write_schemas(Path(write_dir))
        if env.json:
            env.emit_json({"written": [str(p) for p in written]})
        else:
            for p in written:
                env.info(f"wrote {p}")
        return int(ExitStatus.OK)
    env.stdout.write(schema_text(kind))
    return int(ExitStatus.OK)
