"""The store: every Qdrant access of soundalike, behind one class that speaks our own types.

`Store` is the façade: Track and Artist in, hits out. It composes its parts, each over what it
stores: spec.py (the collections, their embedding spec and metadata), tracks.py (the tracks),
artists.py (centroids, names, counts), neighbour_lists.py (the stored "artists like X" lists
and their upkeep). `open_store` (opener.py) picks its backend. The schema it writes is defined
in schema.py, point ids in identity.py, the backend interface in backend.py.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from soundalike.core.errors import InvalidRequest
from soundalike.core.events import NO_EVENTS, EventStream
from soundalike.core.types import Artist, ArtistHit, EmbeddingSpec, Track
from soundalike.search.backend import Backend
from soundalike.search.closing import Closing
from soundalike.search.name_index import CachedNameIndex
from soundalike.search.neighbour_lists import (
    NeighbourLists,
    NeighbourListsState,
    NeighbourListsUpdate,
)
from soundalike.search.schema import collection_names
from soundalike.search.store.artists import ArtistSide
from soundalike.search.store.config import (
    DEFAULT_OVERSAMPLING,
    MAX_SEARCH_EF,
    SHARED_NAME_INDEX_TTL_S,
    StoreConfig,
)
from soundalike.search.store.forwarding import forward, forwarded
from soundalike.search.store.searching import VectorSearch
from soundalike.search.store.spec import SPEC_RECHECK_S, Collections
from soundalike.search.store.tracks import TrackSide


class Store(Closing):
    """soundalike's store. Vectors in, our types out; the backend never leaks."""

    # Declared here because the name index's loader (a lambda made before it is set) reads it.
    _artist_side: ArtistSide

    def __init__(
        self,
        backend: Backend,
        config: StoreConfig | None = None,
        *,
        exact_search: bool = False,
        spec_recheck_seconds: float = SPEC_RECHECK_S,
        oversampling: float | None = DEFAULT_OVERSAMPLING,
        events: EventStream = NO_EVENTS,
        **fields: Any,
    ) -> None:
        """`config`: what the store was opened with (its backend fields are `open_store`'s);
        `fields`: StoreConfig fields that replace the config's (`Store(backend, search_ef=4)`).
        `exact_search`: scan every vector instead of the HNSW search (exact, slow at scale;
        for measuring); `spec_recheck_seconds`: how long a known spec is trusted before it is
        read again; `oversampling`: how many times the limit a quantized search keeps for
        rescoring (None: Qdrant's default, 1); `events`: where upkeep reports (centroids
        recomputed, neighbour lists updated)."""
        config = dataclasses.replace(config or StoreConfig(), **fields)
        search_ef = config.search_ef
        if search_ef is not None and not 1 <= search_ef <= MAX_SEARCH_EF:
            raise InvalidRequest(
                f"search_ef must be between 1 and {MAX_SEARCH_EF}, got {search_ef}"
            )
        if oversampling is not None and oversampling < 1:
            raise InvalidRequest(f"oversampling must be at least 1, got {oversampling}")
        self._backend = backend
        self._vectors = VectorSearch(backend, search_ef, exact_search, oversampling)
        # The parts are built before the name index can load (`self._artist_side` is read
        # only when a name is first asked for).
        names = CachedNameIndex(
            lambda: self._artist_side.load_name_entries(),
            max_age_seconds=SHARED_NAME_INDEX_TTL_S if backend.shared else None,
        )
        names_of_collections = collection_names(config.collection_prefix)
        self._neighbour_lists = NeighbourLists(
            backend,
            names_of_collections,
            events,
            keep_in_memory=config.artists_in_memory and not backend.shared,
            config=config.neighbours,
        )
        self._collections = Collections(
            backend,
            names_of_collections,
            quantize_tracks=config.quantize_tracks,
            spec_recheck_seconds=spec_recheck_seconds,
            spec_changed=names.invalidate,
            dropped=self._neighbour_lists.forget_in_memory,
        )
        self._track_side = TrackSide(backend, self._collections, self._vectors)
        self._artist_side = ArtistSide(
            backend, self._collections, self._vectors, self._neighbour_lists, names, events
        )
        self._closed = False
        # Points written since the last optimize (this process): when an index rebuild is due.
        self._writes_since_optimize = 0

    # --- what the store is ------------------------------------------------------------

    tracks_collection = forwarded[str]("_collections", "tracks_collection")
    artists_collection = forwarded[str]("_collections", "artists_collection")
    search_ef = forwarded[int | None]("_vectors", "search_ef")
    exact_search = forwarded[bool]("_vectors", "exact")
    oversampling = forwarded[float | None]("_vectors", "oversampling")

    @property
    def is_shared(self) -> bool:
        """Whether other processes may write this store too (a Qdrant server): then nothing
        read of it is kept in memory for long."""
        return self._backend.shared

    def note_owner(self, note: dict[str, Any]) -> bool:
        """An embedded store records who serves it (`{"pid", "url"}`) in its data dir, so a
        process refused the dir can name the server; False (nothing noted) for a server."""
        from soundalike.search.edge_store import EdgeBackend

        if not isinstance(self._backend, EdgeBackend):
            return False
        self._backend.note_owner(note)
        return True

    @property
    def backend_for_tests(self) -> Backend:
        """Test hook: the backend, for tests that read raw payloads, fake a failure or open a
        second Store on it. Product code uses Store's methods."""
        return self._backend

    # --- the collections and their spec (spec.py) ----------------------------------------

    def spec(self) -> EmbeddingSpec | None:
        """The embedding spec of the stored vectors; None on an empty store (see
        `Collections.spec` for when it is read again)."""
        return self._collections.spec()

    def ensure_spec(self, spec: EmbeddingSpec, *, force: bool = False) -> None:
        """Sets the spec on an empty store, accepts the same spec, refuses a different one;
        `force` drops both collections and recreates them for `spec`."""
        self._collections.ensure_spec(spec, force=force)

    def mark_centroids_pending(self, artist_keys: Iterable[str]) -> None:
        """Durably notes artists whose centroids must be recomputed (survives a crash)."""
        self._collections.mark_centroids_pending(artist_keys)

    def pending_centroids(self) -> set[str]:
        """Artists noted by `mark_centroids_pending` and not cleared since."""
        return self._collections.pending_centroids()

    def clear_centroids_pending(self, artist_keys: Iterable[str]) -> None:
        """Forgets artists whose recomputed centroids are now durable."""
        self._collections.clear_centroids_pending(artist_keys)

    def media_server_record(self, owner: str) -> dict[str, Any]:
        """What soundalike noted about one media-server user (the playlists it wrote there,
        its last mixes run); {} when nothing was noted."""
        return self._collections.media_server_record(owner)

    def update_media_server_record(
        self, owner: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Durably replaces the note about one media-server user with `change(current note)`,
        atomically within this process; returns the new note."""
        return self._collections.update_media_server_record(owner, change)

    def declare_filterable(self, columns: Iterable[str]) -> None:
        """Adds keyword indexes for extra (manifest) columns that searches will filter on."""
        self._collections.declare_filterable(columns)

    # --- tracks (tracks.py) --------------------------------------------------------------

    def existing_track_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of `ids` already stored."""
        return self._track_side.existing_track_ids(ids)

    def upsert_tracks(self, tracks: Sequence[Track]) -> None:
        """Writes tracks (idempotent: a track id is written once however often it comes)."""
        self._writes_since_optimize += self._track_side.upsert_tracks(tracks)

    def get_track(self, track_id: str, *, with_vector: bool = True) -> Track | None:
        return self._track_side.get_track(track_id, with_vector=with_vector)

    def tracks_of_artist(self, artist_key: str, *, with_vectors: bool = False) -> list[Track]:
        """The artist's tracks, ordered by album, title, path."""
        return self._track_side.tracks_of_artist(artist_key, with_vectors=with_vectors)

    def tracks_at(self, paths: Iterable[str]) -> list[Track]:
        """The stored tracks (no vectors) whose path is one of `paths`."""
        return self._track_side.tracks_at(paths)

    def tracks_by_item_ids(self, item_ids: Iterable[str]) -> dict[str, Track]:
        """The stored tracks (no vectors) a media server knows by these ids, by item id."""
        return self._track_side.tracks_by_item_ids(item_ids)

    def get_tracks(self, track_ids: Iterable[str], *, with_vectors: bool = False) -> list[Track]:
        """The stored tracks among `track_ids`, in the order asked (unknown ids left out)."""
        return self._track_side.get_tracks(track_ids, with_vectors=with_vectors)

    def scan_track_fields(self, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(track id, those payload fields) of every stored track, no vectors: one scroll."""
        return self._track_side.scan_track_fields(fields)

    def track_summaries(self) -> list[Track]:
        """Every stored track without vector: id, artist, path and content hash only (a live
        library compares them with what its folders hold)."""
        return self._track_side.track_summaries()

    def artist_track_page(self, artist_key: str, *, limit: int, offset: int = 0) -> list[Track]:
        """One page of the artist's tracks, ordered by album, title, path. Only the sort fields
        of every track are read; full payloads only for the page."""
        return self._track_side.artist_track_page(artist_key, limit=limit, offset=offset)

    def delete_tracks(self, track_ids: Iterable[str]) -> None:
        """Removes tracks by id (their artists' centroids are the caller's to recompute)."""
        self._writes_since_optimize += self._track_side.delete_tracks(track_ids)

    def count_tracks(self) -> int:
        return self._track_side.count_tracks()

    search_tracks = forward("_track_side", TrackSide.search_tracks)

    recommend_tracks = forward("_track_side", TrackSide.recommend_tracks)

    def artist_keys_with(self, filters: Mapping[str, Any]) -> set[str]:
        """Keys of artists having at least one track that passes `filters`."""
        return self._track_side.artist_keys_with(filters)

    def artist_keys_in_tracks(self) -> set[str]:
        """Distinct artist keys present among the tracks (to repair stale centroids)."""
        return self._track_side.artist_keys_in_tracks()

    def artist_track_counts(self) -> dict[str, int]:
        """Stored tracks per artist key, counted from the tracks themselves (not the artists)."""
        return self._track_side.artist_track_counts()

    # --- artists (artists.py) ------------------------------------------------------------

    def delete_artist(self, artist_key: str) -> int:
        """Removes an artist's tracks and its artist point; returns the tracks deleted."""
        return self._artist_side.delete_artist(artist_key)

    def upsert_artists(self, artists: Sequence[Artist]) -> None:
        return self._artist_side.upsert_artists(artists)

    def get_artist(self, artist_key: str, *, with_centroid: bool = False) -> Artist | None:
        return self._artist_side.get_artist(artist_key, with_centroid=with_centroid)

    def get_artists(
        self, artist_keys: Iterable[str], *, with_centroid: bool = False
    ) -> dict[str, Artist]:
        """The stored artists among `artist_keys`, by key (unknown keys are left out)."""
        return self._artist_side.get_artists(artist_keys, with_centroid=with_centroid)

    def list_artists(
        self, *, prefix: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Artist], int]:
        """A page of artists in artist-key order (case- and accent-insensitive name order)
        whose key starts with `prefix` (folded like a key), and how many match in all."""
        return self._artist_side.list_artists(prefix=prefix, limit=limit, offset=offset)

    def artist_names(self) -> dict[str, str]:
        """Every artist as key -> display name (for suggestions). Do not mutate."""
        return self._artist_side.artist_names()

    def count_artists(self) -> int:
        return self._artist_side.count_artists()

    def recompute_centroids(self, artist_keys: Iterable[str]) -> int:
        """Rewrites each artist from its tracks (centroid, count, name, genres), or removes the
        artist when it has no tracks left. Returns how many artists were written or removed."""
        return self._artist_side.recompute_centroids(artist_keys)

    search_artists = forward("_artist_side", ArtistSide.search_artists)

    def scan_artists(self) -> Iterator[Artist]:
        """Every stored artist with its centroid, one scroll (nothing on an empty store)."""
        return self._artist_side.scan_artists()

    # --- neighbour lists (exact "artists like X", see neighbour_lists.py) ----------------

    def catalogue_version(self) -> str | None:
        """A token that changes whenever a centroid does (every ingest, delete and recompute):
        what caches of catalogue-wide facts are keyed on. None on an empty store."""
        return self._neighbour_lists.catalogue_version() if self._collections.ready() else None

    def neighbour_lists_version(self) -> str | None:
        """The catalogue version the stored neighbour lists are exact for, when it is the
        current one; None when there are no lists to serve (absent, stale, being written)."""
        return self._neighbour_lists.valid_version() if self._collections.ready() else None

    def neighbour_lists_exact(self) -> bool:
        """Whether the stored neighbour lists are exact, rather than approximate (a rebuild
        above `approximate_neighbours_above` artists)."""
        return self._collections.ready() and self._neighbour_lists.lists_exact()

    def load_in_memory(self, stop: threading.Event | None = None) -> bool:
        """Embedded store: reads the artists (centroids, names, counts, exact neighbour lists)
        into memory, where this process's own writes keep them current, so "artists like X"
        answers without a store read and list upkeep costs what changed, not the catalogue
        (100,000 artists: about 300 MB for the centroids). False (nothing read) for a Qdrant
        server, which others write too, or when the store was opened without
        `artists_in_memory`. `stop`: abandons the read when set."""
        return self._collections.ready() and self._neighbour_lists.load_in_memory(stop)

    def answers_from_memory(self) -> bool:
        """Whether "artists like X" is answered from the in-memory lists now."""
        return self._collections.ready() and self._neighbour_lists.served() is not None

    def rebuild_neighbour_lists(self) -> NeighbourListsUpdate:
        """Recomputes and stores every artist's neighbour list (progress: UpkeepProgress
        events)."""
        if not self._collections.ready():
            return NeighbourListsUpdate(True, 0, 0, 0, 0.0)
        return self._counted(self._neighbour_lists.rebuild())

    def update_neighbour_lists(self, changed_keys: Iterable[str] = ()) -> NeighbourListsUpdate:
        """Brings the lists up to date after centroid changes: incrementally when few artists
        changed (`changed_keys`, plus any the lists show changed), else by a rebuild."""
        if not self._collections.ready():
            return NeighbourListsUpdate(False, 0, 0, 0, 0.0)
        return self._counted(self._neighbour_lists.update(changed_keys))

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
        if not self._collections.ready() or limit <= 0:
            return None
        return self._neighbour_lists.neighbours_of(
            artist_key, limit, min_tracks, only_keys, centroid=centroid
        )

    def neighbour_lists_state(self) -> NeighbourListsState:
        """Whether the stored lists are valid for the current catalogue version and exact:
        one metadata read, no scan, cheap enough for every monitoring scrape."""
        if not self._collections.ready():
            return NeighbourListsState(valid=False, exact=True)
        return self._neighbour_lists.state()

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
