"""Track search by words: case- and accent-insensitive substring match on title, artist, album.

A catalogue's titles are few bytes (100k tracks: a few MB), so they are held in memory, folded
like artist keys and joined into one string per field; a query is then a handful of C-speed
`str.find` calls, not a scroll of the collection per request. The index is built once per
catalogue state (catalogue version, track count, spec) and rebuilt when that changes; every
write path (ingest, delete, live library) ends by recomputing centroids, which changes the
catalogue version.
"""

from __future__ import annotations

import threading
import time
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from soundalike.core.artist_names import key_prefix
from soundalike.core.errors import InvalidRequest
from soundalike.core.types import Track
from soundalike.search.schema import F_ALBUM, F_ARTIST, F_TITLE
from soundalike.search.store import Store

MAX_SEARCH_LIMIT = 500
# How often the track count is compared with the one the index was built at (seconds).
COUNT_RECHECK_S = 5.0
# Between two records of one field's haystack. Folding turns \x1e into a space (str.split
# treats it as whitespace), so no folded text or query contains it and no match spans records.
_RECORD_SEP = "\x1e"


@dataclass(frozen=True)
class _Field:
    """One field of every record, folded, joined by _RECORD_SEP; `starts[i]` is where record
    i begins."""

    haystack: str
    starts: list[int]
    values: list[str]

    @classmethod
    def of(cls, values: list[str]) -> _Field:
        starts: list[int] = []
        position = 0
        for value in values:
            starts.append(position)
            position += len(value) + 1
        return cls(_RECORD_SEP.join(values), starts, values)

    def records_containing(self, needle: str) -> Iterator[int]:
        """Indices of the records whose value contains `needle`, in record order, each once."""
        position = self.haystack.find(needle)
        while position >= 0:
            record = bisect_right(self.starts, position) - 1
            yield record
            following = record + 1
            if following == len(self.starts):
                return
            position = self.haystack.find(needle, self.starts[following])


class TextIndex:
    """Every track's folded title, artist and album, in (artist, album, title) order."""

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        """`rows`: (track id, title, artist, album), as stored (None as "")."""
        folded = sorted(
            (key_prefix(artist), key_prefix(album), key_prefix(title), track_id)
            for track_id, title, artist, album in rows
        )
        self.track_ids = [row[3] for row in folded]
        self.titles = _Field.of([row[2] for row in folded])
        self.artists = _Field.of([row[0] for row in folded])
        self.albums = _Field.of([row[1] for row in folded])

    def __len__(self) -> int:
        return len(self.track_ids)

    def search(
        self, query: str, title: str, artist: str, *, limit: int, offset: int = 0
    ) -> list[str]:
        """Track ids matching every folded needle given ("" = not given), in rank order:
        `query` found in the title first, then in the artist, then in the album; within a
        rank, by artist, album, title. Stops reading once `offset + limit` are found."""
        wanted = offset + limit
        if limit <= 0 or not (query or title or artist):
            return []
        accept = self._narrowing(title, artist)
        if query:
            passes = [self.titles, self.artists, self.albums]
            needle = query
        elif title:
            passes, needle = [self.titles], title
        else:
            passes, needle = [self.artists], artist
        found: dict[int, None] = {}
        for field in passes:
            for record in field.records_containing(needle):
                if record not in found and accept(record):
                    found[record] = None
                    if len(found) >= wanted:
                        break
            if len(found) >= wanted:
                break
        return [self.track_ids[record] for record in list(found)[offset:wanted]]

    def _narrowing(self, title: str, artist: str) -> Callable[[int], bool]:
        titles, artists = self.titles.values, self.artists.values

        def accept(record: int) -> bool:
            return (not title or title in titles[record]) and (
                not artist or artist in artists[record]
            )

        return accept


class _CachedTextIndex:
    """One store's TextIndex, rebuilt when the catalogue's state changes: its spec or catalogue
    version (read on every call: both are in memory or one small metadata read), or its track
    count (an exact count costs milliseconds at 100k tracks, so it is checked at most every
    COUNT_RECHECK_S; every write path also changes the catalogue version)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._state: object = None
        self._count = -1
        self._counted_at = 0.0
        self._clock = clock
        self._index: TextIndex | None = None
        # Request threads share one index, built once under the lock.
        self._lock = threading.Lock()

    def current(self, store: Store) -> TextIndex:
        state = (store.spec(), store.catalogue_version())
        with self._lock:
            now = self._clock()
            if self._index is not None and state == self._state:
                if now - self._counted_at < COUNT_RECHECK_S:
                    return self._index
                count = store.count_tracks()
                self._counted_at = now
                if count == self._count:
                    return self._index
            self._count = store.count_tracks()
            self._counted_at = now
            self._index = TextIndex(_rows(store))
            self._state = state
            return self._index


_INDEXES: weakref.WeakKeyDictionary[Store, _CachedTextIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def _rows(store: Store) -> list[tuple[str, str, str, str]]:
    return [
        (
            track_id,
            str(payload.get(F_TITLE) or ""),
            str(payload.get(F_ARTIST) or ""),
            str(payload.get(F_ALBUM) or ""),
        )
        for track_id, payload in store.scan_track_fields([F_TITLE, F_ARTIST, F_ALBUM])
    ]


def text_index(store: Store) -> TextIndex:
    """The store's current text index (built on first use, rebuilt after catalogue changes)."""
    with _INDEXES_LOCK:
        cached = _INDEXES.get(store)
        if cached is None:
            cached = _INDEXES[store] = _CachedTextIndex()
    return cached.current(store)


def find_tracks(
    store: Store,
    query: str | None = None,
    *,
    title: str | None = None,
    artist: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Track]:
    """Tracks whose title, artist or album contains `query`, case-, accent- and
    spacing-insensitively; `title` and `artist` each narrow to tracks whose title / artist
    contains them. Title matches come first, then artist, then album matches. Nothing to
    search for (all empty once folded) gives []. Tracks come without vectors."""
    if not 0 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidRequest(f"limit must be between 0 and {MAX_SEARCH_LIMIT}, got {limit}")
    if offset < 0:
        raise InvalidRequest(f"offset must be >= 0, got {offset}")
    needles = [key_prefix(text or "") for text in (query, title, artist)]
    if limit == 0 or not any(needles):
        return []
    ids = text_index(store).search(*needles, limit=limit, offset=offset)
    return store.get_tracks(ids)
