"""Exact neighbour lists stored with the artists: how they are encoded, when they may be served,
and how they are rebuilt or updated (the computing is the neighbours package's).

Each artist point carries its list in one payload field (`neighbours`, base64): a format byte,
the fingerprint of the artist's centroid the list was computed from (8 bytes), an upper bound of
the best score of an artist not listed (rounded up), then the neighbours' id64s (8 bytes each)
and their scores. Scores are 16-bit fixed point over the cosine's range [-1, 1] (a step of
3.1e-5, so at most 1.5e-5 off: finer than float16, whose step near 1.0 is 4.9e-4, for the
same two bytes). K = 100 neighbours served and up to 16 spare ones (neighbours.py, "Spare
entries"): at most 1,171 bytes, 1,564 in base64.

When a list may be served. The tracks collection's metadata holds the catalogue version, a
fresh token written before and after every centroid write (`bump_catalogue_version`), and the
lists' record: the catalogue version every list is exact for, or None while lists are being
written. A list is served only when the record names the current catalogue version and its
fingerprint matches its artist's centroid; a crash mid-write leaves the record at None, so
partial writes are never served and the next run rebuilds.

What changed since the lists were computed is read from the lists themselves, not from a
journal a crash could lose: an artist whose centroid no longer matches its list's fingerprint,
or with no list, changed; an id64 listed but no longer stored was deleted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soundalike.core.events import EventStream, UpkeepDone, UpkeepProgress
from soundalike.core.identity import artist_id64, artist_point_id
from soundalike.core.types import ArtistHit
from soundalike.search import neighbours
from soundalike.search.artist_mirror import ArtistMirror, ServedLists
from soundalike.search.backend import Backend, Scan, StoredPoint, Where
from soundalike.search.neighbours.config import EXACT_ON_CPU, NeighbourConfig
from soundalike.search.points import artist_from
from soundalike.search.schema import (
    CATALOGUE_VERSION_KEY,
    F_ARTIST,
    F_ARTIST_KEY,
    F_GENRES,
    F_ID64,
    F_NEIGHBOURS,
    F_TRACK_COUNT,
    NEIGHBOUR_LISTS_KEY,
    SCROLL_BATCH,
    UPSERT_BATCH,
    CollectionNames,
)

FORMAT = 2
# Cosines in [-1, 1] as 16-bit integers: score = code / SCORE_SCALE - 1.
SCORE_SCALE = 65535 / 2
_HEADER = 1 + 8 + 2
_ENTRY = 8 + 2
# More changed artists than this share of the catalogue: one full rebuild costs less than the
# incremental upkeep (docs/benchmarks.md, "## Neighbour lists").
FULL_REBUILD_SHARE = 0.01

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoredList:
    fingerprint: bytes
    ids: np.ndarray  # int64 id64s, best first
    scores: np.ndarray  # float32, within 1.5e-5 of the exact score
    next_score: float  # >= the best score of any artist not listed; -inf: all are listed


@dataclass
class NeighbourListsUpdate:
    """What an upkeep did: `full` (a rebuild, else incremental), how many artists the lists
    cover, how many changed artists were found, how many lists were written, and how long."""

    full: bool
    artists: int
    changed: int
    written: int
    seconds: float
    # False when the lists are approximate (a rebuild above `approximate_above` artists).
    exact: bool = True


@dataclass(frozen=True)
class NeighbourListsState:
    """What monitoring reads of the stored lists: `valid` (they are the current catalogue
    version's, so they are served) and `exact` (not built approximately)."""

    valid: bool
    exact: bool


def fingerprint(centroid: Sequence[float] | np.ndarray) -> bytes:
    return hashlib.blake2b(np.asarray(centroid, dtype="<f4").tobytes(), digest_size=8).digest()


def _score_codes(scores: np.ndarray, *, round_up: bool = False) -> bytes:
    scaled = (np.clip(np.asarray(scores, dtype=np.float64), -1.0, 1.0) + 1.0) * SCORE_SCALE
    codes = np.ceil(scaled) if round_up else np.rint(scaled)
    return np.clip(codes, 0, 65535).astype("<u2").tobytes()


def _scores_of(raw: bytes) -> np.ndarray:
    return (np.frombuffer(raw, dtype="<u2").astype(np.float64) / SCORE_SCALE - 1.0).astype(
        np.float32
    )


def _bound_code(next_score: float) -> bytes:
    """The unlisted-score bound, rounded up (a bound must not round down); code 0 is kept for
    -inf, "every other artist is listed". A decoded bound encodes to the same code again, so
    rewriting an unchanged list gives the same bytes."""
    if next_score == -np.inf:
        return np.asarray([0], dtype="<u2").tobytes()
    scaled = (min(max(float(next_score), -1.0), 1.0) + 1.0) * SCORE_SCALE
    code = min(max(int(np.ceil(scaled - 0.01)), 1), 65535)
    while code < 65535 and _bound_value(code) < next_score:
        code += 1
    return np.asarray([code], dtype="<u2").tobytes()


def _bound_value(code: int) -> float:
    """The code's bound as float32, rounded up (float32 is what tables hold)."""
    exact = code / SCORE_SCALE - 1.0
    value = np.float32(exact)
    if float(value) < exact:
        value = np.nextafter(value, np.float32(np.inf))
    return float(value)


def _bound_of(raw: bytes) -> float:
    code = int(np.frombuffer(raw, dtype="<u2")[0])
    return -np.inf if code == 0 else _bound_value(code)


def encode_list(fp: bytes, ids: np.ndarray, scores: np.ndarray, next_score: float) -> str:
    bound = _bound_code(next_score)
    raw = (
        bytes([FORMAT]) + fp + bound + np.asarray(ids, dtype="<i8").tobytes() + _score_codes(scores)
    )
    return base64.b64encode(raw).decode("ascii")


def decode_list(text: Any) -> StoredList | None:
    """The list, or None when absent or unreadable (then it is rebuilt, never served)."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _HEADER or raw[0] != FORMAT or (len(raw) - _HEADER) % _ENTRY:
        return None
    count = (len(raw) - _HEADER) // _ENTRY
    ids_end = _HEADER + 8 * count
    return StoredList(
        fingerprint=raw[1:9],
        ids=np.frombuffer(raw[_HEADER:ids_end], dtype="<i8").astype(np.int64),
        scores=_scores_of(raw[ids_end:]),
        next_score=_bound_of(raw[9:11]),
    )


class NeighbourLists:
    """The stored neighbour lists of one store's artists.

    `keep_in_memory` (a store this process alone writes): the artists and their table stay in
    an ArtistMirror, kept current through `artists_changed`, for lookups without a store read
    and upkeep without reading the catalogue back. Otherwise every upkeep reads it once."""

    def __init__(
        self,
        backend: Backend,
        names: CollectionNames,
        events: EventStream,
        *,
        keep_in_memory: bool = False,
        config: NeighbourConfig = EXACT_ON_CPU,
    ) -> None:
        self._backend = backend
        # How full rebuilds run: handed whole to `neighbours.build`.
        self._config = config
        self._events = events
        self._tracks, self._artists = names
        self._keep_in_memory = keep_in_memory
        self._mirror: ArtistMirror | None = None
        # While a mirror loads: the artists written meanwhile, read again once it is in place.
        self._written_while_loading: set[str] | None = None
        self._mirror_guard = threading.Lock()

    # --- versions ---------------------------------------------------------------------------

    def catalogue_version(self) -> str | None:
        value = self._backend.read_metadata(self._tracks).get(CATALOGUE_VERSION_KEY)
        return str(value) if value is not None else None

    def bump_catalogue_version(self) -> str:
        """A fresh catalogue version: called before centroids are written (a crash then leaves
        the lists invalid) and after (a list computed from half-written centroids is not)."""
        token = uuid.uuid4().hex
        self._backend.update_metadata(self._tracks, {CATALOGUE_VERSION_KEY: token})
        return token

    def valid_version(self) -> str | None:
        """The catalogue version when the stored lists are exact for it; None otherwise."""
        metadata = self._backend.read_metadata(self._tracks)
        return _valid_version(metadata)

    def state(self) -> NeighbourListsState:
        """Whether the stored lists are valid and exact: one metadata read (the record and the
        catalogue version sit together), no scan, so monitoring may ask at every scrape."""
        metadata = self._backend.read_metadata(self._tracks)
        record = metadata.get(NEIGHBOUR_LISTS_KEY) or {}
        return NeighbourListsState(
            valid=_valid_version(metadata) is not None, exact=bool(record.get("exact", True))
        )

    def lists_exact(self) -> bool:
        """Whether the stored lists are exact (False: built approximately, see
        `neighbours.build_approximate`, and kept up to date since)."""
        return bool(self._record().get("exact", True))

    def _record(self) -> dict[str, Any]:
        return dict(self._backend.read_metadata(self._tracks).get(NEIGHBOUR_LISTS_KEY) or {})

    def _write_record(self, version: str | None, *, exact: bool = True) -> None:
        self._backend.update_metadata(
            self._tracks,
            {NEIGHBOUR_LISTS_KEY: {"version": version, "k": neighbours.K, "exact": exact}},
        )

    # --- serving ----------------------------------------------------------------------------

    def neighbours_of(
        self,
        artist_key: str,
        limit: int,
        min_tracks: int,
        only_keys: Iterable[str] | None,
        *,
        centroid: Sequence[float] | None = None,
    ) -> list[ArtistHit] | None:
        """The first `limit` listed artists with at least `min_tracks` tracks (and among
        `only_keys`, when given), best first; None when no valid list answers that fully.
        `centroid`: the artist's stored centroid, when the caller read it already."""
        version = self.valid_version()
        if version is None:
            return None
        served = self.served(version)
        if served is not None:
            allowed = set(only_keys) if only_keys is not None else None
            return served.neighbours_of(artist_key, limit, min_tracks, allowed)
        points = self._backend.retrieve(
            self._artists,
            [artist_point_id(artist_key)],
            with_payload=True,
            with_vectors=centroid is None,
        )
        if not points:
            return None
        if centroid is None:
            centroid = points[0].vector
        if centroid is None:
            return None
        stored = decode_list(points[0].payload.get(F_NEIGHBOURS))
        if stored is None or stored.fingerprint != fingerprint(centroid):
            return None
        ids, scores = stored.ids, stored.scores
        if only_keys is not None:
            allowed_ids = np.fromiter((artist_id64(k) for k in only_keys), dtype=np.int64)
            keep = np.isin(ids, allowed_ids)
            ids, scores = ids[keep], scores[keep]
        if min_tracks <= 1:
            ids, scores = ids[:limit], scores[:limit]
        # One read for every candidate: by id64, the track-count condition applied by Qdrant.
        found: dict[int, ArtistHit] = {}
        if ids.size:
            scan = Scan(
                where=Where(
                    equals={F_ID64: tuple(int(i) for i in ids)},
                    at_least={F_TRACK_COUNT: min_tracks} if min_tracks > 1 else {},
                ),
                fields=[F_ARTIST, F_ARTIST_KEY, F_TRACK_COUNT, F_GENRES, F_ID64],
                batch_size=max(ids.size, 1),
            )
            for point in self._backend.scroll(self._artists, scan):
                found[int(point.payload[F_ID64])] = ArtistHit(artist_from(point), 0.0)
        hits: list[ArtistHit] = []
        for id64, score in zip(ids.tolist(), scores.tolist(), strict=True):
            hit = found.get(id64)
            if hit is not None:
                hits.append(ArtistHit(hit.artist, float(score)))
                if len(hits) == limit:
                    return hits
        if min_tracks <= 1 and len(hits) < ids.size:
            return None  # a listed artist is gone: the list is not what the catalogue holds
        # Short: exact only when the list holds every other artist.
        return hits if stored.next_score == -np.inf else None

    def served(self, version: str | None = None) -> ServedLists | None:
        """The in-memory lists when they are exact for the catalogue now (`version`: the
        valid version, when the caller just read it)."""
        mirror = self._mirror
        served = mirror.served if mirror is not None else None
        if served is None:
            return None
        if version is None:
            version = self.valid_version()
        return served if served.version == version else None

    # --- the in-memory copy -----------------------------------------------------------------

    def load_in_memory(self, stop: threading.Event | None = None) -> bool:
        """Reads the artists and their lists into memory (a store this process alone writes),
        publishing the lists for lookups when they are valid. Returns whether a copy is (now)
        kept. Safe while the store is written: artists written meanwhile are read again.
        `stop`: abandons the read when set (the store is closing)."""
        if not self._keep_in_memory:
            return False
        with self._mirror_guard:
            if self._mirror is not None or self._written_while_loading is not None:
                return self._mirror is not None
            self._written_while_loading = set()
        mirror: ArtistMirror | None = None
        try:
            version = self.valid_version()
            mirror = self._read_mirror(stop)
        finally:
            with self._mirror_guard:
                written = self._written_while_loading or set()
                self._written_while_loading = None
                self._mirror = mirror
        if mirror is not None:
            mirror.refresh_keys(self._backend, self._artists, written)
            if self.valid_version() == version:
                mirror.publish(version)
        return mirror is not None

    def artists_changed(self, artist_keys: Iterable[str]) -> None:
        """Artists just written or removed (the store has them as they are now)."""
        if not self._keep_in_memory:
            return
        keys = list(artist_keys)
        with self._mirror_guard:
            if self._written_while_loading is not None:
                self._written_while_loading.update(keys)
                return
            mirror = self._mirror
        if mirror is not None:
            mirror.refresh_keys(self._backend, self._artists, keys)

    def forget_in_memory(self) -> None:
        """The collections were dropped: the copy is read again when next needed."""
        with self._mirror_guard:
            self._mirror = None

    def name_entries(self) -> list[tuple[str, str, int]] | None:
        """(key, name, track count) of every artist, from memory; None without a copy or
        while an upkeep holds it."""
        mirror = self._mirror
        # Never wait for an upkeep holding the copy (a rebuild takes minutes): read the store.
        if mirror is None or not mirror.lock.acquire(blocking=False):
            return None
        try:
            return [
                (mirror.keys[row], mirror.names[row] or mirror.keys[row], mirror.track_counts[row])
                for row in range(mirror.size)
                if mirror.alive[row]
            ]
        finally:
            mirror.lock.release()

    def _read_mirror(self, stop: threading.Event | None = None) -> ArtistMirror | None:
        scan = Scan(
            with_vectors=True,
            fields=[F_ARTIST, F_ARTIST_KEY, F_TRACK_COUNT, F_GENRES, F_NEIGHBOURS],
            batch_size=SCROLL_BATCH,
        )
        points: list[StoredPoint] = []
        for point in self._backend.scroll(self._artists, scan):
            points.append(point)
            if stop is not None and stop.is_set():
                return None
        dim = len(points[0].vector or []) if points else self._backend.vector_size(self._artists)
        mirror = ArtistMirror.from_points(points, dim)
        by_key = {str(p.payload[F_ARTIST_KEY]): p.payload.get(F_NEIGHBOURS) for p in points}
        lists: list[StoredList | None] = []
        for row, key in enumerate(mirror.keys):
            stored = decode_list(by_key[key])
            if stored is not None and stored.fingerprint != fingerprint(mirror.matrix[row]):
                stored = None  # computed for another centroid
            lists.append(stored)
        mirror.set_stored_lists(lists)
        return mirror

    # --- upkeep -----------------------------------------------------------------------------

    def rebuild(self) -> NeighbourListsUpdate:
        """Computes every list from scratch and stores them."""
        return self._refresh((), force_full=True)

    def update(self, changed_keys: Iterable[str] = ()) -> NeighbourListsUpdate:
        """Brings the lists up to date: nothing when they are valid and nothing changed; the
        changed artists' lists and the lists they enter or leave when few changed; a rebuild
        when there are no valid lists or many changed. `changed_keys` are artists known to have
        changed; others are found from the lists' fingerprints."""
        return self._refresh(changed_keys, force_full=False)

    def _refresh(self, changed_keys: Iterable[str], *, force_full: bool) -> NeighbourListsUpdate:
        started = time.monotonic()

        def report(done: int, total: int) -> None:
            self._events.emit(UpkeepProgress("neighbour_lists", done, total))

        version = self.catalogue_version() or self.bump_catalogue_version()
        record = self._record()
        basis_ok = record.get("version") is not None and record.get("k") == neighbours.K
        hinted = set(changed_keys)
        if not force_full and basis_ok and record["version"] == version and not hinted:
            return NeighbourListsUpdate(False, 0, 0, 0, time.monotonic() - started)
        self._backend.create_index(self._artists, F_ID64, "integer")
        kept = self.load_in_memory()
        mirror = self._mirror if kept and self._mirror is not None else self._read_mirror()
        assert mirror is not None  # only a stop event abandons a read
        with mirror.lock:
            mirror.compact()
            n = mirror.size
            matrix, ranks, old = mirror.matrix, mirror.ranks(), mirror.table
            changed = mirror.changed_rows(hinted)
            full = (
                force_full
                or not basis_ok
                or old is None
                or len(changed) > max(1.0, FULL_REBUILD_SHARE * n)
            )
            if full or old is None:
                table = neighbours.build(
                    matrix,
                    ranks,
                    k=neighbours.K,
                    spare=neighbours.SPARE,
                    progress=report,
                    config=self._config,
                )
                rows = np.arange(n)
                changed = list(range(n))
            else:
                table, rows = neighbours.update(matrix, ranks, old, changed, k=neighbours.K)
                report(n, n)  # the incremental upkeep computes in one step
            _round_as_stored(table, rows)
            is_changed = np.zeros(n, dtype=bool)
            is_changed[changed] = True
            writes: list[tuple[str, dict[str, Any]]] = []
            for row in rows.tolist():
                blob = _blob(matrix, mirror.id64s, table, row)
                if (
                    full
                    or is_changed[row]
                    or old is None
                    or blob != _blob(matrix, mirror.id64s, old, row)
                ):
                    point_id = artist_point_id(mirror.keys[row])
                    writes.append((point_id, {F_NEIGHBOURS: blob, F_ID64: int(mirror.id64s[row])}))
            # Invalid while lists are written: a crash in between leaves nothing to serve.
            self._write_record(None)
            for start in range(0, len(writes), UPSERT_BATCH):
                self._backend.set_payloads(self._artists, writes[start : start + UPSERT_BATCH])
            self._backend.flush()
            # Computed from the centroids read; served only while that is the catalogue's
            # version. Incremental upkeep keeps approximate lists approximate.
            exact = table.exact if full else bool(record.get("exact", True))
            self._write_record(version, exact=exact)
            mirror.adopt(table, version)
        seconds = time.monotonic() - started
        self._events.emit(UpkeepDone("neighbour_lists", n, seconds))
        return NeighbourListsUpdate(full, n, len(changed), len(writes), seconds, exact)


def _valid_version(metadata: dict[str, Any]) -> str | None:
    """The catalogue version when the lists' record names it (and today's K); else None."""
    record = metadata.get(NEIGHBOUR_LISTS_KEY) or {}
    version = record.get("version")
    if version is None or version != metadata.get(CATALOGUE_VERSION_KEY):
        return None
    return str(version) if record.get("k") == neighbours.K else None


def _round_as_stored(table: neighbours.NeighbourTable, rows: np.ndarray) -> None:
    """The rows' scores and bounds as their stored form decodes: what lookups serve is then the
    same from memory, from the store and after a restart."""
    if rows.size == 0:
        return
    scores = table.scores[rows]
    listed = np.isfinite(scores)
    codes = np.frombuffer(_score_codes(np.where(listed, scores, 0.0)), dtype="<u2")
    rounded = _scores_of(codes.tobytes()).reshape(scores.shape)
    table.scores[rows] = np.where(listed, rounded, scores)
    bounds = table.next_scores[rows]
    table.next_scores[rows] = [_bound_of(_bound_code(float(b))) for b in bounds]


def _blob(
    matrix: np.ndarray, id64s: np.ndarray, table: neighbours.NeighbourTable, row: int
) -> str | None:
    """The stored form of a row's list; None when it names an artist no longer stored."""
    members = table.neighbours[row]
    if (members == neighbours.DELETED).any():
        return None
    listed, scores = table.list_of(row)
    return encode_list(
        fingerprint(matrix[row]), id64s[listed], scores, float(table.next_scores[row])
    )
