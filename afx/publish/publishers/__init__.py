"""Publishers by name, as afx.yaml's `publish.<platform>` names them.

- PUBLISHERS: destinations for any platform's videos: the outbox (the default), a webhook.
- APIS: what `api` means, the platform's own upload API: one publisher per platform.

Add a publisher: a module here whose class has a `name` and a `publish` method (afx.publish.
base.Publisher), and its line in PUBLISHERS (or in APIS, for a platform's own API); then
`make schemas` (config.schema.json's publish choices are made from these, afx/extensions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from afx.publish.base import PlatformAPI, Publisher
from afx.publish.publishers.instagram import InstagramPublisher
from afx.publish.publishers.outbox import OutboxPublisher
from afx.publish.publishers.tiktok import TikTokPublisher
from afx.publish.publishers.webhook import WebhookPublisher
from afx.publish.publishers.youtube import YouTubePublisher

DEFAULT = "outbox"
API = "api"

PUBLISHERS: dict[str, Callable[[], Publisher]] = {
    "outbox": OutboxPublisher,
    "webhook": WebhookPublisher,
}

APIS: dict[str, type[PlatformAPI]] = {
    "youtube": YouTubePublisher,
    "tiktok": TikTokPublisher,
    "instagram": InstagramPublisher,
}


def choices() -> list[str]:
    """What afx.yaml may name for a platform: each publisher, then `api`."""
    return [*PUBLISHERS, API]


def for_platform(platform: str, config: Mapping[str, Any]) -> Publisher:
    choice = ((config.get("publish") or {}).get(platform)) or DEFAULT
    if choice == API:
        return APIS[platform]()
    return PUBLISHERS[choice]()
