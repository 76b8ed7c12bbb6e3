"""afx cache info / gc: what the artifact store holds, and dropping what no lock entry uses
(and the resume folders of interrupted stages no run would go on from)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from afx.cli.env import Environment
from afx.engine import fastpath
from afx.engine.lockfile import RunLock, read_lock
from afx.engine.runner import store_dir
from afx.engine.store import STORE_FORMAT, Store
from afx.errors import ExitStatus
from afx.spec.repo import default_root, display_path


def _objects(store: Store) -> dict[str, int]:
    out: dict[str, int] = {}
    if store.objects.exists():
        for sub in store.objects.iterdir():
            for obj in sub.iterdir():
                out[sub.name + obj.name] = obj.stat().st_size
    return out


def info(env: Environment) -> int:
    root = default_root()
    store = Store(store_dir(root))
    try:
        objects = _objects(store)
        keys = list(store.stage_keys())
        tmp = len(list(store.tmp.iterdir())) if store.tmp.exists() else 0
        resumes = store.resume_folders()
        data: dict[str, Any] = {"path": str(store.root), "format": STORE_FORMAT, "objects": len(objects),
                "bytes": sum(objects.values()), "stage_entries": len(keys), "leftover_workdirs": tmp,
                "resume_folders": len(resumes), "resume_bytes": sum(size for _, size in resumes.values())}
    finally:
        store.close()
    if env.json:
        env.emit_json(data)
    else:
        env.out(f"store     {display_path(Path(data['path']))} (format {data['format']})")
        env.out(f"objects   {data['objects']} ({data['bytes'] / 1048576:.1f} MiB)")
        env.out(f"entries   {data['stage_entries']} stage outputs")
        if tmp:
            env.out(f"leftovers {tmp} work folder(s) from interrupted runs (removed by the next run)")
        if resumes:
            env.out(f"resume    {len(resumes)} interrupted stage(s) to go on from "
                    f"({data['resume_bytes'] / 1048576:.1f} MiB; gc drops those no job needs, or a week old)")
    return int(ExitStatus.OK)


RESUME_DAYS = 7  # a resume folder untouched for longer is dropped, wanted or not


def _wanted_keys() -> set[str] | None:
    """The stage keys the repo's jobs would run now (as `afx plan` says): the resume folders
    worth keeping. None when the specs do not resolve (then age alone decides)."""
    from afx.engine.session import Engine
    from afx.errors import AfxError
    from afx.spec.select import select

    try:
        result, jobs = select([])
        return {s.key for r in Engine(result.root, result.config).plan(jobs) for s in r.stages if s.run and s.key}
    except AfxError:
        return None


def _stale_resumes(store: Store, wanted: set[str] | None) -> dict[str, int]:
    """Resume folders (StageContext.resume) no planned stage would go on from, or older than
    RESUME_DAYS: key -> bytes."""
    cutoff = time.time() - RESUME_DAYS * 86400
    return {key: size for key, (changed, size) in store.resume_folders().items()
            if changed < cutoff or (wanted is not None and key not in wanted)}


def gc(env: Environment, *, dry_run: bool) -> int:
    """Keep what afx.lock references; drop every other stage entry and object, and the resume
    folders of interrupted stages that no job would go on from (or a week old)."""
    root = default_root()
    keep_keys = {stage.get("key") for block in read_lock(root)["jobs"].values()
                 for stage in (block.get("stages") or {}).values()}
    store = Store(store_dir(root))
    lock = RunLock(store.root)
    lock.acquire(wait=True, on_wait=env.info)
    try:
        resumes = _stale_resumes(store, _wanted_keys())
        keep_objects: set[str] = set()
        drop_keys = []
        for key in list(store.stage_keys()):
            manifest = store.manifest(key)
            if key in keep_keys and manifest is not None:
                keep_objects.update(e["digest"] for e in manifest.files.values())
            else:
                drop_keys.append(key)
        objects = _objects(store)
        drop_objects = [d for d in objects if d not in keep_objects]
        freed = sum(objects[d] for d in drop_objects) + sum(resumes.values())
        if not dry_run:
            for key in drop_keys:
                store.delete_stage(key)
            for digest in drop_objects:
                os.unlink(store.object_path(digest))
            for key in resumes:
                store.drop_resume(key)
            fastpath.forget(store.root)  # its records name objects and stage keys
    finally:
        store.close()
        lock.release()
    verb = "would drop" if dry_run else "dropped"
    if env.json:
        env.emit_json({"dry_run": dry_run, "entries": len(drop_keys), "objects": len(drop_objects),
                       "resume_folders": len(resumes), "bytes": freed})
    else:
        env.info(f"{verb} {len(drop_keys)} stage entries, {len(drop_objects)} objects and {len(resumes)} resume "
                 f"folder(s) ({freed / 1048576:.1f} MiB); kept what afx.lock references and what a run would "
                 "go on from")
    return int(ExitStatus.OK)
