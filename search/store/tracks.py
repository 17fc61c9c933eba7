"""The track side of the store: tracks written, read, listed, counted, searched and deleted
(the methods `Store` exposes document them), and the per-artist counts taken from the tracks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.core.identity import is_uuid
from soundalike.core.types import Track, TrackHit
from soundalike.search.backend import Backend, Recommendation, Scalar, Scan, Where
from soundalike.search.filters import equality_conditions
from soundalike.search.points import as_vector, track_from, track_point
from soundalike.search.schema import (
    F_ALBUM,
    F_ARTIST,
    F_ARTIST_KEY,
    F_CONTENT_HASH,
    F_ITEM_ID,
    F_PATH,
    F_TITLE,
    NAME_SCROLL_BATCH,
    RETRIEVE_BATCH,
    SCROLL_BATCH,
    UPSERT_BATCH,
)
from soundalike.search.store.searching import VectorSearch, batches
from soundalike.search.store.spec import Collections


class TrackSide:
    """The tracks collection. Writes return how many points they wrote (the store counts
    them towards its next optimize)."""

    def __init__(self, backend: Backend, collections: Collections, vectors: VectorSearch) -> None:
        self._backend = backend
        self._collections = collections
        self._tracks = collections.tracks_collection
        self._vectors = vectors

    def existing_track_ids(self, ids: Iterable[str]) -> set[str]:
        if not self._collections.ready():
            return set()
        wanted = [i for i in dict.fromkeys(ids) if is_uuid(i)]
        found: set[str] = set()
        for batch in batches(wanted, RETRIEVE_BATCH):
            points = self._backend.retrieve(
                self._tracks, batch, with_payload=False, with_vectors=False
            )
            found.update(p.id for p in points)
        return found

    def upsert_tracks(self, tracks: Sequence[Track]) -> int:
        spec = self._collections.require_spec()
        points = [track_point(t, spec) for t in tracks]
        for batch in batches(points, UPSERT_BATCH):
            self._backend.upsert(self._tracks, batch)
        return len(points)

    def get_track(self, track_id: str, *, with_vector: bool = True) -> Track | None:
        if not self._collections.ready() or not is_uuid(track_id):
            return None
        points = self._backend.retrieve(
            self._tracks, [track_id], with_payload=True, with_vectors=with_vector
        )
        return track_from(points[0]) if points else None

    def tracks_of_artist(self, artist_key: str, *, with_vectors: bool = False) -> list[Track]:
        if not self._collections.ready():
            return []
        scan = Scan(
            where=Where(equals={F_ARTIST_KEY: (artist_key,)}),
            with_vectors=with_vectors,
            batch_size=SCROLL_BATCH,
        )
        tracks = [track_from(p) for p in self._backend.scroll(self._tracks, scan)]
        tracks.sort(key=lambda t: (t.album or "", t.title or "", t.path or "", t.track_id))
        return tracks

    def tracks_at(self, paths: Iterable[str]) -> list[Track]:
        if not self._collections.ready():
            return []
        found: list[Track] = []
        for batch in batches(list(dict.fromkeys(paths)), RETRIEVE_BATCH):
            scan = Scan(
                where=Where(equals={F_PATH: tuple(batch)}),
                with_vectors=False,
                batch_size=SCROLL_BATCH,
            )
            found += [track_from(p) for p in self._backend.scroll(self._tracks, scan)]
        return found

    def tracks_by_item_ids(self, item_ids: Iterable[str]) -> dict[str, Track]:
        if not self._collections.ready():
            return {}
        found: dict[str, Track] = {}
        for batch in batches(list(dict.fromkeys(item_ids)), RETRIEVE_BATCH):
            scan = Scan(
                where=Where(equals={F_ITEM_ID: tuple(batch)}),
                with_vectors=False,
                batch_size=SCROLL_BATCH,
            )
            for point in self._backend.scroll(self._tracks, scan):
                track = track_from(point)
                if track.item_id is not None:
                    found.setdefault(track.item_id, track)
        return found

    def get_tracks(self, track_ids: Iterable[str], *, with_vectors: bool = False) -> list[Track]:
        ids = [i for i in dict.fromkeys(track_ids) if is_uuid(i)]
        if not ids or not self._collections.ready():
            return []
        by_id: dict[str, Track] = {}
        for batch in batches(ids, RETRIEVE_BATCH):
            for point in self._backend.retrieve(
                self._tracks, batch, with_payload=True, with_vectors=with_vectors
            ):
                by_id[point.id] = track_from(point, with_vector=with_vectors)
        return [by_id[i] for i in ids if i in by_id]

    def scan_track_fields(self, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self._collections.ready():
            return
        scan = Scan(fields=list(fields), batch_size=NAME_SCROLL_BATCH)
        for point in self._backend.scroll(self._tracks, scan):
            yield point.id, point.payload

    def track_summaries(self) -> list[Track]:
        if not self._collections.ready():
            return []
        fields = [F_ARTIST, F_ARTIST_KEY, F_PATH, F_CONTENT_HASH]
        scan = Scan(fields=fields, batch_size=SCROLL_BATCH)
        points = self._backend.scroll(self._tracks, scan)
        return [track_from(p, with_vector=False) for p in points]

    def artist_track_page(self, artist_key: str, *, limit: int, offset: int = 0) -> list[Track]:
        if not self._collections.ready():
            return []
        scan = Scan(
            where=Where(equals={F_ARTIST_KEY: (artist_key,)}),
            fields=[F_ALBUM, F_TITLE, F_PATH],
            batch_size=SCROLL_BATCH,
        )
        order = sorted(
            (
                str(p.payload.get(F_ALBUM) or ""),
                str(p.payload.get(F_TITLE) or ""),
                str(p.payload.get(F_PATH) or ""),
                p.id,
            )
            for p in self._backend.scroll(self._tracks, scan)
        )
        page_ids = [key[3] for key in order[offset : offset + limit]]
        if not page_ids:
            return []
        points = self._backend.retrieve(
            self._tracks, page_ids, with_payload=True, with_vectors=False
        )
        by_id = {p.id: track_from(p) for p in points}
        return [by_id[i] for i in page_ids if i in by_id]

    def delete_tracks(self, track_ids: Iterable[str]) -> int:
        ids = [i for i in dict.fromkeys(track_ids) if is_uuid(i)]
        if not ids or not self._collections.ready():
            return 0
        for batch in batches(ids, RETRIEVE_BATCH):
            self._backend.delete_ids(self._tracks, list(batch))
        return len(ids)

    def count_tracks(self) -> int:
        return self._backend.count(self._tracks) if self._collections.ready() else 0

    def search_tracks(
        self,
        vector: Sequence[float] | np.ndarray,
        *,
        limit: int,
        exclude_ids: Iterable[str] = (),
        exclude_artist_key: str | None = None,
        filters: Mapping[str, Any] | None = None,
        artist_keys: Iterable[str] | None = None,
        with_vectors: bool = False,
    ) -> list[TrackHit]:
        """Tracks closest to `vector` (cosine), best first, passing every filter.

        `filters` match exactly on genre, album, year, title, artist, path or an extra
        column (by its bare name); a list value matches any of its items."""
        spec = self._collections.spec()
        if spec is None or limit <= 0:
            return []
        query = as_vector(vector, spec.dim, "query vector")
        equals = equality_conditions(filters or {})
        if artist_keys is not None:
            keys = tuple(dict.fromkeys(artist_keys))
            if not keys:
                return []
            equals[F_ARTIST_KEY] = keys
        where = Where(
            equals=equals,
            not_equals={F_ARTIST_KEY: (exclude_artist_key,)} if exclude_artist_key else {},
            exclude_ids=frozenset(exclude_ids),
        )
        hits = self._vectors.search(self._tracks, query, limit, where, with_vectors)
        return [
            TrackHit(track=track_from(p, with_vector=with_vectors), score=score)
            for p, score in hits
        ]

    def recommend_tracks(
        self,
        positives: Sequence[Sequence[float] | np.ndarray],
        negatives: Sequence[Sequence[float] | np.ndarray] = (),
        *,
        limit: int,
        exclude_ids: Iterable[str] = (),
        exclude_artist_keys: Iterable[str] = (),
        filters: Mapping[str, Any] | None = None,
    ) -> list[TrackHit]:
        """Qdrant's recommendation query over the tracks: closest to the `positives` and
        farthest from the `negatives` (example vectors), best first, passing every filter.
        Scores are Qdrant's sum of cosines to positives minus those to negatives."""
        spec = self._collections.spec()
        if spec is None or limit <= 0:
            return []
        if not positives:
            raise InvalidRequest("a recommendation needs at least one positive example")
        excluded_artists = tuple(dict.fromkeys(exclude_artist_keys))
        where = Where(
            equals=equality_conditions(filters or {}),
            not_equals={F_ARTIST_KEY: excluded_artists} if excluded_artists else {},
            exclude_ids=frozenset(exclude_ids),
        )
        request = Recommendation(
            [as_vector(v, spec.dim, "positive example") for v in positives],
            [as_vector(v, spec.dim, "negative example") for v in negatives],
            limit=limit,
            where=where,
            search_ef=self._vectors.search_ef,
            exact=self._vectors.exact,
            oversampling=self._vectors.oversampling,
        )
        hits = self._backend.recommend(self._tracks, request)
        return [TrackHit(track=track_from(p, with_vector=False), score=s) for p, s in hits]

    def artist_keys_with(self, filters: Mapping[str, Any]) -> set[str]:
        if not self._collections.ready():
            return set()
        where = Where(equals=equality_conditions(filters))
        return set(self._tracks_per_artist(where))

    def artist_keys_in_tracks(self) -> set[str]:
        if not self._collections.ready():
            return set()
        return set(self.artist_track_counts())

    def artist_track_counts(self) -> dict[str, int]:
        if not self._collections.ready():
            return {}
        return self._tracks_per_artist(None)

    def _tracks_per_artist(self, where: Where | None) -> dict[str, int]:
        counts = self._value_counts(self._tracks, F_ARTIST_KEY, where)
        return {str(key): int(count) for key, count in counts.items()}

    def _value_counts(
        self, collection: str, field_name: str, where: Where | None
    ) -> dict[Scalar, int]:
        # Facets need an upper bound on the number of values: the matching points bound it.
        total = self._backend.count(collection, where)
        if total == 0:
            return {}
        return self._backend.value_counts(collection, field_name, where, limit=total)
