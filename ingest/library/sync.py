"""One batch of library changes through the one ingest flow (ingest/flow.py).

A batch is a root, the admissible files of some part of it (the whole root for a scan, the
changed paths for an event batch) and the *scope*: the folders and files the batch speaks for.
`LibrarySource` lists everything inside its scope, so the flow's shared tail removes a stored
track there whose file was not listed (its artists' centroids marked pending first), and it
leaves files still being written (settle time) for the next batch.

On top of the flow, a library batch adds one hook (`LibraryHooks.before_embed`):
- keeps a moved or renamed file's track: same content and artist, same id, only its location
  is rewritten; to another artist (folders mode), the stored vector is reused, never re-embedded.
Upkeep is incremental: only the affected artists are recomputed (an artist with no tracks left
disappears), and the vector index is rebuilt once enough writes accumulated.

Kill safety is the flow's: tracks are durable before they are counted, ids are content based
(a rerun skips them), pending centroids are repaired by the next batch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from soundalike.core.events import Event, EventStream, TrackFailed, TrackStored
from soundalike.core.types import Track
from soundalike.ingest.defaults import DEFAULT_WORKERS
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.flow import FlowHooks, IngestOptions, run
from soundalike.ingest.library.files import LibrarySource
from soundalike.ingest.stages import Failure, PendingTrack, to_track
from soundalike.search.store import Store

log = logging.getLogger("soundalike.library")

# Writes after which the vector indexes are rebuilt (Edge: HNSW); fewer new points are searched
# exactly in their small appendable segment, which costs queries nothing measurable. Counted
# across batches (`Store.writes_since_optimize`), not per batch: Qdrant Edge holds Python's
# GIL while it builds an index, so every query of the process waits for it (seconds at 100k
# points), and a small scan should never pay that.
OPTIMIZE_AFTER_WRITES = 2_000


@dataclass
class SyncResult:
    """What one batch did."""

    listed: set[str] = field(default_factory=set)  # locations of admissible audio files
    ingested: list[str] = field(default_factory=list)  # embedded, or given a stored vector
    moved: list[str] = field(default_factory=list)  # same track, new location
    skipped: int = 0  # already stored, unchanged
    removed: list[str] = field(default_factory=list)  # tracks deleted: their files are gone
    failed: list[Failure] = field(default_factory=list)
    deferred: list[Path] = field(default_factory=list)  # still being written: next batch
    stored: dict[str, tuple[int, int]] = field(default_factory=dict)  # location -> signature
    artists_updated: int = 0
    stopped: bool = False


def sync_batch(
    store: Store,
    engine_for: Callable[[], VectorEngine],
    source: LibrarySource,
    events: EventStream,
    *,
    workers: int = DEFAULT_WORKERS,
    full_scan: bool = False,
    stop: threading.Event | None = None,
) -> SyncResult:
    """Brings the store in line with `source` (its files, scope, problems, settle time).
    `engine_for` is called only when something must be embedded (the model loads then).
    `full_scan` also repairs centroids left stale by any earlier crash. The batch's tracks are
    emitted on `events` with origin "library"; the result is gathered from them."""
    result = SyncResult()
    hooks = LibraryHooks(result)

    def gather(event: Event) -> None:
        # One library worker thread runs batches: what it hears with this origin is this batch.
        if isinstance(event, TrackStored) and event.origin == "library":
            result.stored[event.location] = source.signature(event.location)
            if event.outcome == "ingested":
                result.ingested.append(event.location)
            else:
                result.skipped += 1
        elif isinstance(event, TrackFailed) and event.origin == "library":
            result.failed.append(Failure(event.location, event.reason, event.reason_class))

    options = IngestOptions(
        workers=workers,
        allow_empty=True,
        repair_stale=full_scan,
        optimize_after_writes=OPTIMIZE_AFTER_WRITES,  # read per batch: tests lower it
    )
    unsubscribe = events.subscribe(gather)
    try:
        outcome = run(
            source,
            store=store,
            engine=engine_for,
            options=options,
            events=events,
            origin="library",
            hooks=hooks,
            stop=stop,
        )
    finally:
        unsubscribe()
    result.listed = set(source.present)
    result.deferred = list(source.deferred)
    result.removed = outcome.removed
    result.artists_updated = outcome.artists_updated
    result.stopped = outcome.stopped
    return result


class LibraryHooks(FlowHooks):
    """The live library's step before embedding: moved files keep their track, and the same
    content under another artist reuses its stored vector."""

    def __init__(self, result: SyncResult) -> None:
        self.result = result

    def before_embed(
        self, store: Store, skipped: list[PendingTrack], todo: list[PendingTrack]
    ) -> tuple[list[tuple[PendingTrack, Track]], list[PendingTrack], set[str]]:
        stored_tracks = store.track_summaries()
        by_id = {t.track_id: t for t in stored_tracks}
        by_hash = {t.content_hash: t for t in stored_tracks if t.content_hash}
        touched: set[str] = set()
        for item in skipped:
            was = by_id.get(item.track_id)
            if was is not None and was.path != item.track.location and not _exists(was.path):
                relocated = _relocated(store, item)
                if relocated is not None:
                    store.upsert_tracks([relocated])
                    self.result.moved.append(item.track.location)
                    touched.add(item.artist_key)
        # Same content already stored under another artist (a file moved between artist
        # folders): its vector is reused, not re-embedded.
        to_embed: list[PendingTrack] = []
        reused: list[tuple[PendingTrack, Track]] = []
        for item in todo:
            donor = by_hash.get(item.identity)
            track = _reuse(store, item, donor) if donor is not None else None
            if track is None:
                to_embed.append(item)
            else:
                reused.append((item, track))
        return reused, to_embed, touched


def _exists(path: str | None) -> bool:
    return path is not None and os.path.lexists(path)


def _relocated(store: Store, item: PendingTrack) -> Track | None:
    """The stored track with the listing's location and metadata (same id, same vector)."""
    stored = store.get_track(item.track_id, with_vector=True)
    if stored is None:
        return None
    listed = item.track
    stored.path = listed.location
    stored.artist = listed.artist
    stored.title = listed.title or Path(listed.location).stem
    stored.album = listed.album
    stored.genre = listed.genre
    stored.year = listed.year
    return stored


def _reuse(store: Store, item: PendingTrack, donor: Track) -> Track | None:
    """A new track (new id, artist and location) carrying `donor`'s stored vector."""
    stored = store.get_track(donor.track_id, with_vector=True)
    if stored is None or stored.vector is None:
        return None
    return to_track(item, stored.vector, stored.duration_seconds, stored.precision)
