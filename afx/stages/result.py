"""out/<job>/result.json: the shape of GET /jobs/:id/result, plus afx extras under one key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afx import times
from afx.spec.job import Job
from afx.stages.base import Artifacts


def job_result(job: Job, artifacts: Mapping[str, Artifacts]) -> dict[str, Any]:
    """The API's result document for a job whose stages all finished.

    URLs are relative to out/<job>/, so the folder can be moved or served as it is.
    completedAt is when the last stage's output was made, so a run that reuses everything
    leaves result.json byte-for-byte unchanged.
    """
    exports = {export for arts in artifacts.values() for export in arts.exports.values()}
    video = next((n for n in sorted(exports) if n.endswith(".mp4")), None)
    thumb = next((n for n in sorted(exports) if n.startswith("thumb")), None)
    package = artifacts.get("package")
    publish = artifacts.get("publish")
    copy = dict(package.meta.get("publishCopy", {})) if package else {}
    completed = max((a.created for a in artifacts.values()), default=0)
    return {
        "jobId": job.name,
        "status": "complete",
        "videoUrl": video,
        "thumbnailUrl": thumb,
        "publishCopy": {"title": copy.get("title", ""), "description": copy.get("description", ""),
                        "hashtags": list(copy.get("hashtags", []))},
        "completedAt": times.iso(completed) if completed else None,
        "publishResults": list(publish.meta.get("results", [])) if publish else [],
        "afx": {
            "spec": job.digest,
            "score": package.meta.get("score") if package else None,
            "files": sorted(exports),
            "stages": {name: {"digest": a.digest, "seconds": round(a.seconds, 3)}
                       for name, a in artifacts.items()},
            **choices(artifacts),
        },
    }


def choices(artifacts: Mapping[str, Artifacts]) -> dict[str, Any]:
    """The decisions afx made, in the form a person can read (and copy into a spec): the cut
    (render.segments, framing included) and where the voice went. In result.json and in
    afx plan --json."""
    out: dict[str, Any] = {}
    edit, script = artifacts.get("edit"), artifacts.get("script")
    if edit is not None and edit.meta.get("segments"):
        out["cut"] = {"segments": list(edit.meta["segments"]), "speechWords": edit.meta.get("speech_words", 0)}
    if script is not None and ("preroll" in script.meta or "said" in script.meta):
        out["voice"] = {"said": list(script.meta.get("said", [])), "preroll": script.meta.get("preroll", 0.0),
                        "postroll": script.meta.get("postroll", 0.0),
                        "notes": list(script.meta.get("placement", []))}
    return out
