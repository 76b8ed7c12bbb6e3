"""A finished remote job's result, brought into out/<job>/: its video, thumbnail and
result.json, each written atomically, and their digests for afx.lock."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from afx.digest import sha256_file
from afx.fsutil import atomic_write
from afx.remote.api import Api
from afx.remote.items import OUT_DIR, RESULT, Item


def download(client: Api, root: Path, item: Item, result: dict[str, Any],
             before: Mapping[str, Any] | None) -> bool:
    """Fill out/<job>/ with `result` and what it links to, and set the item's files and
    digests. True: it was up to date, nothing was fetched. `before` is afx.lock's record
    of this job's last push to the API."""
    folder = root / OUT_DIR / item.name
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    wanted = []
    for key, default in (("videoUrl", "video.mp4"), ("thumbnailUrl", "thumb.jpg")):
        url = result.get(key)
        if isinstance(url, str) and url:
            wanted.append((file_name(url, default), url))
    names = [name for name, _ in wanted] + [RESULT]
    # Up to date: the same result, and the files this push's record says it downloaded
    # (their digests are kept, never taken from what is on disk now: a file edited
    # since must fail afx verify, not become the reference).
    before = before or {}
    known = before.get("files") if before.get("jobId") == item.job_id else None
    try:
        current = (folder / RESULT).read_text(encoding="utf-8") == text
    except OSError:
        current = False
    current = current and isinstance(known, dict) and all(
        isinstance(known.get(n), str) and (folder / n).is_file() for n in names)
    if current:
        assert isinstance(known, dict)
        item.digests = {n: known[n] for n in names}
    else:
        for name, url in wanted:
            client.download(url, folder / name)
        atomic_write(folder / RESULT, text)
        item.digests = {n: sha256_file(folder / n) for n in names}
    item.files = names
    return current


def file_name(url: str, default: str) -> str:
    """The last part of `url` when it is a safe file name for out/<job>/, else `default`."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    ok = name and not name.startswith(".") and name != RESULT and "/" not in name and "\\" not in name \
        and name.isprintable() and len(name) <= 100
    return name if ok else default
