"""The store: every Qdrant access of soundalike, behind one class that speaks our own types.

The schema lives here and only here: collection names, payload fields, payload indexes,
and where the embedding spec is kept. Two backends implement `Backend`: Qdrant Edge
in-process (edge_store.py, the default) and a Qdrant server through qdrant-client
(server_store.py, also its `:memory:` test double).

Layout
- `<prefix>tracks`: one point per track, id `track_id(content_hash, artist_key)`. Payload:
  artist, artist_key, title, album, genre, year, path, duration_seconds, content_hash,
  `spec` (the embedding spec dict) and `extra` (the manifest's extra columns, nested under
  their own names so they can never clobber a reserved field; filter on them by bare name).
- `<prefix>artists`: one point per artist, id `artist_point_id(artist_key)`, vector = centroid.
  Payload: artist, artist_key, track_count, genres.
- The embedding spec is stored once, in the tracks collection's metadata under
  `SPEC_METADATA_KEY` (Edge: a JSON file beside the shard; server: collection metadata).
"""

from __future__ import annotations

import threading
import time
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np

from soundalike.search.centroids import artist_centroid
from soundalike.search.errors import InvalidRequest, SpecMismatch, StoreError
from soundalike.search.names import key_prefix
from soundalike.search.types import Artist, ArtistHit, EmbeddingSpec, Track, TrackHit

# --- schema: the one place ---------------------------------------------------------------

SOUNDALIKE_NAMESPACE = uuid.UUID("c902b414-f108-4d13-9b4a-6d1c4f571929")

TRACKS = "tracks"
ARTISTS = "artists"

F_ARTIST = "artist"
F_ARTIST_KEY = "artist_key"
F_TITLE = "title"
F_ALBUM = "album"
F_GENRE = "genre"
F_YEAR = "year"
F_PATH = "path"
F_DURATION = "duration_seconds"
F_CONTENT_HASH = "content_hash"
F_EXTRA = "extra"
F_SPEC = "spec"
F_TRACK_COUNT = "track_count"
F_GENRES = "genres"

TRACK_FIELDS = (
    F_ARTIST,
    F_ARTIST_KEY,
    F_TITLE,
    F_ALBUM,
    F_GENRE,
    F_YEAR,
    F_PATH,
    F_DURATION,
    F_CONTENT_HASH,
    F_EXTRA,
    F_SPEC,
)

IndexKind = Literal["keyword", "integer", "float", "bool"]

TRACK_INDEXES: dict[str, IndexKind] = {
    F_ARTIST_KEY: "keyword",
    F_GENRE: "keyword",
    F_ALBUM: "keyword",
    F_YEAR: "integer",
}
ARTIST_INDEXES: dict[str, IndexKind] = {
    F_ARTIST_KEY: "keyword",
    F_TRACK_COUNT: "integer",
    F_GENRES: "keyword",
}

# Track fields a search may filter on directly; any other filter name is an extra column.
DIRECT_FILTER_FIELDS = frozenset({F_GENRE, F_ALBUM, F_YEAR, F_TITLE, F_ARTIST, F_PATH})
NOT_FILTERABLE = frozenset({F_SPEC, F_EXTRA, "vector"})

SPEC_METADATA_KEY = "soundalike_spec"

UPSERT_BATCH = 256
RETRIEVE_BATCH = 1024
SCROLL_BATCH = 2048
CENTROID_KEY_BATCH = 256
# How long the in-memory artist-name index may lag writes made by *other* processes (server
# backend only: an embedded store has a single owner, so its index is exact).
SHARED_NAME_INDEX_TTL_S = 15.0
# HNSW candidates per search (see docs/benchmarks.md, "## Store", for the measurements).
DEFAULT_SEARCH_EF = 128
MAX_SEARCH_EF = 100_000


def collection_names(prefix: str = "") -> tuple[str, str]:
    """(tracks, artists) collection names for a collection prefix."""
    return f"{prefix}{TRACKS}", f"{prefix}{ARTISTS}"


def track_id(content_hash: str, artist_key: str) -> str:
    """A track's id: the same audio under the same artist is the same point, wherever it lives."""
    return str(uuid.uuid5(SOUNDALIKE_NAMESPACE, f"{content_hash}:{artist_key}"))


def artist_point_id(artist_key: str) -> str:
    return str(uuid.uuid5(SOUNDALIKE_NAMESPACE, artist_key))


# --- the backend interface ---------------------------------------------------------------

Scalar = str | int | float | bool


@dataclass(frozen=True)
class StoredPoint:
    id: str
    vector: list[float] | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Where:
    """A backend-neutral filter; every condition must hold.

    `equals[f]` / `not_equals[f]`: the field's value is / is not one of the given values.
    `at_least[f]`: numeric lower bound. `only_ids` / `exclude_ids`: point ids.
    """

    equals: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    not_equals: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    at_least: Mapping[str, float] = field(default_factory=dict)
    only_ids: frozenset[str] | None = None
    exclude_ids: frozenset[str] = frozenset()

    def is_empty(self) -> bool:
        return not (
            self.equals
            or self.not_equals
            or self.at_least
            or self.only_ids is not None
            or self.exclude_ids
        )


class Backend(Protocol):
    """What the store needs from a Qdrant: one collection per name, cosine vectors, uuid ids."""

    description: str
    # True when another process may write to the same collections (server, not embedded).
    shared: bool

    def collection_exists(self, name: str) -> bool: ...
    def create_collection(self, name: str, dim: int) -> None: ...
    def drop_collection(self, name: str) -> None: ...
    def read_metadata(self, name: str) -> dict[str, Any]: ...
    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None: ...
    def create_index(self, name: str, field_name: str, kind: IndexKind) -> None: ...
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None: ...
    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool, with_vectors: bool
    ) -> list[StoredPoint]: ...
    def delete_ids(self, name: str, ids: Sequence[str]) -> None: ...
    def delete_where(self, name: str, where: Where) -> None: ...
    def scroll(
        self,
        name: str,
        where: Where | None,
        *,
        with_vectors: bool,
        fields: Sequence[str] | None,
        batch_size: int,
    ) -> Iterator[StoredPoint]: ...
    def count(self, name: str, where: Where | None = None) -> int: ...
    def search(
        self,
        name: str,
        vector: list[float],
        *,
        limit: int,
        where: Where | None,
        search_ef: int | None = None,
        exact: bool = False,
    ) -> list[tuple[StoredPoint, float]]: ...
    def value_counts(
        self, name: str, field_name: str, where: Where | None = None
    ) -> dict[Scalar, int]: ...
    def flush(self) -> None: ...
    def optimize(self) -> None: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


# --- the façade ---------------------------------------------------------------------------


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
) -> Store:
    """Opens the store: a server when `url` is given, qdrant-client `:memory:` when
    `in_memory`, else Qdrant Edge under `data_dir` (default ./soundalike-data).

    `search_ef`: HNSW candidates per vector search (recall against latency; None: Qdrant's
    default, the index's ef_construct)."""
    if url is not None and in_memory:
        raise InvalidRequest("give either a Qdrant url or in_memory=True, not both")
    backend: Backend
    if url is not None or in_memory:
        from soundalike.search.server_store import ServerBackend

        if in_memory:
            backend = ServerBackend.in_memory()
        else:
            backend = ServerBackend.connect(
                url,  # type: ignore[arg-type]
                api_key=api_key,
                timeout=timeout,
                shard_number=shard_number,
                replication_factor=replication_factor,
            )
    else:
        from soundalike.search.edge_store import EdgeBackend

        backend = EdgeBackend(
            Path(data_dir) if data_dir is not None else Path("soundalike-data"),
            lock_name=f"{collection_prefix}soundalike.lock",
        )
    return Store(backend, collection_prefix=collection_prefix, search_ef=search_ef)


@dataclass(frozen=True)
class _NameEntry:
    key: str
    name: str
    track_count: int


class _NameIndex:
    """All artists sorted by key: prefix ranges by bisection, pages by slicing."""

    def __init__(self, entries: list[_NameEntry]) -> None:
        self.entries = sorted(entries, key=lambda e: (e.key, e.name))
        self.keys = [e.key for e in self.entries]
        self.names = {e.key: e.name for e in self.entries}

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        if not prefix:
            return 0, len(self.entries)
        start = bisect_left(self.keys, prefix)
        # Every key with this prefix sorts before prefix + the highest code point.
        end = bisect_left(self.keys, prefix + "\U0010ffff", lo=start)
        return start, end


class Store:
    """soundalike's store. Vectors in, our types out; the backend never leaks."""

    def __init__(
        self,
        backend: Backend,
        *,
        collection_prefix: str = "",
        search_ef: int | None = DEFAULT_SEARCH_EF,
        exact_search: bool = False,
    ) -> None:
        """`search_ef`: HNSW candidates per vector search (None: Qdrant's default);
        `exact_search`: scan every vector instead (exact, slow at scale; for measuring)."""
        if search_ef is not None and not 1 <= search_ef <= MAX_SEARCH_EF:
            raise InvalidRequest(
                f"search_ef must be between 1 and {MAX_SEARCH_EF}, got {search_ef}"
            )
        self._backend = backend
        self.tracks_collection, self.artists_collection = collection_names(collection_prefix)
        self.search_ef = search_ef
        self.exact_search = exact_search
        self._spec: EmbeddingSpec | None = None
        self._spec_loaded = False
        # Request threads share one Store: lazy loads happen once, under a lock, while the
        # queries themselves run concurrently.
        self._spec_lock = threading.Lock()
        self._names: _NameIndex | None = None
        self._names_built_at = 0.0
        self._names_lock = threading.Lock()
        self._closed = False

    @property
    def backend(self) -> Backend:
        return self._backend

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- spec --------------------------------------------------------------------------

    def spec(self) -> EmbeddingSpec | None:
        """The embedding spec of the stored vectors; None on an empty store."""
        if self._spec_loaded:
            return self._spec
        with self._spec_lock:
            if not self._spec_loaded:
                self._spec = self._read_spec()
                self._spec_loaded = True
            return self._spec

    def _read_spec(self) -> EmbeddingSpec | None:
        if not self._backend.collection_exists(self.tracks_collection):
            return None
        stored = self._backend.read_metadata(self.tracks_collection).get(SPEC_METADATA_KEY)
        if stored is None:
            return None
        try:
            return EmbeddingSpec.from_dict(stored)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"the embedding spec stored with {self.tracks_collection} in "
                f"{self._backend.description} is unreadable ({exc}): rebuild with --force"
            ) from exc

    def ensure_spec(self, spec: EmbeddingSpec, *, force: bool = False) -> None:
        """Sets the spec on an empty store, accepts the same spec, refuses a different one.

        force=True drops both collections and recreates them for `spec`.
        """
        if spec.dim <= 0:
            raise InvalidRequest(f"embedding spec dim must be positive, got {spec.dim}")
        if force:
            self._create_collections(spec, drop_existing=True)
            return
        stored = self.spec()
        if stored is None:
            self._create_collections(spec, drop_existing=False)
            return
        differences = stored.differences(spec)
        if differences:
            raise SpecMismatch(self._mismatch_message(differences))

    def _mismatch_message(self, differences: dict[str, tuple[Any, Any]]) -> str:
        lines = [
            f"the store {self._backend.description} ({self.tracks_collection}) holds vectors "
            "of another embedding spec; a collection never mixes specs:"
        ]
        lines += [
            f"  {name}: stored {stored!r}, requested {requested!r}"
            for name, (stored, requested) in differences.items()
        ]
        lines.append(
            "To proceed: use a new data dir (SOUNDALIKE_DATA_DIR) or collection prefix "
            "(SOUNDALIKE_COLLECTION_PREFIX), or run with --force to drop and rebuild the "
            "collections with the new spec (deletes every stored vector)."
        )
        return "\n".join(lines)

    def _create_collections(self, spec: EmbeddingSpec, *, drop_existing: bool) -> None:
        backend = self._backend
        for name in (self.tracks_collection, self.artists_collection):
            if backend.collection_exists(name):
                if not drop_existing and backend.count(name) > 0:
                    raise StoreError(
                        f"collection {name} in {backend.description} holds points but no "
                        "embedding spec: it was not written by soundalike or its creation was "
                        "interrupted. Run with --force to rebuild it."
                    )
                backend.drop_collection(name)
        for name, indexes in (
            (self.tracks_collection, TRACK_INDEXES),
            (self.artists_collection, ARTIST_INDEXES),
        ):
            backend.create_collection(name, spec.dim)
            for field_name, kind in indexes.items():
                backend.create_index(name, field_name, kind)
        # Written last: a store without a spec reads as empty, so an interrupted creation
        # is redone rather than trusted.
        backend.write_metadata(self.tracks_collection, {SPEC_METADATA_KEY: spec.to_dict()})
        with self._spec_lock:
            self._spec, self._spec_loaded = spec, True
        self._invalidate_names()

    def declare_filterable(self, columns: Iterable[str]) -> None:
        """Adds keyword indexes for extra (manifest) columns that searches will filter on."""
        self._require_spec()
        for column in columns:
            self._backend.create_index(
                self.tracks_collection, self._filter_field(column), "keyword"
            )

    def _require_spec(self) -> EmbeddingSpec:
        spec = self.spec()
        if spec is None:
            raise StoreError(
                f"the store {self._backend.description} has no embedding spec yet: "
                "ensure_spec() must run before writing"
            )
        return spec

    def _ready(self) -> bool:
        return self.spec() is not None

    # --- tracks ------------------------------------------------------------------------

    def existing_track_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of `ids` already stored."""
        if not self._ready():
            return set()
        wanted = [i for i in dict.fromkeys(ids) if _is_uuid(i)]
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
        points = [self._track_point(t, spec) for t in tracks]
        for batch in _batches(points, UPSERT_BATCH):
            self._backend.upsert(self.tracks_collection, batch)

    def _track_point(self, track: Track, spec: EmbeddingSpec) -> StoredPoint:
        if not _is_uuid(track.track_id):
            raise InvalidRequest(f"track {track.track_id!r}: the id is not a UUID (use track_id())")
        if track.vector is None:
            raise InvalidRequest(f"track {track.track_id} ({track.path}): no vector to store")
        vector = _as_vector(track.vector, spec.dim, f"track {track.track_id} ({track.path})")
        payload: dict[str, Any] = {
            F_ARTIST: track.artist,
            F_ARTIST_KEY: track.artist_key,
            F_TITLE: track.title,
            F_ALBUM: track.album,
            F_GENRE: track.genre,
            F_YEAR: track.year,
            F_PATH: track.path,
            F_DURATION: track.duration_seconds,
            F_CONTENT_HASH: track.content_hash,
            F_EXTRA: dict(track.extra),
            F_SPEC: spec.to_dict(),
        }
        return StoredPoint(id=track.track_id, vector=vector, payload=payload)

    def get_track(self, track_id: str, *, with_vector: bool = True) -> Track | None:
        if not self._ready() or not _is_uuid(track_id):
            return None
        points = self._backend.retrieve(
            self.tracks_collection, [track_id], with_payload=True, with_vectors=with_vector
        )
        return _track_from(points[0]) if points else None

    def tracks_of_artist(self, artist_key: str, *, with_vectors: bool = False) -> list[Track]:
        """The artist's tracks, ordered by album, title, path."""
        if not self._ready():
            return []
        where = Where(equals={F_ARTIST_KEY: (artist_key,)})
        tracks = [
            _track_from(p)
            for p in self._backend.scroll(
                self.tracks_collection,
                where,
                with_vectors=with_vectors,
                fields=None,
                batch_size=SCROLL_BATCH,
            )
        ]
        tracks.sort(key=lambda t: (t.album or "", t.title or "", t.path or "", t.track_id))
        return tracks

    def delete_artist(self, artist_key: str) -> int:
        """Removes an artist's tracks and its artist point; returns the tracks deleted."""
        if not self._ready():
            return 0
        where = Where(equals={F_ARTIST_KEY: (artist_key,)})
        deleted = self._backend.count(self.tracks_collection, where)
        if deleted:
            self._backend.delete_where(self.tracks_collection, where)
        self._backend.delete_ids(self.artists_collection, [artist_point_id(artist_key)])
        self._invalidate_names()
        return deleted

    def count_tracks(self) -> int:
        return self._backend.count(self.tracks_collection) if self._ready() else 0

    # --- artists -----------------------------------------------------------------------

    def upsert_artists(self, artists: Sequence[Artist]) -> None:
        spec = self._require_spec()
        points = []
        for artist in artists:
            if artist.centroid is None:
                raise InvalidRequest(f"artist {artist.name!r}: no centroid to store")
            vector = _as_vector(artist.centroid, spec.dim, f"artist {artist.name!r}")
            payload = {
                F_ARTIST: artist.name,
                F_ARTIST_KEY: artist.artist_key,
                F_TRACK_COUNT: int(artist.track_count),
                F_GENRES: list(artist.genres),
            }
            points.append(StoredPoint(artist_point_id(artist.artist_key), vector, payload))
        for batch in _batches(points, UPSERT_BATCH):
            self._backend.upsert(self.artists_collection, batch)
        self._invalidate_names()

    def get_artist(self, artist_key: str, *, with_centroid: bool = False) -> Artist | None:
        if not self._ready():
            return None
        points = self._backend.retrieve(
            self.artists_collection,
            [artist_point_id(artist_key)],
            with_payload=True,
            with_vectors=with_centroid,
        )
        return _artist_from(points[0]) if points else None

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
                artist = _artist_from(point)
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

    def _name_index(self) -> _NameIndex:
        with self._names_lock:
            stale = self._backend.shared and (
                time.monotonic() - self._names_built_at > SHARED_NAME_INDEX_TTL_S
            )
            if self._names is None or stale:
                self._names = self._build_name_index()
                self._names_built_at = time.monotonic()
            return self._names

    def _build_name_index(self) -> _NameIndex:
        if not self._ready():
            return _NameIndex([])
        entries = [
            _NameEntry(
                key=str(p.payload[F_ARTIST_KEY]),
                name=str(p.payload.get(F_ARTIST) or p.payload[F_ARTIST_KEY]),
                track_count=int(p.payload.get(F_TRACK_COUNT) or 0),
            )
            for p in self._backend.scroll(
                self.artists_collection,
                None,
                with_vectors=False,
                fields=[F_ARTIST, F_ARTIST_KEY, F_TRACK_COUNT],
                batch_size=SCROLL_BATCH * 4,
            )
        ]
        return _NameIndex(entries)

    def _invalidate_names(self) -> None:
        with self._names_lock:
            self._names = None

    def artist_keys_in_tracks(self) -> set[str]:
        """Distinct artist keys present among the tracks (to repair stale centroids)."""
        if not self._ready():
            return set()
        return set(self.artist_track_counts())

    def artist_track_counts(self) -> dict[str, int]:
        """Stored tracks per artist key, counted from the tracks themselves (not the artists)."""
        if not self._ready():
            return {}
        counts = self._backend.value_counts(self.tracks_collection, F_ARTIST_KEY)
        return {str(key): int(count) for key, count in counts.items()}

    def recompute_centroids(self, artist_keys: Iterable[str]) -> int:
        """Rewrites each artist from its tracks (centroid, count, name, genres), or removes the
        artist when it has no tracks left. Returns how many artists were written or removed."""
        if not self._ready():
            return 0
        changed = 0
        for keys in _batches(list(dict.fromkeys(artist_keys)), CENTROID_KEY_BATCH):
            by_artist: dict[str, list[StoredPoint]] = defaultdict(list)
            for point in self._backend.scroll(
                self.tracks_collection,
                Where(equals={F_ARTIST_KEY: tuple(keys)}),
                with_vectors=True,
                fields=[F_ARTIST, F_ARTIST_KEY, F_GENRE],
                batch_size=SCROLL_BATCH,
            ):
                by_artist[str(point.payload[F_ARTIST_KEY])].append(point)
            artists = [_artist_of(key, points) for key, points in by_artist.items()]
            gone = [artist_point_id(k) for k in keys if k not in by_artist]
            if artists:
                self.upsert_artists(artists)
            if gone:
                self._backend.delete_ids(self.artists_collection, gone)
                self._invalidate_names()
            changed += len(artists) + len(gone)
        return changed

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
        query = _as_vector(vector, spec.dim, "query vector")
        excluded = frozenset(artist_point_id(k) for k in exclude_keys)
        if only_keys is None and min_tracks <= 1:
            # "Artists like X" excludes only X: asking for a few more unfiltered hits and
            # dropping X here is cheaper than a filtered HNSW search (p99 2.4 vs 6.3 ms at 100k).
            hits = self._search(
                self.artists_collection, query, limit=limit + len(excluded), where=None
            )
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
            hits = self._search(self.artists_collection, query, limit=limit, where=where)
        return [ArtistHit(artist=_artist_from(p), score=score) for p, score in hits]

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
        query = _as_vector(vector, spec.dim, "query vector")
        equals = self._filter_conditions(filters or {})
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
        hits = self._search(self.tracks_collection, query, limit=limit, where=where)
        return [
            TrackHit(track=_track_from(p if with_vectors else _without_vector(p)), score=score)
            for p, score in hits
        ]

    def _search(
        self, collection: str, query: list[float], *, limit: int, where: Where | None
    ) -> list[tuple[StoredPoint, float]]:
        return self._backend.search(
            collection,
            query,
            limit=limit,
            where=where,
            search_ef=self.search_ef,
            exact=self.exact_search,
        )

    def artist_keys_with(self, filters: Mapping[str, Any]) -> set[str]:
        """Keys of artists having at least one track that passes `filters`."""
        if not self._ready():
            return set()
        where = Where(equals=self._filter_conditions(filters))
        counts = self._backend.value_counts(self.tracks_collection, F_ARTIST_KEY, where)
        return {str(key) for key in counts}

    def _filter_conditions(self, filters: Mapping[str, Any]) -> dict[str, tuple[Scalar, ...]]:
        conditions: dict[str, tuple[Scalar, ...]] = {}
        for name, value in filters.items():
            target = self._filter_field(name)
            values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
            if not values:
                raise InvalidRequest(f"filter {name!r}: an empty list matches nothing")
            checked: list[Scalar] = []
            for item in values:
                if item is None or not isinstance(item, str | int | float | bool):
                    raise InvalidRequest(
                        f"filter {name!r}: {item!r} is not a string, number or boolean"
                    )
                if target == F_YEAR:
                    checked.append(_as_year(item))
                elif isinstance(item, str) and target.startswith(f"{F_EXTRA}.") and _is_int(item):
                    # Query strings carry every value as text; a JSONL column may hold numbers.
                    checked += [item, int(item)]
                else:
                    checked.append(item)
            conditions[target] = tuple(dict.fromkeys(checked))
        return conditions

    @staticmethod
    def _filter_field(name: str) -> str:
        if not name or name in NOT_FILTERABLE or name == F_ARTIST_KEY:
            raise InvalidRequest(f"cannot filter tracks on {name!r}")
        if name in DIRECT_FILTER_FIELDS:
            return name
        return f"{F_EXTRA}.{name}"

    # --- upkeep ------------------------------------------------------------------------

    def flush(self) -> None:
        self._backend.flush()

    def optimize(self) -> None:
        """Builds the vector indexes after bulk writes (Edge: HNSW in-process)."""
        self._backend.optimize()

    def ping(self) -> bool:
        return not self._closed and self._backend.ping()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.close()


# --- conversions -------------------------------------------------------------------------


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _as_year(value: Scalar) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"filter 'year': {value!r} is not a year")
    try:
        year = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"filter 'year': {value!r} is not a year") from None
    if isinstance(value, float) and value != year:
        raise InvalidRequest(f"filter 'year': {value!r} is not a whole year")
    return year


def _as_vector(vector: Sequence[float] | np.ndarray, dim: int, what: str) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dim:
        raise InvalidRequest(
            f"{what}: expected {dim} floats (the store's embedding dim), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidRequest(f"{what}: contains NaN or infinite values")
    if not array.any():
        raise InvalidRequest(f"{what}: is all zeros and has no direction")
    return array.tolist()


def _without_vector(point: StoredPoint) -> StoredPoint:
    return StoredPoint(point.id, None, point.payload)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _track_from(point: StoredPoint) -> Track:
    p = point.payload
    return Track(
        track_id=point.id,
        artist=str(p.get(F_ARTIST, "")),
        artist_key=str(p.get(F_ARTIST_KEY, "")),
        vector=point.vector,
        title=p.get(F_TITLE),
        album=p.get(F_ALBUM),
        genre=p.get(F_GENRE),
        year=_optional_int(p.get(F_YEAR)),
        path=p.get(F_PATH),
        duration_seconds=_optional_float(p.get(F_DURATION)),
        content_hash=p.get(F_CONTENT_HASH),
        extra=dict(p.get(F_EXTRA) or {}),
    )


def _artist_from(point: StoredPoint) -> Artist:
    p = point.payload
    return Artist(
        name=str(p.get(F_ARTIST, "")),
        artist_key=str(p.get(F_ARTIST_KEY, "")),
        track_count=int(p.get(F_TRACK_COUNT) or 0),
        centroid=point.vector,
        genres=list(p.get(F_GENRES) or []),
    )


def _artist_of(key: str, points: list[StoredPoint]) -> Artist:
    """An artist recomputed from its tracks' vectors and payloads."""
    vectors = np.array([p.vector for p in points], dtype=np.float32)
    try:
        centroid = artist_centroid(vectors)
    except ValueError as exc:
        raise StoreError(f"artist {key!r}: cannot compute its centroid: {exc}") from exc
    # The display name most of its tracks carry; ties go to the alphabetically first.
    names = Counter(str(p.payload.get(F_ARTIST) or key) for p in points)
    display = min(names, key=lambda n: (-names[n], n))
    genres = sorted({str(g) for p in points if (g := p.payload.get(F_GENRE))})
    return Artist(
        name=display,
        artist_key=key,
        track_count=len(points),
        centroid=centroid.tolist(),
        genres=genres,
    )
