"""The artists collection of a store in memory: centroids as one matrix, names, track counts,
genres, and the exact neighbour table (neighbours.py) the stored lists hold.

Why. An embedded (Edge) store has one writer, this process (its data dir is locked), so what
it wrote is what is stored. A copy kept current by the Store's own writes lets

- "artists like X" answer from memory: no store read per request (`served`);
- the neighbour lists follow a few changed artists without reading every centroid and list
  back from the store (half a minute at 100,000 artists), which made each live-library batch
  and each incremental update cost as much as the whole catalogue.

For a Qdrant server (other processes write there) `load` still gives a throwaway copy for one
upkeep, as every upkeep needs the whole catalogue once.

Consistency. `put` and `remove` are called after the store write, with what the store returned
(`Store` reads the written centroids back: Qdrant normalises vectors, so the copy holds what a
later read would give, bit for bit). A load runs alongside writes: keys written meanwhile are
read again once it is installed. Lookups read only `served`, an immutable snapshot published
after the lists were written for a catalogue version; they use it only while that version is
still the store's, so a snapshot is never answered from once the catalogue moved on.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from soundalike.core.errors import StoreError
from soundalike.core.identity import artist_id64, artist_point_id
from soundalike.core.types import Artist, ArtistHit
from soundalike.search import neighbours
from soundalike.search.backend import Backend, StoredPoint
from soundalike.search.points import artist_from
from soundalike.search.schema import F_ARTIST_KEY, RETRIEVE_BATCH

# Centroids converted from Python lists at once (see `_append`).
CONVERT_ROWS = 512


class StoredRow(Protocol):
    """A stored list, decoded (neighbour_lists.StoredList). Read-only members, so that the
    frozen StoredList matches."""

    @property
    def ids(self) -> np.ndarray: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def next_score(self) -> float: ...


@dataclass(frozen=True)
class ServedLists:
    """What a lookup reads: the neighbour table exact for catalogue `version`, and each row's
    artist. Never mutated once published (a newer one replaces it whole)."""

    version: str
    row_of: dict[str, int]
    keys: list[str]
    names: list[str]
    track_counts: np.ndarray
    genres: list[list[str]]
    table: neighbours.NeighbourTable

    def artist(self, row: int) -> Artist:
        return Artist(
            name=self.names[row],
            artist_key=self.keys[row],
            track_count=int(self.track_counts[row]),
            genres=list(self.genres[row]),
        )

    def neighbours_of(
        self, artist_key: str, limit: int, min_tracks: int, only_keys: set[str] | None
    ) -> list[ArtistHit] | None:
        """As `NeighbourLists.neighbours_of`: None when the list cannot answer in full."""
        row = self.row_of.get(artist_key)
        if row is None:
            return None
        listed = self.table.neighbours[row]
        scores = self.table.scores[row]
        hits: list[ArtistHit] = []
        for other, score in zip(listed.tolist(), scores.tolist(), strict=True):
            if other < 0:
                break
            if self.track_counts[other] < min_tracks:
                continue
            if only_keys is not None and self.keys[other] not in only_keys:
                continue
            hits.append(ArtistHit(self.artist(other), score))
            if len(hits) == limit:
                return hits
        # Short: exact only when the list holds every other artist.
        return hits if self.table.next_scores[row] == -np.inf else None


class ArtistMirror:
    """Rows in insertion order (load order, then new artists appended); a removed artist's row
    stays, marked dead, until `compact` (run by the upkeep). All mutation under `lock`."""

    def __init__(self, dim: int) -> None:
        self.lock = threading.RLock()
        self.dim = dim
        self.keys: list[str] = []
        self.row_of: dict[str, int] = {}
        self.names: list[str] = []
        self.track_counts: list[int] = []
        self.genres: list[list[str]] = []
        self.id64s = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self.alive = np.zeros(0, dtype=bool)
        self.size = 0
        # The neighbour table of the first `table.neighbours.shape[0]` rows, as the store holds
        # it, and the keys whose centroid changed since (their lists in it are not theirs).
        self.table: neighbours.NeighbourTable | None = None
        self.changed: set[str] = set()
        self._sorted_keys: list[str] = []
        self._ranks: np.ndarray | None = None
        self.served: ServedLists | None = None

    # --- reading the store ----------------------------------------------------------------

    @classmethod
    def from_points(cls, points: Sequence[StoredPoint], dim: int) -> ArtistMirror:
        """The artists of these points (with vectors), in key order; no table yet."""
        ordered = sorted(points, key=lambda p: str(p.payload[F_ARTIST_KEY]))
        mirror = cls(dim)
        mirror._append([artist_from(p) for p in ordered], [p.vector for p in ordered])
        if np.unique(mirror.id64s[: mirror.size]).size != mirror.size:
            raise StoreError(
                "two artists share the first 8 bytes of their point ids: neighbour lists "
                "cannot name them apart"
            )
        return mirror

    def set_stored_lists(self, lists: Sequence[StoredRow | None]) -> None:
        """The lists the store holds, one per row (None: absent, unreadable, or computed for
        another centroid), as the table; rows without one count as changed."""
        with self.lock:
            n, width = self.size, neighbours.K + neighbours.SPARE
            table = neighbours.NeighbourTable.empty(n, width)
            order = np.argsort(self.id64s[:n])
            sorted_ids = self.id64s[:n][order]
            for row, entry in enumerate(lists):
                if entry is None or entry.ids.size > width:
                    self.changed.add(self.keys[row])
                    continue
                position = np.searchsorted(sorted_ids, entry.ids).clip(0, max(n - 1, 0))
                exists = sorted_ids[position] == entry.ids
                table.neighbours[row, : entry.ids.size] = np.where(
                    exists, order[position], neighbours.DELETED
                )
                table.scores[row, : entry.ids.size] = entry.scores
                table.next_scores[row] = entry.next_score
            self.table = table

    def refresh_keys(self, backend: Backend, collection: str, keys: Iterable[str]) -> None:
        """Reads these artists again from the store, after a write (or while a load ran)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return
        with self.lock:
            found: dict[str, StoredPoint] = {}
            for start in range(0, len(wanted), RETRIEVE_BATCH):
                ids = [artist_point_id(k) for k in wanted[start : start + RETRIEVE_BATCH]]
                for point in backend.retrieve(
                    collection, ids, with_payload=True, with_vectors=True
                ):
                    found[str(point.payload[F_ARTIST_KEY])] = point
            present = [found[k] for k in wanted if k in found]
            self.put([artist_from(p) for p in present], [p.vector for p in present])
            self.remove(k for k in wanted if k not in found)

    # --- following the store's writes -----------------------------------------------------

    def put(self, artists: Sequence[Artist], centroids: Sequence[Sequence[float] | None]) -> None:
        """Artists as just written (new or replacing), with their centroids as stored."""
        with self.lock:
            fresh: list[tuple[Artist, Sequence[float] | None]] = []
            for artist, centroid in zip(artists, centroids, strict=True):
                row = self.row_of.get(artist.artist_key)
                if row is None:
                    fresh.append((artist, centroid))
                    continue
                self.names[row] = artist.name
                self.track_counts[row] = int(artist.track_count)
                self.genres[row] = list(artist.genres)
                self._matrix[row] = np.asarray(centroid, dtype=np.float32)
                self.changed.add(artist.artist_key)
            if fresh:
                self._append([a for a, _ in fresh], [c for _, c in fresh])
                self.changed.update(a.artist_key for a, _ in fresh)

    def remove(self, artist_keys: Iterable[str]) -> None:
        with self.lock:
            for key in artist_keys:
                row = self.row_of.pop(key, None)
                if row is None:
                    continue
                self.alive[row] = False
                self.changed.discard(key)
                index = bisect.bisect_left(self._sorted_keys, key)
                if index < len(self._sorted_keys) and self._sorted_keys[index] == key:
                    del self._sorted_keys[index]
                self._ranks = None

    def _append(
        self, artists: Sequence[Artist], centroids: Sequence[Sequence[float] | None]
    ) -> None:
        count = len(artists)
        if count == 0:
            return
        needed = self.size + count
        if needed > self._matrix.shape[0]:
            capacity = max(needed, int(self._matrix.shape[0] * 1.25) + 64)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self.size] = self._matrix[: self.size]
            self._matrix = grown
            self.alive = np.concatenate([self.alive, np.zeros(capacity - self.alive.size, bool)])
            self.id64s = np.concatenate(
                [self.id64s, np.zeros(capacity - self.id64s.size, np.int64)]
            )
        rows = range(self.size, needed)
        # In slices: one conversion of 100,000 centroids holds the GIL for seconds.
        for start in range(0, count, CONVERT_ROWS):
            part = centroids[start : start + CONVERT_ROWS]
            at = self.size + start
            self._matrix[at : at + len(part)] = np.asarray(part, dtype=np.float32).reshape(
                len(part), self.dim
            )
        for row, artist in zip(rows, artists, strict=True):
            self.keys.append(artist.artist_key)
            self.row_of[artist.artist_key] = row
            self.names.append(artist.name)
            self.track_counts.append(int(artist.track_count))
            self.genres.append(list(artist.genres))
            self.id64s[row] = artist_id64(artist.artist_key)
            bisect.insort(self._sorted_keys, artist.artist_key)
        self.alive[self.size : needed] = True
        self.size = needed
        self._ranks = None

    # --- for the upkeep -------------------------------------------------------------------

    @property
    def matrix(self) -> np.ndarray:
        """The live rows' centroids (a view: valid until the next write)."""
        return self._matrix[: self.size]

    def compact(self) -> None:
        """Drops dead rows; the table's lists then mark the dropped artists DELETED (for
        `neighbours.update` to replace) and gain empty rows for artists added since. Live rows
        from the end move into the holes, so the cost follows the deletions, not the size."""
        with self.lock:
            n = self.size
            table = self.table
            if table is not None and table.neighbours.shape[0] < n:
                extra = n - table.neighbours.shape[0]
                grown = neighbours.NeighbourTable.empty(extra, table.neighbours.shape[1])
                table = neighbours.NeighbourTable(
                    np.vstack([table.neighbours, grown.neighbours]),
                    np.vstack([table.scores, grown.scores]),
                    np.concatenate([table.next_scores, grown.next_scores]),
                )
            dead = np.flatnonzero(~self.alive[:n])
            if dead.size == 0:
                self.table = table
                return
            size = n - dead.size
            holes = dead[dead < size]
            movers = np.flatnonzero(self.alive[size:n]) + size
            self._matrix[holes] = self._matrix[movers]
            self.id64s[holes] = self.id64s[movers]
            for hole, mover in zip(holes.tolist(), movers.tolist(), strict=True):
                key = self.keys[mover]
                self.keys[hole] = key
                self.names[hole] = self.names[mover]
                self.track_counts[hole] = self.track_counts[mover]
                self.genres[hole] = self.genres[mover]
                self.row_of[key] = hole
            del self.keys[size:], self.names[size:], self.track_counts[size:], self.genres[size:]
            self.alive[:size] = True
            self.alive[size:] = False
            self.size = size
            self._ranks = None
            if table is not None:
                renumber = np.arange(n, dtype=neighbours.ROW)
                renumber[dead] = neighbours.DELETED
                renumber[movers] = holes
                rows = np.arange(size)
                rows[holes] = movers
                self.table = neighbours.NeighbourTable(
                    neighbours.renumbered(table.neighbours[rows], renumber),
                    table.scores[rows],
                    table.next_scores[rows],
                )

    def ranks(self) -> np.ndarray:
        """Each row's position in artist-key order (how ties are broken). Call after
        `compact`."""
        with self.lock:
            if self._ranks is None or self._ranks.size != self.size:
                order = np.fromiter(
                    (self.row_of[key] for key in self._sorted_keys),
                    dtype=np.int64,
                    count=len(self._sorted_keys),
                )
                ranks = np.empty(self.size, dtype=np.int64)
                ranks[order] = np.arange(order.size)
                self._ranks = ranks
            return self._ranks

    def changed_rows(self, also: Iterable[str] = ()) -> list[int]:
        with self.lock:
            keys = self.changed.union(also)
            return sorted(self.row_of[key] for key in keys if key in self.row_of)

    def adopt(self, table: neighbours.NeighbourTable, version: str | None) -> None:
        """The table now stored for every row; with `version`, publish it for lookups."""
        with self.lock:
            self.table = table
            self.changed.clear()
            self.publish(version)

    def publish(self, version: str | None) -> None:
        """Lookups may answer from the table, for catalogue `version` (None: not at all).
        Only when it holds every row's stored list and no row changed since."""
        with self.lock:
            table = self.table
            ready = (
                version is not None
                and table is not None
                and not self.changed
                and table.neighbours.shape[0] == self.size
                and bool(self.alive[: self.size].all())
            )
            self.served = (
                ServedLists(
                    version=version,
                    row_of=dict(self.row_of),
                    keys=list(self.keys),
                    names=list(self.names),
                    track_counts=np.asarray(self.track_counts, dtype=np.int64),
                    genres=list(self.genres),
                    table=table,
                )
                if ready and table is not None and version is not None
                else None
            )
