"""What a push reports as it goes: one small record per step, for whoever shows them.

The pusher (afx/remote/push.py) never prints: it hands each event to the `on_event`
callable it was given, in the order things happen. `job` is always the local job's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    job: str


@dataclass(frozen=True)
class NotSent(Event):
    """Spec fields left out of the body: local files (to `afx serve`) or afx's own fields."""
    fields: tuple[str, ...]
    extensions: bool  # the API is an `afx serve`, which takes afx's fields


@dataclass(frozen=True)
class Converted(Event):
    """The job's file was made into one the API's upload takes (remuxed, transcoded)."""
    file: str
    how: str


@dataclass(frozen=True)
class Analysing(Event):
    """A job with clips, for an API without them: its stages up to its clips run here."""
    what: str  # what it will become: `5 clips, after analysis`


@dataclass(frozen=True)
class LocalStage(Event):
    """One of those stages, run or found in the cache here (status running, done, cached, failed)."""
    stage: str
    status: str
    seconds: float | None = None


@dataclass(frozen=True)
class Note(Event):
    """What a stage run here warns about (fewer clips than asked for, say)."""
    message: str


@dataclass(frozen=True)
class Cut(Event):
    """A clip cut out of its job's recording into a file of its own, for upload."""
    file: str  # relative to the repo
    start: float
    end: float
    current: bool  # cut by an earlier push, and still the same


@dataclass(frozen=True)
class Following(Event):
    """An afx serve job with clips is done: its clip jobs are followed (and downloaded) too."""
    clips: tuple[str, ...]  # the remote clip jobs' ids


@dataclass(frozen=True)
class Uploading(Event):
    file: str
    size: int  # bytes


@dataclass(frozen=True)
class Uploaded(Event):
    file: str
    file_id: str
    replayed: bool  # the server had it already (same Idempotency-Key)


@dataclass(frozen=True)
class FileUnknown(Event):
    """The fileId afx.lock remembered is not known to the server: the file goes again."""
    file_id: str


@dataclass(frozen=True)
class Found(Event):
    """The remote job afx.lock names for this job, still good: it is waited for, not made again."""
    job_id: str
    status: str
    submitted: str  # "" when afx.lock does not say


@dataclass(frozen=True)
class Resubmitting(Event):
    """The remote job afx.lock names is gone (status "") or failed or cancelled."""
    job_id: str
    status: str


@dataclass(frozen=True)
class Submitted(Event):
    job_id: str
    status: str
    new: bool  # False: the server replayed the job this key made before
    cost: int | None  # credits, when the API says
    balance: Any


@dataclass(frozen=True)
class Scheduled(Event):
    at: str


@dataclass(frozen=True)
class Progress(Event):
    """A poll found the job not finished yet."""
    status: str
    stage: str  # "" unless a stage is running
    progress: float | None  # of the running stage, 0..1
    next_in: float  # seconds to its next poll


@dataclass(frozen=True)
class Waiting(Event):
    """The server has too many of the account's jobs: this one waits for a slot."""
    why: str


@dataclass(frozen=True)
class NotSubmitted(Event):
    """An API error that concerns this job alone (402, 422, ...); the others go on."""
    message: str


@dataclass(frozen=True)
class Failed(Event):
    """The remote job ended failed or cancelled."""
    status: str
    error: str


@dataclass(frozen=True)
class Downloaded(Event):
    """The job's result is in `folder` (fetched now, or `current`: already there)."""
    status: str
    folder: str  # relative to the repo, ending in /
    files: tuple[str, ...]
    current: bool
