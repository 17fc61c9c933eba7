"""The artist-name index: every artist in key order, for prefix listing, pages and suggestions.

Built from the artists collection in one scroll and kept in memory; writes through the same
Store drop it, and `max_age_seconds` bounds how long it may miss writes by other processes.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class NameEntry:
    key: str
    name: str
    track_count: int


class NameIndex:
    """All artists sorted by key: prefix ranges by bisection, pages by slicing."""

    def __init__(self, entries: list[NameEntry]) -> None:
        self.entries = sorted(entries, key=lambda e: (e.key, e.name))
        self.keys = [e.key for e in self.entries]
        self.names = {e.key: e.name for e in self.entries}

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        """[start, end) of the entries whose key starts with `prefix`."""
        if not prefix:
            return 0, len(self.entries)
        start = bisect_left(self.keys, prefix)
        # Every key with this prefix sorts before prefix + the highest code point.
        end = bisect_left(self.keys, prefix + "\U0010ffff", lo=start)
        return start, end


class CachedNameIndex:
    """A NameIndex loaded on first use, rebuilt after `invalidate()` or once older than
    `max_age_seconds` (None: only after invalidate)."""

    def __init__(
        self,
        load: Callable[[], list[NameEntry]],
        *,
        max_age_seconds: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_age_seconds = max_age_seconds
        self._clock = clock
        self._index: NameIndex | None = None
        self._built_at = 0.0
        # Request threads share one index: it is built once, under the lock.
        self._lock = threading.Lock()

    def current(self) -> NameIndex:
        with self._lock:
            stale = (
                self._max_age_seconds is not None
                and self._clock() - self._built_at > self._max_age_seconds
            )
            if self._index is None or stale:
                self._index = NameIndex(self._load())
                self._built_at = self._clock()
            return self._index

    def invalidate(self) -> None:
        with self._lock:
            self._index = None
