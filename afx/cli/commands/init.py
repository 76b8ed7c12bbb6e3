"""afx init DIR: a new spec repo that validates as it is and teaches its own layout."""

from __future__ import annotations

from pathlib import Path

from afx.cli.env import Environment
from afx.errors import ExitStatus, UsageError
from afx.fsutil import atomic_write
from afx.spec.schema import KINDS, schema_text

FILES = {
    "afx.yaml": """\
# yaml-language-server: $schema=schemas/config.schema.json
# Settings for this spec repo. The folder holding afx.yaml is its root: every *.yaml below
# it is a job spec, except files under templates/, which are templates.
version: 1
""",
    "templates/house-style.yaml": """\
# yaml-language-server: $schema=../schemas/template.schema.json
# A template. Jobs start from it with `fromTemplateId: house-style`; their own fields win
# (mappings merge deeply, lists are replaced, null removes a key).
name: House style
tone: hype
format: short
platforms: [tiktok, youtube]
render:
  captions:
    uppercase: true
""",
    "hello.yaml": """\
# yaml-language-server: $schema=schemas/job.schema.json
# A job. Its name is the file name (hello); results go to out/hello/.
# Check it with `afx validate`, see the finished job with `afx resolve hello`.
fromTemplateId: house-style
entry: compose
topic: "{{ channel }} in 60 seconds"
vars:
  channel: My channel
script: >-
  Welcome to {{ channel }}. Every week, the best moments in under a minute.
  Follow so you never miss one.
""",
    ".gitignore": """\
# afx outputs and cache; afx.lock is meant to be committed.
out/
.afx/
""",
}


def init(env: Environment, directory: str) -> int:
    root = Path(directory)
    if (root / "afx.yaml").exists():
        raise UsageError(f"{root / 'afx.yaml'} exists: {root} is already a spec repo")
    targets = {root / rel: text for rel, text in FILES.items()}
    targets.update({root / "schemas" / f"{kind}.schema.json": schema_text(kind) for kind in KINDS})
    clashes = [str(p) for p in targets if p.exists()]
    if clashes:
        raise UsageError("refusing to overwrite: " + ", ".join(clashes), hint="choose an empty folder")
    written = []
    try:
        for path, text in targets.items():
            written.append(atomic_write(path, text))
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    if env.json:
        env.emit_json({"root": str(root), "files": sorted(str(p) for p in written)})
    else:
        env.info(f"created spec repo {root} ({len(written)} files); next: afx validate {root}")
    return int(ExitStatus.OK)
