"""The two collections and the embedding spec stored with them: created once, never mixed,
re-read so that a spec written by another process is seen. Also the store-wide metadata kept
with them (the centroids pending a recompute, what was written to media servers). A part of
`Store`, which every other part asks whether the store is ready (holds a spec)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from soundalike.core.errors import InvalidRequest, SpecMismatch, StoreError
from soundalike.core.types import EmbeddingSpec
from soundalike.search.backend import Backend
from soundalike.search.filters import filter_field
from soundalike.search.schema import (
    ARTIST_INDEXES,
    MEDIA_SERVER_RECORDS_KEY,
    PENDING_CENTROIDS_KEY,
    SPEC_METADATA_KEY,
    TRACK_INDEXES,
    CollectionNames,
)

# How long a known embedding spec is trusted before it is read again, so that a rebuild with
# another spec by another process is noticed within seconds. An absent spec is never trusted.
SPEC_RECHECK_S = 2.0


class Collections:
    """The `tracks` and `artists` collections of a store and their embedding spec."""

    def __init__(
        self,
        backend: Backend,
        names: CollectionNames,
        *,
        quantize_tracks: bool,
        spec_recheck_seconds: float = SPEC_RECHECK_S,
        spec_changed: Callable[[], None],
        dropped: Callable[[], None],
    ) -> None:
        """`spec_changed`: called when the spec seen changes (what was read of the artists
        belongs to other data); `dropped`: after both collections were dropped."""
        self._backend = backend
        self.tracks_collection, self.artists_collection = names
        self._quantize_tracks = quantize_tracks
        self._spec_recheck_seconds = spec_recheck_seconds
        self._spec_changed = spec_changed
        self._dropped = dropped
        # (spec, when it was read); one attribute so that lock-free readers see a pair that
        # belongs together. None: no spec seen yet, so the next call reads again.
        self._known_spec: tuple[EmbeddingSpec, float] | None = None
        self._spec_lock = threading.Lock()
        self._records_lock = threading.Lock()

    def known_spec(self) -> EmbeddingSpec | None:
        """The spec last read, without reading again (never waits for the spec lock)."""
        known = self._known_spec
        return known[0] if known is not None else None

    def spec(self) -> EmbeddingSpec | None:
        """The embedding spec of the stored vectors; None on an empty store.

        Called on every request, so a known spec is served from memory; but an empty store
        looks again on every call (data another process writes later is seen at once) and a
        known spec is read again after `spec_recheck_seconds` (a rebuild with another spec
        is seen within seconds)."""
        known = self._known_spec
        if known is not None and time.monotonic() - known[1] < self._spec_recheck_seconds:
            return known[0]
        with self._spec_lock:
            known = self._known_spec
            if known is not None and time.monotonic() - known[1] < self._spec_recheck_seconds:
                return known[0]
            current = self._read_spec()
            changed = self._remember_spec(current)
        if changed:
            # New or rebuilt collections: the names listed before belong to other data.
            # (Outside the spec lock: building the names reads the spec, so never nest them.)
            self._spec_changed()
        return current

    def _remember_spec(self, spec: EmbeddingSpec | None) -> bool:
        """Records the spec just read or written; True when it differs from the last one.
        Caller holds `_spec_lock`."""
        previous = self._known_spec[0] if self._known_spec is not None else None
        self._known_spec = (spec, time.monotonic()) if spec is not None else None
        return spec != previous

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

        Several processes may call this at once on one server (shard workers starting
        together): collections are created when absent and whoever comes second accepts
        them. Nothing is dropped except with force=True, which drops both collections and
        recreates them for `spec`.
        """
        if spec.dim <= 0:
            raise InvalidRequest(f"embedding spec dim must be positive, got {spec.dim}")
        if force:
            for name in (self.tracks_collection, self.artists_collection):
                if self._backend.collection_exists(name):
                    self._backend.drop_collection(name)
            self._dropped()
            self._create_collections(spec)
        else:
            # Decided on what is stored now, not on what this Store saw a moment ago.
            stored = self._read_spec()
            if stored is None:
                self._create_collections(spec)
            else:
                self._check_same_spec(stored, spec)
        with self._spec_lock:
            self._remember_spec(spec)
        # Even for the same spec: a forced rebuild or a fresh creation changed the artists.
        self._spec_changed()

    def _check_same_spec(self, stored: EmbeddingSpec, requested: EmbeddingSpec) -> None:
        differences = stored.differences(requested)
        if not differences:
            return
        lines = [
            f"the store {self._backend.description} ({self.tracks_collection}) holds vectors "
            "of another embedding spec; a collection never mixes specs:"
        ]
        lines += [
            f"  {name}: stored {was!r}, requested {asked!r}"
            for name, (was, asked) in differences.items()
        ]
        lines.append(
            "To proceed: use a new data dir (SOUNDALIKE_DATA_DIR) or collection prefix "
            "(SOUNDALIKE_COLLECTION_PREFIX), or run with --force to drop and rebuild the "
            "collections with the new spec (deletes every stored vector)."
        )
        raise SpecMismatch("\n".join(lines))

    def _create_collections(self, spec: EmbeddingSpec) -> None:
        backend = self._backend
        for name, indexes, quantized in (
            (self.tracks_collection, TRACK_INDEXES, self._quantize_tracks),
            (self.artists_collection, ARTIST_INDEXES, False),
        ):
            if not backend.create_collection(name, spec.dim, quantized=quantized):
                # There already, from an interrupted creation or a concurrent one: usable
                # as it is when its vectors have the spec's size.
                size = backend.vector_size(name)
                if size != spec.dim:
                    raise StoreError(
                        f"collection {name} in {backend.description} holds {size}-dim "
                        f"vectors, the embedding spec asks for {spec.dim}: use another "
                        "collection prefix (SOUNDALIKE_COLLECTION_PREFIX) or run with --force "
                        "to rebuild it"
                    )
            for field_name, kind in indexes.items():
                backend.create_index(name, field_name, kind)
        self._write_spec(spec)

    def _write_spec(self, spec: EmbeddingSpec) -> None:
        """Stores the spec, written last: a store without a spec reads as empty, so an
        interrupted creation is completed by the next run rather than trusted."""
        # Counted before the spec is read: a concurrent creator writes its spec before any
        # point, so points here with no spec after them are not a concurrent creator's.
        holds_points = any(
            self._backend.count(name) > 0
            for name in (self.tracks_collection, self.artists_collection)
        )
        stored = self._read_spec()
        if stored is None:
            if holds_points:
                raise StoreError(
                    f"the store {self._backend.description} ({self.tracks_collection}) holds "
                    "points but no embedding spec: it was not written by soundalike or its "
                    "creation was interrupted. Run with --force to rebuild it."
                )
            self._backend.write_metadata(
                self.tracks_collection, {SPEC_METADATA_KEY: spec.to_dict()}
            )
            # Read back: of two creators writing different specs at once, the one whose spec
            # was overwritten learns it here instead of writing mismatched vectors.
            stored = self._read_spec()
        if stored is None:
            raise StoreError(
                f"the embedding spec written to {self._backend.description} cannot be read back"
            )
        self._check_same_spec(stored, spec)

    def mark_centroids_pending(self, artist_keys: Iterable[str]) -> None:
        """Durably notes artists whose centroids must be recomputed (survives a crash)."""
        keys = set(artist_keys)
        if keys and self.ready():
            self._update_pending(lambda pending: pending | keys)

    def pending_centroids(self) -> set[str]:
        """Artists noted by `mark_centroids_pending` and not cleared since."""
        if not self.ready():
            return set()
        metadata = self._backend.read_metadata(self.tracks_collection)
        return {str(key) for key in metadata.get(PENDING_CENTROIDS_KEY) or []}

    def clear_centroids_pending(self, artist_keys: Iterable[str]) -> None:
        """Forgets artists whose recomputed centroids are now durable."""
        keys = set(artist_keys)
        if keys and self.ready() and self.pending_centroids() & keys:
            self._update_pending(lambda pending: pending - keys)

    def _update_pending(self, change: Callable[[set[str]], set[str]]) -> None:
        metadata = self._backend.read_metadata(self.tracks_collection)
        pending = change({str(key) for key in metadata.get(PENDING_CENTROIDS_KEY) or []})
        # Merged, not rewritten: other keys (the catalogue version) may change meanwhile.
        self._backend.update_metadata(
            self.tracks_collection, {PENDING_CENTROIDS_KEY: sorted(pending)}
        )

    def media_server_record(self, owner: str) -> dict[str, Any]:
        """What soundalike noted about one media-server user (`update_media_server_record`);
        {} when nothing was noted or the store is empty."""
        if not self.ready():
            return {}
        records = self._backend.read_metadata(self.tracks_collection).get(MEDIA_SERVER_RECORDS_KEY)
        record = records.get(owner) if isinstance(records, dict) else None
        return dict(record) if isinstance(record, dict) else {}

    def update_media_server_record(
        self, owner: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Durably replaces the note about one media-server user with `change(current note)`
        (JSON-able values), read and written under one lock: two writers in this process (a
        served refresh and a request) never lose each other's changes. Returns the new note."""
        self.require_spec()
        with self._records_lock:
            stored = self._backend.read_metadata(self.tracks_collection).get(
                MEDIA_SERVER_RECORDS_KEY
            )
            records = dict(stored) if isinstance(stored, dict) else {}
            current = records.get(owner)
            records[owner] = change(dict(current) if isinstance(current, dict) else {})
            # Merged into the metadata: the spec and the other notes stay as they are.
            self._backend.update_metadata(
                self.tracks_collection, {MEDIA_SERVER_RECORDS_KEY: records}
            )
            return dict(records[owner])

    def declare_filterable(self, columns: Iterable[str]) -> None:
        """Adds keyword indexes for extra (manifest) columns that searches will filter on."""
        self.require_spec()
        for column in columns:
            self._backend.create_index(self.tracks_collection, filter_field(column), "keyword")

    def require_spec(self) -> EmbeddingSpec:
        spec = self.spec()
        if spec is None:
            raise StoreError(
                f"the store {self._backend.description} has no embedding spec yet: "
                "ensure_spec() must run before writing"
            )
        return spec

    def ready(self) -> bool:
        return self.spec() is not None
