"""YouTube Data API: resumable `videos.insert`, then the custom thumbnail.

Protocol: POST .../upload/youtube/v3/videos?uploadType=resumable (metadata; the answer's
Location is the upload session), PUT chunks with Content-Range (308 Resume Incomplete with
Range until the last, which answers the video resource). An interrupted upload asks the
session where it stopped (`Content-Range: bytes */size`) and continues from there; a lost
session (404/410) starts a new one. Token: AFX_YOUTUBE_TOKEN (an OAuth access token).
"""

from __future__ import annotations

import os
import re
from typing import Any

from afx.publish.base import Item, Published, PublishError, Save, secret
from afx.publish.http import Response, auth_error, call, failure, upload_chunk

WHAT = "YouTube"
ENV = "AFX_YOUTUBE_TOKEN"
UNIT = 256 * 1024  # YouTube wants chunks in multiples of 256 KiB


class YouTubePublisher:
    name = "youtube"
    base_url = "https://www.googleapis.com"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        token = secret(ENV, WHAT)
        base = ((item.config.get("publish") or {}).get("api") or {}).get("youtube", self.base_url)
        auth = {"Authorization": f"Bearer {token}"}
        size = os.path.getsize(item.video)
        if item.format == "short" and item.seconds > 180:
            raise PublishError(f"{WHAT}: Shorts are at most 180 s; this video is {item.seconds:.0f} s")
        video_id = session.get("video_id")
        if not video_id:
            video_id = self._upload(item, base, auth, size, session, save)
        if item.thumbnail is not None and not session.get("thumbnail_set"):
            r = call("POST", f"{base}/upload/youtube/v3/thumbnails/set?videoId={video_id}", what=WHAT,
                     headers={**auth, "Content-Type": "image/jpeg"}, body=item.thumbnail.read_bytes())
            if r.status == 401:
                raise auth_error(WHAT, ENV, r)
            session["thumbnail_set"] = r.status < 300
            save(session)
        return Published(remote_id=video_id, url=f"https://youtube.com/shorts/{video_id}" if item.format == "short"
                         else f"https://youtu.be/{video_id}")

    def _upload(self, item: Item, base: str, auth: dict, size: int, session: dict, save: Save) -> str:
        url = session.get("session_url")
        offset = 0
        if url:
            r = call("PUT", url, what=WHAT, headers={**auth, "Content-Range": f"bytes */{size}",
                                                     "Content-Length": "0"}, body=b"")
            if r.status in (200, 201):
                return self._done(r, session, save)
            if r.status == 308:
                offset = _next_byte(r)
            elif r.status in (404, 410):
                url = None  # the session is gone: start again
            elif r.status == 401:
                raise auth_error(WHAT, ENV, r)
            else:
                raise failure(WHAT, r)
        if not url:
            meta = {"snippet": {"title": item.copy.get("title", ""), "description": item.copy.get("description", ""),
                                "tags": [t.lstrip("#") for t in item.copy.get("hashtags", [])], "categoryId": "20"},
                    "status": {"privacyStatus": "private", "selfDeclaredMadeForKids": False}}
            r = call("POST", f"{base}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status", what=WHAT,
                     headers={**auth, "X-Upload-Content-Length": str(size), "X-Upload-Content-Type": "video/mp4"},
                     data=meta)
            if r.status == 401:
                raise auth_error(WHAT, ENV, r)
            if r.status != 200 or not r.headers.get("Location"):
                raise failure(WHAT, r)
            url = r.headers["Location"]
            session.update(session_url=url)
            save(session)
            offset = 0
        chunk = max(UNIT, upload_chunk() // UNIT * UNIT)
        with open(item.video, "rb") as fh:
            while True:
                fh.seek(offset)
                data = fh.read(chunk)
                end = offset + len(data) - 1
                r = call("PUT", url, what=WHAT, headers={**auth, "Content-Length": str(len(data)),
                                                         "Content-Range": f"bytes {offset}-{end}/{size}"}, body=data)
                if r.status in (200, 201):
                    return self._done(r, session, save)
                if r.status == 308:
                    offset = _next_byte(r)
                    session.update(offset=offset)
                    save(session)
                    continue
                if r.status == 401:
                    raise auth_error(WHAT, ENV, r)
                raise failure(WHAT, r)

    def _done(self, r: Response, session: dict, save: Save) -> str:
        video_id = str((r.json() or {}).get("id") or "")
        if not video_id:
            raise failure(WHAT, r)
        session.update(video_id=video_id)
        save(session)
        return video_id


def _next_byte(r: Response) -> int:
    m = re.match(r"bytes=0-(\d+)", r.headers.get("Range", "") or r.headers.get("range", ""))
    return int(m.group(1)) + 1 if m else 0
