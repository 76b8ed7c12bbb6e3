"""Instagram Graph API: a Reels container (resumable upload), its status, then media_publish.

Protocol: GET /{ig-user}/content_publishing_limit (quota per 24 h); POST /{ig-user}/media
(media_type=REELS, upload_type=resumable: answers the container id and an upload uri);
POST the bytes to the uri (headers `offset`, `file_size`); GET /{container}?fields=
status_code until FINISHED; POST /{ig-user}/media_publish?creation_id=... . An interrupted
attempt asks the container's status: PUBLISHED means it was published (never twice).
Token: AFX_INSTAGRAM_TOKEN; account: AFX_INSTAGRAM_USER_ID.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from typing import Any

from afx.publish.base import Item, Published, PublishError, Save, secret
from afx.publish.http import auth_error, call, failure, poll_seconds

WHAT = "Instagram"
ENV = "AFX_INSTAGRAM_TOKEN"
VERSION = "v21.0"


class InstagramPublisher:
    name = "instagram"
    base_url = "https://graph.facebook.com"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        token = secret(ENV, WHAT)
        user = secret("AFX_INSTAGRAM_USER_ID", WHAT)
        base = ((item.config.get("publish") or {}).get("api") or {}).get("instagram", self.base_url)
        api = f"{base}/{VERSION}"
        q = urllib.parse.urlencode
        if item.seconds > 900:
            raise PublishError(f"{WHAT}: Reels are at most 900 s; this video is {item.seconds:.0f} s")
        container = session.get("container")
        if container:
            status = self._status(api, container, token)
            if status == "PUBLISHED":
                return Published(remote_id=session.get("media_id") or container)
            if status in ("ERROR", "EXPIRED"):
                container = None
        if not container:
            limit = q({"fields": "quota_usage,config", "access_token": token})
            r = call("GET", f"{api}/{user}/content_publishing_limit?{limit}", what=WHAT)
            self._check(r)
            usage = (r.json().get("data") or [{}])[0]
            total = (usage.get("config") or {}).get("quota_total", 50)
            if usage.get("quota_usage", 0) >= total:
                raise PublishError(f"{WHAT}: the account has used its {total} posts for the last 24 hours",
                                   hint="the job stays publishable: try again later")
            r = call("POST", f"{api}/{user}/media?" + q({"media_type": "REELS", "upload_type": "resumable",
                                                         "caption": item.copy.get("caption", "")[:2200],
                                                         "access_token": token}), what=WHAT)
            self._check(r)
            container, uri = r.json().get("id"), r.json().get("uri")
            if not container or not uri:
                raise failure(WHAT, r)
            session.update(container=container, uri=uri, uploaded=False)
            save(session)
        if not session.get("uploaded"):
            size = os.path.getsize(item.video)
            r = call("POST", session["uri"], what=WHAT, body=item.video.read_bytes(), headers={
                "Authorization": f"OAuth {token}", "offset": "0", "file_size": str(size)})
            self._check(r)
            session.update(uploaded=True)
            save(session)
        for _ in range(600):
            status = self._status(api, container, token)
            if status == "FINISHED":
                break
            if status == "PUBLISHED":
                return Published(remote_id=session.get("media_id") or container)
            if status in ("ERROR", "EXPIRED"):
                session.clear()
                save(session)
                raise PublishError(f"{WHAT}: the container failed ({status})")
            time.sleep(poll_seconds())
        r = call("POST", f"{api}/{user}/media_publish?" + q({"creation_id": container, "access_token": token}),
                 what=WHAT)
        self._check(r)
        media = str(r.json().get("id") or container)
        session.update(media_id=media)
        save(session)
        return Published(remote_id=media, url=f"https://www.instagram.com/reel/{media}")

    def _status(self, api: str, container: str, token: str) -> str:
        r = call("GET", f"{api}/{container}?" + urllib.parse.urlencode({"fields": "status_code",
                                                                          "access_token": token}), what=WHAT)
        self._check(r)
        return str(r.json().get("status_code") or "")

    def _check(self, r: Any) -> None:
        err = r.json().get("error") if isinstance(r.json(), dict) else None
        if r.status in (400, 401, 403) and isinstance(err, dict) and err.get("code") == 190:
            raise auth_error(WHAT, ENV, r)
        if r.status >= 300:
            raise failure(WHAT, r)
