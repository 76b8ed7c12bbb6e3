"""The Publisher protocol and what a publisher is given."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from afx.errors import AfxError, ExitStatus


class PublishError(AfxError):
    """A publish that failed; the job stays publishable (the ledger keeps its progress)."""

    exit_status = ExitStatus.STAGE_FAILED


@dataclass(frozen=True)
class Item:
    job: str
    platform: str
    video: Path
    thumbnail: Path | None
    copy: Mapping[str, Any]  # title, description, hashtags, caption
    digest: str  # sha256 of the video: what is being published
    seconds: float
    format: str
    root: Path  # the spec repo
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    remote_id: str
    url: str = ""


Save = Callable[[dict[str, Any]], None]  # persist a resumable session (called as it progresses)


class Publisher(Protocol):
    name: str

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        """Publish item; `session` holds what an earlier, interrupted attempt saved."""


class PlatformAPI(Publisher, Protocol):
    """A platform's own upload API (`api` in afx.yaml)."""

    base_url: str  # afx.yaml's publish.api.<platform> replaces it (tests: a local stand-in)


def secret(name: str, what: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise PublishError(f"{what}: no credentials: set {name}", hint="the job stays publishable; "
                           "run `afx publish JOB` once the credentials are set")
    return value
