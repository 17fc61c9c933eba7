"""The store: every Qdrant access of soundalike, behind one class that speaks our own types.

`Store` is the façade: Track and Artist in, hits out; `open_store` picks its backend (Qdrant
Edge in-process, a Qdrant server, or qdrant-client `:memory:`). The schema it writes is
defined in schema.py, point ids in identity.py, the backend interface in backend.py.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.core.artist_names import key_prefix
from soundalike.core.errors import InvalidRequest
from soundalike.core.identity import artist_point_id, is_uuid
from soundalike.core.types import Artist, ArtistHit, EmbeddingSpec, Track, TrackHit
from soundalike.search.backend import (
    Backend,
    Recommendation,
    Scalar,
    Scan,
    StoredPoint,
    VectorQuery,
    Where,
)
from soundalike.search.closing import Closing
from soundalike.search.collections import SPEC_RECHECK_S, Collections
from soundalike.search.filters import equality_conditions
from soundalike.search.name_index import CachedNameIndex, NameEntry, NameIndex
from soundalike.search.neighbour_lists import NeighbourLists, NeighbourListsUpdate
from soundalike.search.points import (
    artist_from,
    artist_from_tracks,
    artist_point,
    as_vector,
    track_from,
    track_point,
)
from soundalike.search.schema import (
    CENTROID_KEY_BATCH,
    F_ALBUM,
    F_ARTIST,
    F_ARTIST_KEY,
    F_CONTENT_HASH,
    F_GENRE,
    F_ITEM_ID,
    F_PATH,
    F_TITLE,
    F_TRACK_COUNT,
    NAME_SCROLL_BATCH,
    RETRIEVE_BATCH,
    SCROLL_BATCH,
    UPSERT_BATCH,
    collection_names,
)

# How long the in-memory artist-name index may lag writes made by *other* processes (server
# backend only: an embedded store has a single owner, so its index is exact).
SHARED_NAME_INDEX_TTL_S = 15.0
# HNSW candidates per search (see docs/benchmarks.md, "## Store", for the measurements).
DEFAULT_SEARCH_EF = 128
MAX_SEARCH_EF = 100_000
# New tracks collections are int8-quantized, and their searches keep twice the limit for
# rescoring: at 1M tracks that matched float32's recall@10 in half its time and memory
# (docs/benchmarks.md, "Track search at 1,000,000 tracks").
QUANTIZE_TRACKS = True
DEFAULT_OVERSAMPLING: float | None = 2.0
# How long a server store keeps retrying transient failures before giving up: short for
# request handling; a long batch job (an ingest) passes minutes so a Qdrant restart is survived.
DEFAULT_RETRY_SECONDS = 3.0


def open_store(
    *,
    data_dir: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    collection_prefix: str = "",
    timeout: float = 30.0,
    shard_number: int = 1,
    replication_factor: int = 1,
    in_memory: bool = False,
    search_ef: int | None = DEFAULT_SEARCH_EF,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
    artists_in_memory: bool = True,
    neighbours_device: str = "cpu",
    quantize_tracks: bool = QUANTIZE_TRACKS,
    approximate_neighbours_above: int | None = None,
) -> Store:
    """Opens the store: a server when `url` is given, qdrant-client `:memory:` when
    `in_memory`, else Qdrant Edge under `data_dir` (default ./soundalike-data).

    `search_ef`: HNSW candidates per vector search (recall against latency; None: Qdrant's
    default, the index's ef_construct). `retry_seconds`: server only, how long to keep
    retrying a server that does not answer (connection errors, 429, 5xx) before
    StoreUnavailable. `artists_in_memory`: see `Store.load_in_memory`. `neighbours_device`:
    where a full rebuild of the neighbour lists multiplies centroids (`auto`: CUDA when
    present; `cpu`, `cuda`, `cuda:N`). `quantize_tracks`, `approximate_neighbours_above`:
    see `Store`."""
    if url is not None and in_memory:
        raise InvalidRequest("give either a Qdrant url or in_memory=True, not both")
    if retry_seconds < 0:
        raise InvalidRequest(f"retry_seconds must be >= 0, got {retry_seconds}")
    backend: Backend
    if url is not None or in_memory:
        from soundalike.search.server_store import ServerBackend

        if url is None:
            backend = ServerBackend.in_memory()
        else:
            backend = ServerBackend.connect(
                url,
                api_key=api_key,
                timeout=timeout,
                shard_number=shard_number,
                replication_factor=replication_factor,
                retry_seconds=retry_seconds,
            )
    else:
        from soundalike.search.edge_store import EdgeBackend

        backend = EdgeBackend(
            Path(data_dir) if data_dir is not None else Path("soundalike-data"),
            lock_name=f"{collection_prefix}soundalike.lock",
        )
    return Store(
        backend,
        collection_prefix=collection_prefix,
        search_ef=search_ef,
        artists_in_memory=artists_in_memory,
        neighbours_device=neighbours_device,
        quantize_tracks=quantize_tracks,
        approximate_neighbours_above=approximate_neighbours_above,
    )


class Store(Collections, Closing):
    """soundalike's store. Vectors in, our types out; the backend never leaks."""

    def __init__(
        self,
        backend: Backend,
        *,
        collection_prefix: str = "",
        search_ef: int | None = DEFAULT_SEARCH_EF,
        exact_search: bool = False,
        spec_recheck_seconds: float = SPEC_RECHECK_S,
        artists_in_memory: bool = True,
        neighbours_device: str = "cpu",
        quantize_tracks: bool = QUANTIZE_TRACKS,
        oversampling: float | None = DEFAULT_OVERSAMPLING,
        approximate_neighbours_above: int | None = None,
    ) -> None:
        """`search_ef`: HNSW candidates per vector search (None: Qdrant's default);
        `exact_search`: scan every vector instead (exact, slow at scale; for measuring);
        `spec_recheck_seconds`: how long a known spec is trusted before it is read again;
        `artists_in_memory`: an embedded store keeps its artists in memory once read (see
        `load_in_memory`); `neighbours_device`: see `open_store`; `quantize_tracks`: a tracks
        collection this store creates keeps int8 copies of the vectors in memory for the
        search and the float32 originals on disk to rescore its hits (an existing collection
        keeps what it was created with); `oversampling`: how many times the limit a quantized
        search keeps for rescoring (None: Qdrant's default, 1); `approximate_neighbours_above`:
        a full rebuild of the neighbour lists of more artists than this, its products on the
        CPU, builds approximate lists (`neighbours.build_approximate`; None: always exact)."""
        if search_ef is not None and not 1 <= search_ef <= MAX_SEARCH_EF:
            raise InvalidRequest(
                f"search_ef must be between 1 and {MAX_SEARCH_EF}, got {search_ef}"
            )
        if oversampling is not None and oversampling < 1:
            raise InvalidRequest(f"oversampling must be at least 1, got {oversampling}")
        self._backend = backend
        self.tracks_collection, self.artists_collection = collection_names(collection_prefix)
        self.search_ef = search_ef
        self.exact_search = exact_search
        self._spec_recheck_seconds = spec_recheck_seconds
        self._quantize_tracks = quantize_tracks
        self.oversampling = oversampling
        # (spec, when it was read); one attribute so that lock-free readers see a pair that
        # belongs together. None: no spec seen yet, so the next call reads again.
        self._known_spec: tuple[EmbeddingSpec, float] | None = None
        self._spec_lock = threading.Lock()
        self._names = CachedNameIndex(
            self._load_name_entries,
            max_age_seconds=SHARED_NAME_INDEX_TTL_S if backend.shared else None,
        )
        self._neighbour_lists = NeighbourLists(
            backend,
            self.tracks_collection,
            self.artists_collection,
            keep_in_memory=artists_in_memory and not backend.shared,
            device=neighbours_device,
            approximate_above=approximate_neighbours_above,
        )
        self._closed = False
        # Points written since the last optimize (this process): when an index rebuild is due.
        self._writes_since_optimize = 0

    def _collections_dropped(self) -> None:
        self._neighbour_lists.forget_in_memory()

    @property
    def backend(self) -> Backend:
        return self._backend

    # --- tracks ------------------------------------------------------------------------

    def existing_track_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of `ids` already stored."""
        if not self._ready():
            return set()
        wanted = [i for i in dict.fromkeys(ids) if is_uuid(i)]
        found: set[str] = set()
        for batch in _batches(wanted, RETRIEVE_BATCH):
            points = self._backend.retrieve(
                self.tracks_collection, batch, with_payload=False, with_vectors=False
            )
            found.update(p.id for p in points)
        return found

    def upsert_tracks(self, tracks: Sequence[Track]) -> None:
        """Writes tracks (idempotent: a track id is written once however often it comes)."""
        spec = self._require_spec()
        points = [track_point(t, spec) for t in tracks]
        for batch in _batches(points, UPSERT_BATCH):
            self._backend.upsert(self.tracks_collection, batch)
        self._writes_since_optimize += len(points)

    def get_track(self, track_id: str, *, with_vector: bool = True) -> Track | None:
        if not self._ready() or not is_uuid(track_id):
            return None
        points = self._backend.retrieve(
            self.tracks_collection, [track_id], with_payload=True, with_vectors=with_vector
        )
        return track_from(points[0]) if points else None

    def tracks_of_artist(self, artist_key: str, *, with_vectors: bool = False) -> list[Track]:
        """The artist's tracks, ordered by album, title, path."""
        if not self._ready():
            return []
        scan = Scan(
            where=Where(equals={F_ARTIST_KEY: (artist_key,)}),
            with_vectors=with_vectors,
            batch_size=SCROLL_BATCH,
        )
        tracks = [track_from(p) for p in self._backend.scroll(self.tracks_collection, scan)]
        tracks.sort(key=lambda t: (t.album or "", t.title or "", t.path or "", t.track_id))
        return tracks

    def tracks_at(self, paths: Iterable[str]) -> list[Track]:
        """The stored tracks (no vectors) whose path is one of `paths`."""
        if not self._ready():
            return []
        found: list[Track] = []
        for batch in _batches(list(dict.fromkeys(paths)), RETRIEVE_BATCH):
            scan = Scan(
                where=Where(equals={F_PATH: tuple(batch)}),
                with_vectors=False,
                batch_size=SCROLL_BATCH,
            )
            found += [track_from(p) for p in self._backend.scroll(self.tracks_collection, scan)]
        return found

    def tracks_by_item_ids(self, item_ids: Iterable[str]) -> dict[str, Track]:
        """The stored tracks (no vectors) a media server knows by these ids, by item id."""
        if not self._ready():
            return {}
        found: dict[str, Track] = {}
        for batch in _batches(list(dict.fromkeys(item_ids)), RETRIEVE_BATCH):
            scan = Scan(
                where=Where(equals={F_ITEM_ID: tuple(batch)}),
                with_vectors=False,
                batch_size=SCROLL_BATCH,
            )
            for point in self._backend.scroll(self.tracks_collection, scan):
                track = track_from(point)
                if track.item_id is not None:
                    found.setdefault(track.item_id, track)
        return found

    def get_tracks(self, track_ids: Iterable[str], *, with_vectors: bool = False) -> list[Track]:
        """The stored tracks among `track_ids`, in the order asked (unknown ids left out)."""
        ids = [i for i in dict.fromkeys(track_ids) if is_uuid(i)]
        if not ids or not self._ready():
            return []
        by_id: dict[str, Track] = {}
        for batch in _batches(ids, RETRIEVE_BATCH):
            for point in self._backend.retrieve(
                self.tracks_collection, batch, with_payload=True, with_vectors=with_vectors
            ):
                by_id[point.id] = track_from(point, with_vector=with_vectors)
        return [by_id[i] for i in ids if i in by_id]

    def scan_track_fields(self, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(track id, those payload fields) of every stored track, no vectors: one scroll."""
        if not self._ready():
            return
        scan = Scan(fields=list(fields), batch_size=NAME_SCROLL_BATCH)
        for point in self._backend.scroll(self.tracks_collection, scan):
            yield point.id, point.payload

    def catalogue_version(self) -> str | None:
        """A token that changes whenever a centroid does (every ingest, delete and recompute):
        what caches of catalogue-wide facts are keyed on. None on an empty store."""
        return self._neighbour_lists.catalogue_version() if self._ready() else None

    def track_summaries(self) -> list[Track]:
        """Every stored track without vector: id, artist, path and content hash only (a live
        library compares them with what its folders hold)."""
        if not self._ready():
            return []
        fields = [F_ARTIST, F_ARTIST_KEY, F_PATH, F_CONTENT_HASH]
        scan = Scan(fields=fields, batch_size=SCROLL_BATCH)
        points = self._backend.scroll(self.tracks_collection, scan)
        return [track_from(p, with_vector=False) for p in points]

    def artist_track_page(self, artist_key: str, *, limit: int, offset: int = 0) -> list[Track]:
        """One page of the artist's tracks, ordered by album, title, path. Only the sort fields
        of every track are read; full payloads only for the page."""
        if not self._ready():
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
            for p in self._backend.scroll(self.tracks_collection, scan)
        )
        page_ids = [key[3] for key in order[offset : offset + limit]]
        if not page_ids:
            return []
        points = self._backend.retrieve(
            self.tracks_collection, page_ids, with_payload=True, with_vectors=False
        )
        by_id = {p.id: track_from(p) for p in points}
        return [by_id[i] for i in page_ids if i in by_id]

    def delete_tracks(self, track_ids: Iterable[str]) -> None:
        """Removes tracks by id (their artists' centroids are the caller's to recompute)."""
        ids = [i for i in dict.fromkeys(track_ids) if is_uuid(i)]
        if ids and self._ready():
            for batch in _batches(ids, RETRIEVE_BATCH):
                self._backend.delete_ids(self.tracks_collection, list(batch))
            self._writes_since_optimize += len(ids)

    def delete_artist(self, artist_key: str) -> int:
        """Removes an artist's tracks and its artist point; returns the tracks deleted."""
        if not self._ready():
            return 0
        where = Where(equals={F_ARTIST_KEY: (artist_key,)})
        deleted = self._backend.count(self.tracks_collection, where)
        with self._changing_catalogue():
            if deleted:
                self._backend.delete_where(self.tracks_collection, where)
            self._backend.delete_ids(self.artists_collection, [artist_point_id(artist_key)])
        self._neighbour_lists.artists_changed([artist_key])
        self._names.invalidate()
        return deleted

    def count_tracks(self) -> int:
        return self._backend.count(self.tracks_collection) if self._ready() else 0

    # --- artists -----------------------------------------------------------------------

    def upsert_artists(self, artists: Sequence[Artist]) -> None:
        with self._changing_catalogue():
            self._write_artists(artists)

    def _write_artists(self, artists: Sequence[Artist]) -> None:
        spec = self._require_spec()
        points = [artist_point(artist, spec.dim) for artist in artists]
        for batch in _batches(points, UPSERT_BATCH):
            self._backend.upsert(self.artists_collection, batch)
        self._neighbour_lists.artists_changed(a.artist_key for a in artists)
        self._names.invalidate()

    @contextlib.contextmanager
    def _changing_catalogue(self) -> Iterator[None]:
        """Centroid writes between two fresh catalogue versions: neighbour lists computed
        before, or from half-written centroids, are never served for what follows."""
        self._neighbour_lists.bump_catalogue_version()
        yield
        self._neighbour_lists.bump_catalogue_version()

    def get_artist(self, artist_key: str, *, with_centroid: bool = False) -> Artist | None:
        if not self._ready():
            return None
        served = None if with_centroid else self._neighbour_lists.served()
        if served is not None:
            row = served.row_of.get(artist_key)
            return served.artist(row) if row is not None else None
        points = self._backend.retrieve(
            self.artists_collection,
            [artist_point_id(artist_key)],
            with_payload=True,
            with_vectors=with_centroid,
        )
        return artist_from(points[0]) if points else None

    def get_artists(
        self, artist_keys: Iterable[str], *, with_centroid: bool = False
    ) -> dict[str, Artist]:
        """The stored artists among `artist_keys`, by key (unknown keys are left out)."""
        if not self._ready():
            return {}
        ids = [artist_point_id(k) for k in dict.fromkeys(artist_keys)]
        found: dict[str, Artist] = {}
        for batch in _batches(ids, RETRIEVE_BATCH):
            for point in self._backend.retrieve(
                self.artists_collection, batch, with_payload=True, with_vectors=with_centroid
            ):
                artist = artist_from(point)
                found[artist.artist_key] = artist
        return found

    def list_artists(
        self, *, prefix: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Artist], int]:
        """A page of artists in artist-key order (case- and accent-insensitive name order)
        whose key starts with `prefix` (folded like a key), and how many match in all."""
        if limit < 0 or offset < 0:
            raise InvalidRequest(f"limit and offset must be >= 0, got {limit} and {offset}")
        index = self._name_index()
        start, end = index.prefix_range(key_prefix(prefix or ""))
        page = index.entries[start + offset : min(end, start + offset + limit)]
        artists = [Artist(name=e.name, artist_key=e.key, track_count=e.track_count) for e in page]
        return artists, end - start

    def artist_names(self) -> dict[str, str]:
        """Every artist as key -> display name (for suggestions). Do not mutate."""
        return self._name_index().names

    def count_artists(self) -> int:
        return self._backend.count(self.artists_collection) if self._ready() else 0

    def _name_index(self) -> NameIndex:
        # Read the spec first: a spec that appeared or changed since the index was built
        # invalidates it before it is served.
        self.spec()
        return self._names.current()

    def _load_name_entries(self) -> list[NameEntry]:
        # The spec as `_name_index` just read it: asking spec() here could wait for the spec
        # lock while holding the names lock.
        if self._known_spec is None:
            return []
        in_memory = self._neighbour_lists.name_entries()
        if in_memory is not None:
            return [NameEntry(key=k, name=n, track_count=c) for k, n, c in in_memory]
        scan = Scan(fields=[F_ARTIST, F_ARTIST_KEY, F_TRACK_COUNT], batch_size=NAME_SCROLL_BATCH)
        return [
            NameEntry(
                key=str(p.payload[F_ARTIST_KEY]),
                name=str(p.payload.get(F_ARTIST) or p.payload[F_ARTIST_KEY]),
                track_count=int(p.payload.get(F_TRACK_COUNT) or 0),
            )
            for p in self._backend.scroll(self.artists_collection, scan)
        ]

    def artist_keys_in_tracks(self) -> set[str]:
        """Distinct artist keys present among the tracks (to repair stale centroids)."""
        if not self._ready():
            return set()
        return set(self.artist_track_counts())

    def artist_track_counts(self) -> dict[str, int]:
        """Stored tracks per artist key, counted from the tracks themselves (not the artists)."""
        if not self._ready():
            return {}
        return self._tracks_per_artist(None)

    def _tracks_per_artist(self, where: Where | None) -> dict[str, int]:
        """Tracks passing `where` per artist key."""
        counts = self._value_counts(self.tracks_collection, F_ARTIST_KEY, where)
        return {str(key): int(count) for key, count in counts.items()}

    def recompute_centroids(self, artist_keys: Iterable[str]) -> int:
        """Rewrites each artist from its tracks (centroid, count, name, genres), or removes the
        artist when it has no tracks left. Returns how many artists were written or removed."""
        if not self._ready():
            return 0
        changed = 0
        wanted = list(dict.fromkeys(artist_keys))
        if not wanted:
            return 0
        with self._changing_catalogue():
            for keys in _batches(wanted, CENTROID_KEY_BATCH):
                changed += self._recompute_batch(keys)
        return changed

    def _recompute_batch(self, keys: Sequence[str]) -> int:
        by_artist: dict[str, list[StoredPoint]] = defaultdict(list)
        scan = Scan(
            where=Where(equals={F_ARTIST_KEY: tuple(keys)}),
            with_vectors=True,
            fields=[F_ARTIST, F_ARTIST_KEY, F_GENRE],
            batch_size=SCROLL_BATCH,
        )
        for point in self._backend.scroll(self.tracks_collection, scan):
            by_artist[str(point.payload[F_ARTIST_KEY])].append(point)
        artists = [artist_from_tracks(key, points) for key, points in by_artist.items()]
        gone = [artist_point_id(k) for k in keys if k not in by_artist]
        if artists:
            self._write_artists(artists)
        if gone:
            self._backend.delete_ids(self.artists_collection, gone)
            self._neighbour_lists.artists_changed(k for k in keys if k not in by_artist)
            self._names.invalidate()
        return len(artists) + len(gone)

    # --- neighbour lists (exact "artists like X", see neighbour_lists.py) ----------------

    def neighbour_lists_version(self) -> str | None:
        """The catalogue version the stored neighbour lists are exact for, when it is the
        current one; None when there are no lists to serve (absent, stale, being written)."""
        return self._neighbour_lists.valid_version() if self._ready() else None

    def neighbour_lists_exact(self) -> bool:
        """Whether the stored neighbour lists are exact, rather than approximate (a rebuild
        above `approximate_neighbours_above` artists)."""
        return self._ready() and self._neighbour_lists.lists_exact()

    def load_in_memory(self, stop: threading.Event | None = None) -> bool:
        """Embedded store: reads the artists (centroids, names, counts, exact neighbour lists)
        into memory, where this process's own writes keep them current, so "artists like X"
        answers without a store read and list upkeep costs what changed, not the catalogue
        (100,000 artists: about 300 MB for the centroids). False (nothing read) for a Qdrant
        server, which others write too, or when the store was opened without
        `artists_in_memory`. `stop`: abandons the read when set."""
        return self._ready() and self._neighbour_lists.load_in_memory(stop)

    def answers_from_memory(self) -> bool:
        """Whether "artists like X" is answered from the in-memory lists now."""
        return self._ready() and self._neighbour_lists.served() is not None

    def rebuild_neighbour_lists(
        self, progress: Callable[[int, int], None] | None = None
    ) -> NeighbourListsUpdate:
        """Recomputes and stores every artist's neighbour list; `progress(done, total)`."""
        if not self._ready():
            return NeighbourListsUpdate(True, 0, 0, 0, 0.0)
        return self._counted(self._neighbour_lists.rebuild(progress))

    def update_neighbour_lists(
        self,
        changed_keys: Iterable[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> NeighbourListsUpdate:
        """Brings the lists up to date after centroid changes: incrementally when few artists
        changed (`changed_keys`, plus any the lists show changed), else by a rebuild."""
        if not self._ready():
            return NeighbourListsUpdate(False, 0, 0, 0, 0.0)
        return self._counted(self._neighbour_lists.update(changed_keys, progress))

    def _counted(self, update: NeighbourListsUpdate) -> NeighbourListsUpdate:
        # A rewritten payload moves its point out of the indexed segment (copy on write).
        self._writes_since_optimize += update.written
        return update

    def neighbours_of(
        self,
        artist_key: str,
        *,
        limit: int,
        min_tracks: int = 1,
        only_keys: Iterable[str] | None = None,
        centroid: Sequence[float] | None = None,
    ) -> list[ArtistHit] | None:
        """The artist's nearest artists from its stored list, best first (scores within
        1.5e-5 of exact), restricted to `only_keys` and `min_tracks`; None when no valid list
        fills `limit` (the caller searches live). `centroid`: the artist's stored centroid
        when the caller has just read it (saves reading it again)."""
        if not self._ready() or limit <= 0:
            return None
        return self._neighbour_lists.neighbours_of(
            artist_key, limit, min_tracks, only_keys, centroid=centroid
        )

    # --- search ------------------------------------------------------------------------

    def search_artists(
        self,
        vector: Sequence[float] | np.ndarray,
        *,
        limit: int,
        exclude_keys: Iterable[str] = (),
        min_tracks: int = 1,
        only_keys: Iterable[str] | None = None,
    ) -> list[ArtistHit]:
        """Artists whose centroid is closest to `vector` (cosine), best first."""
        spec = self.spec()
        if spec is None or limit <= 0:
            return []
        query = as_vector(vector, spec.dim, "query vector")
        excluded = frozenset(artist_point_id(k) for k in exclude_keys)
        if only_keys is None and min_tracks <= 1:
            # "Artists like X" excludes only X: asking for a few more unfiltered hits and
            # dropping X here is cheaper than a filtered HNSW search (p99 2.4 vs 6.3 ms at 100k).
            hits = self._search(self.artists_collection, query, limit + len(excluded), None)
            hits = [(p, score) for p, score in hits if p.id not in excluded][:limit]
        else:
            where = Where(
                at_least={F_TRACK_COUNT: min_tracks} if min_tracks > 1 else {},
                only_ids=(
                    frozenset(artist_point_id(k) for k in only_keys)
                    if only_keys is not None
                    else None
                ),
                exclude_ids=excluded,
            )
            hits = self._search(self.artists_collection, query, limit, where)
        return [ArtistHit(artist=artist_from(p), score=score) for p, score in hits]

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
        spec = self.spec()
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
        hits = self._search(self.tracks_collection, query, limit, where, with_vectors)
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
        spec = self.spec()
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
            limit,
            where,
            search_ef=self.search_ef,
            exact=self.exact_search,
            oversampling=self.oversampling,
        )
        hits = self._backend.recommend(self.tracks_collection, request)
        return [TrackHit(track=track_from(p, with_vector=False), score=s) for p, s in hits]

    def _search(
        self,
        collection: str,
        query: list[float],
        limit: int,
        where: Where | None,
        with_vectors: bool = False,
    ) -> list[tuple[StoredPoint, float]]:
        request = VectorQuery(
            query,
            limit,
            where,
            search_ef=self.search_ef,
            exact=self.exact_search,
            with_vectors=with_vectors,
            oversampling=self.oversampling,
        )
        return self._backend.search(collection, request)

    def artist_keys_with(self, filters: Mapping[str, Any]) -> set[str]:
        """Keys of artists having at least one track that passes `filters`."""
        if not self._ready():
            return set()
        where = Where(equals=equality_conditions(filters))
        return set(self._tracks_per_artist(where))

    def _value_counts(
        self, collection: str, field_name: str, where: Where | None
    ) -> dict[Scalar, int]:
        # Facets need an upper bound on the number of values: the matching points bound it.
        total = self._backend.count(collection, where)
        if total == 0:
            return {}
        return self._backend.value_counts(collection, field_name, where, limit=total)

    # --- upkeep ------------------------------------------------------------------------

    def flush(self) -> None:
        self._backend.flush()

    def optimize(self) -> None:
        """Builds the vector indexes after bulk writes (Edge: HNSW in-process; Qdrant Edge
        holds the GIL meanwhile, so the process's other threads wait)."""
        self._backend.optimize()
        self._writes_since_optimize = 0

    def writes_since_optimize(self) -> int:
        """Points written through this Store since its last `optimize`, which then sit outside
        the vector index: tracks written or deleted, and artists whose neighbour list was
        rewritten (a payload update moves a point out of its indexed segment)."""
        return self._writes_since_optimize

    def ping(self) -> bool:
        return not self._closed and self._backend.ping()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
