"""Garbage-collector settings for the long-running loops (the collector, the simulator)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["fewer_collections"]

_lock = threading.Lock()
_depth = 0  # blocks inside fewer_collections(), in any thread
_saved: tuple[tuple[int, ...], bool] = ((), False)  # thresholds before, and whether we froze


@contextlib.contextmanager
def fewer_collections(young: int = 20_000) -> Iterator[None]:
    """Fewer, cheaper garbage collections inside the block; the settings are restored when
    the last such block (of any thread) ends.

    A status is a tree of a few dozen dicts and lists that lives until its batch is written
    (in the simulator, a post lives for the whole run), so with the default thresholds a
    young collection runs every few dozen statuses and the full ones walk everything
    imported: about a fifth of the collector's CPU. The objects that exist on entry (modules,
    mostly) are frozen out of the collections, and young collections wait for `young` new
    objects. Reference cycles are still collected, only less often.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            freeze = gc.get_freeze_count() == 0  # leave a caller's own freeze alone
            _saved = (gc.get_threshold(), freeze)
            if freeze:
                gc.collect()
                gc.freeze()
            gc.set_threshold(young, 10, 10)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                thresholds, froze = _saved
                gc.set_threshold(*thresholds)
                if froze:
                    gc.unfreeze()
