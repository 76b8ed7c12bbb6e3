"""One server job through the engine, in a process of its own.

    python -m afx.server.child   < task.json   > events (JSON lines)

A worker thread of `afx serve` starts this for each job it claims: the same `process_job`
that `afx run` uses, over the server's shared cache. A process, so that cancelling a job
kills it (and its ffmpeg) as a group, and a crash in a job cannot take the server down. It
dies with the server (PR_SET_PDEATHSIG); the server kills any leftover on restart.

The last line is {"event": "report", ...}: status, error, error kind, and result.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def main() -> int:
    from afx import procs

    procs.die_with(os.getppid())  # first: the job's ffmpeg dies with this process, this with the server
    task = json.loads(sys.stdin.read())
    if task.get("parent") and os.getppid() != task["parent"]:
        return 0  # the server died before PR_SET_PDEATHSIG was in place: it will requeue the job
    from afx.engine.runner import RunOptions, load_pipeline, process_job
    from afx.engine.store import Store
    from afx.spec.api import job_from_fields

    root = Path(task["root"])
    job = job_from_fields(task["fields"], name=task["job_id"], root=root,
                          upload=Path(task["upload"]) if task.get("upload") else None)
    pipeline = load_pipeline(task.get("pipeline"))
    store = Store(Path(task["store"]))
    try:
        report = process_job(job, pipeline, store, root / "out", execute=True, options=RunOptions(),
                             config=task.get("config") or {}, emit=_emit)
    finally:
        store.close()
    result = None
    folder = root / "out" / job.name
    if report.status == "complete" and (folder / "result.json").is_file():
        result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    elif report.failed_stage == "publish" and pipeline.result is not None:
        result = _built_but_unpublished(job, pipeline, report, folder)
    _emit({"event": "report", "status": report.status, "error": report.error, "error_kind": report.error_kind,
           "failed_stage": report.failed_stage, "result": result})
    return 0


def _built_but_unpublished(job: Any, pipeline: Any, report: Any, folder: Path) -> dict[str, Any]:
    """The result of a job whose publish failed: its files in out/, each platform's state."""
    from afx.engine import outputs
    from afx.publish.ledger import Ledger

    result = pipeline.result(job, report.artifacts)
    with Ledger(job.root) as ledger:
        rows = {r["platform"]: r for r in ledger.rows(job.name)}
    result["publishResults"] = [
        {"platform": p, "status": rows[p]["state"] if p in rows else "failed",
         "error": (rows.get(p) or {}).get("error") or report.error}
        for p in job.get("platforms", ())]
    outputs.materialize(folder, outputs.exported(report.artifacts), result)
    return result


if __name__ == "__main__":
    sys.exit(main())
