"""Content digests, in one place: sha256 of files and of canonical JSON.

The engine's stage keys, the store's object names, publish content identity and afx push's
idempotency keys are all these; a change here changes every cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

_CHUNK = 1 << 20
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


def digest_of(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()
