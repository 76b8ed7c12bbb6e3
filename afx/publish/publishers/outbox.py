"""The outbox: a ready-to-upload folder per platform and job, for a person to post by hand.

    outbox/<platform>/<job>/video.mp4, thumb.jpg, caption.txt, title.txt, copy.json, MANIFEST.json

MANIFEST.json holds the platform's limits and the steps to post it by hand (its record,
afx.media.platforms). Built in a hidden folder and renamed into place, so a folder that
exists is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from afx.media.platforms import PLATFORMS
from afx.publish.base import Item, Published, Save


class OutboxPublisher:
    name = "outbox"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        base = (item.root / ((item.config.get("publish") or {}).get("outbox") or "outbox")).resolve()
        if not base.is_relative_to(item.root.resolve()):
            raise ValueError("publish.outbox must stay inside the spec repo")
        final = base / item.platform / item.job
        base.joinpath(item.platform).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{item.job}.", dir=base / item.platform))
        try:
            _place(item.video, tmp / "video.mp4")
            if item.thumbnail is not None:
                _place(item.thumbnail, tmp / "thumb.jpg")
            (tmp / "caption.txt").write_text(item.copy.get("caption", "") + "\n", encoding="utf-8")
            (tmp / "title.txt").write_text(item.copy.get("title", "") + "\n", encoding="utf-8")
            (tmp / "copy.json").write_text(json.dumps(dict(item.copy), indent=2, ensure_ascii=False) + "\n")
            platform = PLATFORMS[item.platform]
            limits = platform.limits
            manifest = {
                "job": item.job, "platform": item.platform, "video": "video.mp4", "video_sha256": item.digest,
                "seconds": round(item.seconds, 2), "thumbnail": "thumb.jpg" if item.thumbnail else None,
                "title": item.copy.get("title"), "hashtags": list(item.copy.get("hashtags", [])),
                "limits": {"title": limits.title, "caption": limits.caption, "hashtags": limits.hashtags},
                "steps": platform.by_hand,
            }
            (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            if final.exists():  # an earlier, unrecorded attempt: replace it whole
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        rel = final.relative_to(item.root.resolve())
        return Published(remote_id=str(rel), url=str(rel))


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
