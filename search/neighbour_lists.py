"""Exact neighbour lists stored with the artists: how they are encoded, when they may be served,
and how they are rebuilt or updated (the computing is neighbours.py's).

Each artist point carries its list in one payload field (`neighbours`, base64): a format byte,
the fingerprint of the artist's centroid the list was computed from (8 bytes), an upper bound of
the best score of an artist not listed (rounded up), then the neighbours' id64s (8 bytes each)
and their scores. Scores are 16-bit fixed point over the cosine's range [-1, 1] (a step of
3.1e-5, so at most 1.5e-5 off: finer than float16, whose step near 1.0 is 4.9e-4, for the
same two bytes). K = 100 neighbours: 1,011 bytes, 1,348 in base64.

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
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soundalike.search import neighbours
from soundalike.search.backend import Backend, Scan, Where
from soundalike.search.errors import StoreError
from soundalike.search.identity import artist_id64, artist_point_id
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
)
from soundalike.search.types import ArtistHit

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
    -inf, "every other artist is listed"."""
    if next_score == -np.inf:
        return np.asarray([0], dtype="<u2").tobytes()
    code = np.frombuffer(_score_codes(np.asarray([next_score]), round_up=True), dtype="<u2")
    return np.maximum(code, 1).astype("<u2").tobytes()


def _bound_of(raw: bytes) -> float:
    code = int(np.frombuffer(raw, dtype="<u2")[0])
    return -np.inf if code == 0 else float(_scores_of(raw)[0])


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


@dataclass
class _Catalogue:
    """Every stored artist in key order: the matrix rows, their id64s and stored lists."""

    keys: list[str]
    point_ids: list[str]
    id64s: np.ndarray
    matrix: np.ndarray
    lists: list[StoredList | None]


class NeighbourLists:
    """The stored neighbour lists of one store's artists."""

    def __init__(self, backend: Backend, tracks_collection: str, artists_collection: str) -> None:
        self._backend = backend
        self._tracks = tracks_collection
        self._artists = artists_collection

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
        record = metadata.get(NEIGHBOUR_LISTS_KEY) or {}
        current = metadata.get(CATALOGUE_VERSION_KEY)
        version = record.get("version")
        if version is None or version != current or record.get("k") != neighbours.K:
            return None
        return str(version)

    def _record(self) -> dict[str, Any]:
        return dict(self._backend.read_metadata(self._tracks).get(NEIGHBOUR_LISTS_KEY) or {})

    def _write_record(self, version: str | None) -> None:
        self._backend.update_metadata(
            self._tracks, {NEIGHBOUR_LISTS_KEY: {"version": version, "k": neighbours.K}}
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
        if self.valid_version() is None:
            return None
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
            allowed = np.fromiter((artist_id64(k) for k in only_keys), dtype=np.int64)
            keep = np.isin(ids, allowed)
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

    # --- upkeep -----------------------------------------------------------------------------

    def rebuild(self, progress: Progress | None = None) -> NeighbourListsUpdate:
        """Computes every list from scratch and stores them."""
        return self._refresh((), progress, force_full=True)

    def update(
        self, changed_keys: Iterable[str] = (), progress: Progress | None = None
    ) -> NeighbourListsUpdate:
        """Brings the lists up to date: nothing when they are valid and nothing changed; the
        changed artists' lists and the lists they enter or leave when few changed; a rebuild
        when there are no valid lists or many changed. `changed_keys` are artists known to have
        changed; others are found from the lists' fingerprints."""
        return self._refresh(changed_keys, progress, force_full=False)

    def _refresh(
        self, changed_keys: Iterable[str], progress: Progress | None, *, force_full: bool
    ) -> NeighbourListsUpdate:
        started = time.monotonic()
        version = self.catalogue_version() or self.bump_catalogue_version()
        record = self._record()
        basis_ok = record.get("version") is not None and record.get("k") == neighbours.K
        hinted = set(changed_keys)
        if not force_full and basis_ok and record["version"] == version and not hinted:
            return NeighbourListsUpdate(False, 0, 0, 0, time.monotonic() - started)
        self._backend.create_index(self._artists, F_ID64, "integer")
        catalogue = self._load()
        n = len(catalogue.keys)
        full = force_full or not basis_ok
        changed: list[int] = []
        old: neighbours.NeighbourTable | None = None
        if not full:
            old, changed = self._old_table(catalogue, hinted)
            full = len(changed) > max(1.0, FULL_REBUILD_SHARE * n)
        if full or old is None:
            table = neighbours.build(catalogue.matrix, k=neighbours.K, progress=progress)
            rows = np.arange(n)
            changed = list(range(n))
        else:
            table, rows = neighbours.update(catalogue.matrix, None, old, changed, k=neighbours.K)
        writes = [
            (catalogue.point_ids[row], self._payload(catalogue, table, row))
            for row in rows.tolist()
        ]
        if not full:
            writes = [
                (pid, payload)
                for (pid, payload), row in zip(writes, rows.tolist(), strict=True)
                if catalogue.lists[row] is None
                or payload[F_NEIGHBOURS] != _encoded(catalogue.lists[row])
            ]
        # Invalid while lists are written: a crash in between leaves nothing to serve.
        self._write_record(None)
        for start in range(0, len(writes), UPSERT_BATCH):
            self._backend.set_payloads(self._artists, writes[start : start + UPSERT_BATCH])
        self._backend.flush()
        # Exact for the centroids read; served only while that is the catalogue's version.
        self._write_record(version)
        return NeighbourListsUpdate(full, n, len(changed), len(writes), time.monotonic() - started)

    def _payload(
        self, catalogue: _Catalogue, table: neighbours.NeighbourTable, row: int
    ) -> dict[str, Any]:
        listed, scores = table.list_of(row)
        blob = encode_list(
            fingerprint(catalogue.matrix[row]),
            catalogue.id64s[listed],
            scores,
            float(table.next_scores[row]),
        )
        return {F_NEIGHBOURS: blob, F_ID64: int(catalogue.id64s[row])}

    def _load(self) -> _Catalogue:
        scan = Scan(with_vectors=True, fields=[F_ARTIST_KEY, F_NEIGHBOURS], batch_size=SCROLL_BATCH)
        rows = sorted(
            (
                (str(p.payload[F_ARTIST_KEY]), p.id, p.vector, p.payload.get(F_NEIGHBOURS))
                for p in self._backend.scroll(self._artists, scan)
            ),
            key=lambda row: row[0],
        )
        keys = [row[0] for row in rows]
        id64s = np.fromiter((artist_id64(k) for k in keys), dtype=np.int64, count=len(keys))
        if np.unique(id64s).size != id64s.size:
            raise StoreError(
                "two artists share the first 8 bytes of their point ids: neighbour lists "
                "cannot name them apart"
            )
        dim = len(rows[0][2]) if rows else 0
        matrix = np.asarray([row[2] for row in rows], dtype=np.float32).reshape(len(rows), dim)
        return _Catalogue(
            keys=keys,
            point_ids=[row[1] for row in rows],
            id64s=id64s,
            matrix=matrix,
            lists=[decode_list(row[3]) for row in rows],
        )

    def _old_table(
        self, catalogue: _Catalogue, hinted: set[str]
    ) -> tuple[neighbours.NeighbourTable | None, list[int]]:
        """The stored lists as row indices (gone artists DELETED), and the changed rows."""
        n = len(catalogue.keys)
        k = neighbours.K
        table = neighbours.NeighbourTable.empty(n, k)
        order = np.argsort(catalogue.id64s)
        sorted_ids = catalogue.id64s[order]
        changed: list[int] = []
        for row, stored in enumerate(catalogue.lists):
            if (
                stored is None
                or catalogue.keys[row] in hinted
                or stored.fingerprint != fingerprint(catalogue.matrix[row])
                or stored.ids.size > k
            ):
                changed.append(row)
                continue
            position = np.searchsorted(sorted_ids, stored.ids).clip(0, max(n - 1, 0))
            exists = sorted_ids[position] == stored.ids if n else np.zeros(0, bool)
            table.neighbours[row, : stored.ids.size] = np.where(
                exists, order[position], neighbours.DELETED
            )
            table.scores[row, : stored.ids.size] = stored.scores
            table.next_scores[row] = stored.next_score
        return table, changed


def _encoded(stored: StoredList) -> str:
    return encode_list(stored.fingerprint, stored.ids, stored.scores, stored.next_score)
