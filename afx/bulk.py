"""Work on many small objects at once (a 10,000-job repo's caches, issue 15).

CPython's cyclic garbage collector runs every 700 allocations and, now and then, walks
every object alive: loading 10,000 jobs' records and resolved jobs triggers hundreds of
collections that find nothing (the data is plain trees: reference counting frees it) and
took more than half of a no-op run. `paused_gc()` turns the collector off for such a stretch,
and then counts what it made as old: the first collection after it would otherwise walk all
of it at once, to find nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector off inside (nested: on again only when the outermost ends, and
    only if it was on). Reference counting still frees what the stretch drops."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            # freeze + unfreeze moves every tracked object into the oldest generation (two
            # list splices), so the next young collections do not walk them; a later full
            # collection still does (nothing is kept from the collector for good).
            gc.freeze()
            gc.unfreeze()
            gc.enable()
