"""Publishers by name: outbox (default), webhook, and the platforms' own APIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afx.publish.base import Publisher


def for_platform(platform: str, config: Mapping[str, Any]) -> Publisher:
    choice = ((config.get("publish") or {}).get(platform)) or "outbox"
    if choice == "webhook":
        from afx.publish.publishers.webhook import WebhookPublisher

        return WebhookPublisher()
    if choice == "api":
        from afx.publish.publishers.instagram import InstagramPublisher
        from afx.publish.publishers.tiktok import TikTokPublisher
        from afx.publish.publishers.youtube import YouTubePublisher

        return {"youtube": YouTubePublisher, "tiktok": TikTokPublisher, "instagram": InstagramPublisher}[platform]()
    from afx.publish.publishers.outbox import OutboxPublisher

    return OutboxPublisher()
