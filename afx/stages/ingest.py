"""Stage 1, ingest: the job's source media, downloaded or taken as it is, checked and probed.

fetch: each of url, urls (in that order) through yt-dlp behind the address policy of
afx.yaml's `fetch.allow_hosts` (issue 4). upload: the spec's `file`, or a server job's stored
upload: any recording ffmpeg reads (MP4, MOV, MKV, WebM, FLV, TS, AVI, MPG...; checked by
content), up to afx.yaml's fetch.max_gb (20 GB by default), which holds downloads too:
500 MB is the API's upload cap, not a local limit (issues 12, 14).

- MP4/MOV and Matroska/WebM are read in place, not copied: a 3-hour VOD of several GB adds
  nothing to the store. The file is an input of every stage that reads it (its digest is in
  their keys), so a change to it reruns them, and the stage finds it as ctx.files["file"]
  (`source_path`), wherever the repo is checked out.
- Other containers (FLV, MPEG-TS/PS, AVI, ASF, Ogg...) are remuxed into Matroska, streams
  copied: their seeking is unreliable (an FLV seeked to 0 s decodes no frame at all), and a
  render seeks into every segment. A codec Matroska cannot hold is transcoded instead.
compose and generate have no source media: the stage records that and produces nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.errors import StageError
from afx.spec.job import Job
from afx.stages.base import StageContext, pick

IN_PLACE = ("mov", "matroska")  # the probe's first format name: containers read where they are


def source_path(ctx: StageContext, source: Mapping[str, Any]) -> Path:
    """Where a stage reads one of ingest's sources: the stored file, or the job's own file
    for a source kept in place (the stage must declare it: `source_files`)."""
    ref = source.get("ref")
    if ref:
        path = ctx.files.get(ref)
        if path is None:
            raise StageError(f"the source {source.get('origin')} is read in place, but this stage was not given it")
        return path
    return ctx.inputs["ingest"].path(source["name"])


def source_files(job: Job) -> dict[str, Path]:
    """The local source files a job's stages read (to declare in Stage.files)."""
    path = job.local_path("file") or job.local_path("fileId")
    return {"file": path} if path is not None else {}


def source_urls(job: Job) -> list[str]:
    urls = [job["url"]] if job.get("url") else []
    urls += [u for u in job.get("urls", ()) if u not in urls]
    return urls


class IngestStage:
    name = "ingest"
    version = "3"
    after: tuple[str, ...] = ()

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "url", "urls", "fileId")

    def files(self, job: Job) -> Mapping[str, Path]:
        # A spec's `file`, or the stored upload a server job's fileId names (afx serve).
        return source_files(job)

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        job = ctx.job
        entry = job.get("entry", "fetch")
        if entry == "fetch":
            return {"sources": self._fetch(ctx, source_urls(job))}
        if entry == "upload":
            return {"sources": [self._upload(ctx)]}
        return {"sources": []}

    def _fetch(self, ctx: StageContext, urls: list[str]) -> list[dict[str, Any]]:
        import contextlib
        import fcntl
        import shutil

        from afx.media.fetch import fetch, max_bytes_of
        from afx.media.netguard import Policy
        from afx.media.probe import probe

        policy = Policy.from_config(dict(ctx.config))
        limit = max_bytes_of(ctx.config)
        # Downloads go to the resume folder, which outlives an interrupted run: a download cut
        # short is continued next run, and finished ones stay there until all are done. Held
        # (an flock) meanwhile: another job with this stage's key, run at once, downloads into
        # its own work folder instead of into the same part files.
        with contextlib.ExitStack() as stack:
            resume = ctx.resume
            if resume is not None:
                resume.mkdir(parents=True, exist_ok=True)
                held = stack.enter_context(open(resume / ".lock", "a"))
                try:
                    fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    resume = None
            keep = resume if resume is not None else ctx.workdir
            sources, paths = [], []
            for i, url in enumerate(urls):
                def progress(f: float, i: int = i) -> None:
                    ctx.progress((i + f) / len(urls), f"downloading {i + 1}/{len(urls)}")

                path = fetch(url, keep, f"source{i}", policy, progress, max_bytes=limit, partial=resume)
                info = probe(path, label=url)
                sources.append({"name": path.name, "origin": url, "probe": info.to_dict()})
                paths.append(path)
            for path in paths:
                if path.parent != ctx.workdir:
                    shutil.move(str(path), str(ctx.workdir / path.name))
        return sources

    def _upload(self, ctx: StageContext) -> dict[str, Any]:
        from afx.media.fetch import max_bytes_of, size_text
        from afx.media.ffmpeg import MediaError
        from afx.media.normalize import remux
        from afx.media.probe import probe

        if "file" not in ctx.files:
            raise StageError(f"fileId {ctx.job.get('fileId')!r} names a file uploaded to an AuraFlux server; "
                             "a local run needs `file:` (a path in the spec repo)")
        src = ctx.files["file"]
        label = ctx.job.get("file") or ctx.job["fileId"]
        size, limit = src.stat().st_size, max_bytes_of(ctx.config)
        if size == 0:
            raise MediaError(f"{label}: file is empty (0 bytes)")
        if size > limit:
            raise MediaError(f"{label}: the file is {size_text(size)}, over the limit of {size_text(limit)}",
                             "raise fetch.max_gb in afx.yaml to read it")
        info = probe(src, label=label)
        if info.format.split(",")[0] in IN_PLACE:
            return {"name": None, "ref": "file", "origin": label, "probe": info.to_dict(), "kept": "in place"}
        dst = ctx.output("source0.mkv")
        how = remux(src, dst, info, label, lambda f: ctx.progress(f, "remuxing"))
        return {"name": dst.name, "origin": label, "probe": probe(dst, label=label).to_dict(),
                "kept": f"{how} from {info.format.split(',')[0]}"}
