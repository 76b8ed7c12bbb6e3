"""The webhook publisher: POST a JSON description of the publish, HMAC-SHA256 signed.

Headers: `X-Afx-Signature: sha256=<hex hmac of the body>`, `X-Afx-Delivery: <job>:<platform>:
<video sha256 prefix>` (the same on every retry, so the receiver can drop repeats). A 2xx
answer is success; 4xx fails at once; 5xx, timeouts and connection errors are retried with
exponential backoff, then fail with the last reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from afx.publish.base import Item, Published, PublishError, Save, secret

BACKOFF = 0.5  # seconds, doubled each retry


class WebhookPublisher:
    name = "webhook"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        cfg = (item.config.get("publish") or {}).get("webhook") or {}
        url = cfg.get("url")
        if not url:
            raise PublishError("webhook publisher: publish.webhook.url is not set in afx.yaml")
        key = secret(cfg.get("secret_env", "AFX_WEBHOOK_SECRET"), "webhook publisher")
        delivery = f"{item.job}:{item.platform}:{item.digest[:16]}"
        body = json.dumps({
            "event": "afx.publish", "delivery": delivery, "job": item.job, "platform": item.platform,
            "video": {"path": str(item.video), "sha256": item.digest, "seconds": round(item.seconds, 2)},
            "thumbnail": str(item.thumbnail) if item.thumbnail else None, "copy": dict(item.copy),
        }, sort_keys=True).encode()
        signature = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        attempts = int(cfg.get("attempts", 4))
        timeout = float(cfg.get("timeout", 10))
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Afx-Signature": signature, "X-Afx-Delivery": delivery,
                "User-Agent": "afx"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured
                    answer = response.read(100_000)
                try:
                    remote = str(json.loads(answer).get("id") or delivery)
                except (ValueError, AttributeError):
                    remote = delivery
                return Published(remote_id=remote, url=url)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    raise PublishError(f"webhook {url} refused the publish ({last})") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = str(getattr(exc, "reason", exc)) or type(exc).__name__
        raise PublishError(f"webhook {url} failed {attempts} times (last: {last})",
                           hint="the job stays publishable: it is retried on the next run")
