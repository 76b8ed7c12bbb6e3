"""TikTok Content Posting API (direct post): creator info, init, chunked upload, status.

Protocol: POST /v2/post/publish/creator_info/query/ (privacy options, the creator's longest
video), POST /v2/post/publish/video/init/ (FILE_UPLOAD with video_size, chunk_size,
total_chunk_count; answers publish_id and upload_url), PUT each chunk in order with
Content-Range (206, then 201), then POST /v2/post/publish/status/fetch/ until
PUBLISH_COMPLETE. Chunks are 5-64 MB (a video under 5 MB goes in one); init is limited to 6
calls a minute (429 rate_limit_exceeded). An interrupted attempt asks for the status of its
publish_id first and re-sends the chunks not acknowledged. Token: AFX_TIKTOK_TOKEN.
"""

from __future__ import annotations

import os
import time
from typing import Any

from afx.publish.base import Item, Published, PublishError, Save, secret
from afx.publish.http import auth_error, call, failure, poll_seconds, upload_chunk

WHAT = "TikTok"
ENV = "AFX_TIKTOK_TOKEN"
MIN_CHUNK, MAX_CHUNK = 5 * 1024 * 1024, 64 * 1024 * 1024


def chunking(size: int, wanted: int) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) by TikTok's rules; tests may ask for smaller chunks."""
    if size < MIN_CHUNK and wanted >= size:
        return size, 1
    chunk = min(max(wanted, 1), MAX_CHUNK)
    return chunk, max(size // chunk, 1)


class TikTokPublisher:
    name = "tiktok"
    base_url = "https://open.tiktokapis.com"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        token = secret(ENV, WHAT)
        base = ((item.config.get("publish") or {}).get("api") or {}).get("tiktok", self.base_url)
        auth = {"Authorization": f"Bearer {token}"}
        size = os.path.getsize(item.video)
        if session.get("publish_id"):
            done = self._status(base, auth, session, save, wait=False)
            if done:
                return done
        else:
            r = call("POST", f"{base}/v2/post/publish/creator_info/query/", what=WHAT, headers=auth, data={})
            if r.status == 401:
                raise auth_error(WHAT, ENV, r)
            if r.status != 200:
                raise failure(WHAT, r)
            info = r.json().get("data", {})
            limit = info.get("max_video_post_duration_sec")
            if limit and item.seconds > float(limit):
                raise PublishError(f"{WHAT}: this creator can post videos of at most {limit} s "
                                   f"(max_video_post_duration_sec); this video is {item.seconds:.0f} s")
            privacy = (info.get("privacy_level_options") or ["SELF_ONLY"])[0]
            chunk, count = chunking(size, upload_chunk())
            r = call("POST", f"{base}/v2/post/publish/video/init/", what=WHAT, headers=auth, data={
                "post_info": {"title": item.copy.get("caption", "")[:2200], "privacy_level": privacy},
                "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                                "total_chunk_count": count}})
            if r.status == 401:
                raise auth_error(WHAT, ENV, r)
            if r.status == 429:
                raise PublishError(f"{WHAT}: rate limited (6 uploads a minute): try again in a minute",
                                   hint="the job stays publishable")
            data = r.json().get("data", {})
            if r.status != 200 or not data.get("upload_url"):
                raise failure(WHAT, r)
            session.update(publish_id=data["publish_id"], upload_url=data["upload_url"], chunk=chunk, count=count,
                           next=0)
            save(session)
        self._upload(item, size, session, save)
        return self._status(base, auth, session, save, wait=True)  # type: ignore[return-value]

    def _upload(self, item: Item, size: int, session: dict, save: Save) -> None:
        chunk, count = session["chunk"], session["count"]
        with open(item.video, "rb") as fh:
            for k in range(int(session.get("next", 0)), count):
                first = k * chunk
                last = size - 1 if k == count - 1 else first + chunk - 1
                fh.seek(first)
                data = fh.read(last - first + 1)
                r = call("PUT", session["upload_url"], what=WHAT, body=data, headers={
                    "Content-Type": "video/mp4", "Content-Length": str(len(data)),
                    "Content-Range": f"bytes {first}-{last}/{size}"})
                if r.status not in (201, 206):
                    raise failure(WHAT, r)
                session.update(next=k + 1)
                save(session)

    def _status(self, base: str, auth: dict, session: dict, save: Save, *, wait: bool) -> Published | None:
        for _ in range(600 if wait else 1):
            r = call("POST", f"{base}/v2/post/publish/status/fetch/", what=WHAT, headers=auth,
                     data={"publish_id": session["publish_id"]})
            if r.status == 401:
                raise auth_error(WHAT, ENV, r)
            if r.status != 200:
                raise failure(WHAT, r)
            data = r.json().get("data", {})
            status = data.get("status")
            if status == "PUBLISH_COMPLETE":
                ids = data.get("publicaly_available_post_id") or [session["publish_id"]]
                return Published(remote_id=str(ids[0]), url=f"https://www.tiktok.com/video/{ids[0]}")
            if status == "FAILED":
                session.clear()
                save(session)
                raise PublishError(f"{WHAT}: the upload failed ({data.get('fail_reason', 'no reason given')})")
            if not wait:
                return None
            time.sleep(poll_seconds())
        raise PublishError(f"{WHAT}: still processing after waiting; it is checked again on the next run")
