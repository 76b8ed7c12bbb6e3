"""Stage 1, ingest: the job's source media, downloaded or copied, checked and probed (issue 4).

fetch: each of url, urls (in that order) through yt-dlp behind the address policy of
afx.yaml's `fetch.allow_hosts`. upload: the spec's `file` (MP4/MOV by content, at most 500
MB), copied so later edits of the original cannot change a cached result. compose and
generate have no source media: the stage records that and produces nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job

MAX_UPLOAD = 500 * 1024 * 1024


def source_urls(job: Job) -> list[str]:
    urls = [job["url"]] if job.get("url") else []
    urls += [u for u in job.get("urls", ()) if u not in urls]
    return urls


class IngestStage:
    name = "ingest"
    version = "2"
    after: tuple[str, ...] = ()

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "url", "urls", "fileId")

    def files(self, job: Job) -> Mapping[str, Path]:
        # A spec's `file`, or the stored upload a server job's fileId names (afx serve).
        path = job.local_path("file") or job.local_path("fileId")
        return {"file": path} if path is not None else {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.ffmpeg import MediaError

        job = ctx.job
        entry = job.get("entry", "fetch")
        try:
            if entry == "fetch":
                return {"sources": self._fetch(ctx, source_urls(job))}
            if entry == "upload":
                return {"sources": [self._upload(ctx)]}
        except MediaError as exc:
            raise StageError(str(exc)) from None
        return {"sources": []}

    def _fetch(self, ctx: StageContext, urls: list[str]) -> list[dict[str, Any]]:
        from afx.media.fetch import fetch
        from afx.media.netguard import Policy
        from afx.media.probe import probe

        policy = Policy.from_config(dict(ctx.config))
        sources = []
        for i, url in enumerate(urls):
            def progress(f: float, i: int = i) -> None:
                ctx.progress((i + f) / len(urls), f"downloading {i + 1}/{len(urls)}")

            path = fetch(url, ctx.workdir, f"source{i}", policy, progress)
            info = probe(path, label=url)
            sources.append({"name": path.name, "origin": url, "probe": info.to_dict()})
        return sources

    def _upload(self, ctx: StageContext) -> dict[str, Any]:
        from afx.media.ffmpeg import MediaError
        from afx.media.probe import probe, sniff_mp4

        if "file" not in ctx.files:
            raise StageError(f"fileId {ctx.job.get('fileId')!r} names a file uploaded to an AuraFlux server; "
                             "a local run needs `file:` (a path in the spec repo)")
        src = ctx.files["file"]
        label = ctx.job.get("file") or ctx.job["fileId"]
        size = src.stat().st_size
        if size == 0:
            raise MediaError(f"{label}: file is empty (0 bytes)")
        if size > MAX_UPLOAD:
            raise MediaError(f"{label}: {size / 1048576:.0f} MB is over the 500 MB upload limit")
        if not sniff_mp4(src):
            raise MediaError(f"{label}: not an MP4 or MOV file (checked by content, not by its name)")
        info = probe(src, label=label)
        if info.format != "mov,mp4,m4a,3gp,3g2,mj2":
            raise MediaError(f"{label}: not an MP4 or MOV file ({info.format})")
        dst = ctx.output(f"source0{src.suffix.lower() or '.mp4'}")
        shutil.copyfile(src, dst)
        return {"name": dst.name, "origin": label, "probe": info.to_dict()}
