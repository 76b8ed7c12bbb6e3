"""Stage keys and the reasons a stage must run (issue 3).

A key hashes the stage name and version, the resolved values it reads, the digests of its
local input files and the manifest digests of the upstream artifacts it reads, all known
before the stage runs. The parts are kept (as digests) with each run, so the next plan can
name the first one that differs, as DVC's `changed()` and Snakemake's `reason:` do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from afx.digest import digest_of
from afx.engine.store import Store
from afx.spec.job import Job
from afx.stages.base import Stage


class KeyParts(TypedDict):
    """What a stage key hashes, kept with each run so the next plan can say what changed."""

    stage: str
    version: str
    fields: dict[str, str]  # field (config.*, state.* included) -> digest of its value
    files: dict[str, str]  # input name -> content digest
    inputs: dict[str, str | None]  # upstream stage -> manifest digest


@dataclass(frozen=True)
class Fingerprint:
    stage: str
    version: str
    fields: Mapping[str, str]  # field -> digest of its value
    files: Mapping[str, str]  # input name -> content digest
    inputs: Mapping[str, str | None]  # upstream stage -> manifest digest (None: not built yet)

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.inputs.values())

    @property
    def key(self) -> str | None:
        if not self.complete:
            return None
        return digest_of(self.parts())

    def parts(self) -> KeyParts:
        return {"stage": self.stage, "version": self.version, "fields": dict(self.fields),
                "files": dict(self.files), "inputs": dict(self.inputs)}


def fingerprint(stage: Stage, job: Job, store: Store, upstream: Mapping[str, str | None],
                config: Mapping[str, Any] | None = None) -> Fingerprint:
    fields = {name: digest_of(value) for name, value in stage.fields(job).items()}
    # The optional hooks (afx.stages.base.ReadsSettings, ReadsState) by getattr, not by
    # isinstance: a runtime Protocol check costs some 8 us, and this runs for every stage of
    # every job of a no-op run.
    settings: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = getattr(stage, "settings", None)
    if settings is not None:  # what the stage reads from afx.yaml
        fields.update({f"config.{k}": digest_of(v) for k, v in settings(config or {}).items()})
    state: Callable[[Job], Mapping[str, Any]] | None = getattr(stage, "state", None)
    if state is not None:  # outside state (the publish ledger, the clock)
        fields.update({f"state.{k}": digest_of(v) for k, v in state(job).items()})
    files = {name: store.file_digest(path) for name, path in stage.files(job).items()}
    return Fingerprint(stage.name, str(stage.version), fields, files, {d: upstream.get(d) for d in stage.after})


def explain(fp: Fingerprint, last: Mapping[str, Any] | None, *, job_is_new: bool) -> str:
    """The first difference between this fingerprint and the stage's last run."""
    if last is None or not isinstance(last.get("parts"), Mapping):
        return "new job" if job_is_new else "not built yet"
    before = last["parts"]
    if str(before.get("version")) != fp.version:
        return f"stage version changed ({before.get('version')} -> {fp.version})"
    for kind, label in (("fields", "field"), ("files", "input file")):
        old, new = before.get(kind) or {}, getattr(fp, kind)
        for name in sorted(set(old) | set(new)):
            if name not in old:
                return f"{label} `{name}` added"
            if name not in new:
                return f"{label} `{name}` removed"
            if old[name] != new[name]:
                return f"{label} `{name}` changed"
    old_inputs = before.get("inputs") or {}
    for name, digest in fp.inputs.items():
        if digest is None:
            return f"upstream stage `{name}` will run"
        if old_inputs.get(name) != digest:
            return f"upstream stage `{name}` changed"
    return "output missing"
