"""afx cache info / gc: what the artifact store holds, and dropping what no lock entry uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from afx.cli.env import Environment
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
        data: dict[str, Any] = {"path": str(store.root), "format": STORE_FORMAT, "objects": len(objects),
                "bytes": sum(objects.values()), "stage_entries": len(keys), "leftover_workdirs": tmp}
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
    return int(ExitStatus.OK)


def gc(env: Environment, *, dry_run: bool) -> int:
    """Keep what afx.lock references; drop every other stage entry and object."""
    root = default_root()
    keep_keys = {stage.get("key") for block in read_lock(root)["jobs"].values()
                 for stage in (block.get("stages") or {}).values()}
    store = Store(store_dir(root))
    lock = RunLock(store.root)
    lock.acquire(wait=True, on_wait=env.info)
    try:
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
        freed = sum(objects[d] for d in drop_objects)
        if not dry_run:
            for key in drop_keys:
                store.delete_stage(key)
            for digest in drop_objects:
                os.unlink(store.object_path(digest))
    finally:
        store.close()
        lock.release()
    verb = "would drop" if dry_run else "dropped"
    if env.json:
        env.emit_json({"dry_run": dry_run, "entries": len(drop_keys), "objects": len(drop_objects), "bytes": freed})
    else:
        env.info(f"{verb} {len(drop_keys)} stage entries and {len(drop_objects)} objects "
                 f"({freed / 1048576:.1f} MiB); kept what afx.lock references")
    return int(ExitStatus.OK)
