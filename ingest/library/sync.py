"""One batch of library changes through the ingest pipeline's stages.

A batch is a root, the admissible files of some part of it (the whole root for a scan, the
changed paths for an event batch) and the *scope*: the folders and files the batch speaks for,
so a stored track inside the scope whose file was not listed is gone and is removed.

On top of `soundalike ingest`'s stages (identify, skip stored, decode, embed, write, retire
superseded), a library batch:
- keeps a moved or renamed file's track: same content and artist, same id, only its location
  is rewritten; to another artist (folders mode), the stored vector is reused, never re-embedded;
- removes the tracks whose files are gone (or now excluded), marking their artists' centroids
  pending first so a crash cannot leave them stale;
- recomputes only the affected artists (an artist with no tracks left disappears) and updates the
  neighbour lists for them.

Kill safety is the pipeline's: tracks are durable before they are counted, ids are content
based (a rerun skips them), pending centroids are repaired by the next batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from soundalike.core.types import Track
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.library.files import LibrarySource, is_within, stat_signature
from soundalike.ingest.pipeline import (
    Failure,
    PendingTrack,
    Writer,
    decode_embed_write,
    identify,
    retire_superseded,
    split_stored,
    stale_artists,
    to_track,
    update_neighbour_lists,
)
from soundalike.ingest.sources import Problem, SourceTrack
from soundalike.ingest.sources.base import displayable
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


class SyncProgress:
    """Callbacks the scheduler uses for its status; the defaults do nothing."""

    def planned(self, count: int) -> None:
        """`count` files will be decoded and embedded."""

    def finished(self, location: str, reason: str | None) -> None:
        """One planned file is done: stored (reason None) or failed."""


def sync_batch(
    store: Store,
    engine_for: Callable[[], VectorEngine],
    source: LibrarySource,
    scope: Iterable[str],
    *,
    problems: Iterable[Problem] = (),
    unchanged: Iterable[str] = (),
    settle_seconds: float = 0.0,
    workers: int = 2,
    full_scan: bool = False,
    progress: SyncProgress | None = None,
    stop: threading.Event | None = None,
) -> SyncResult:
    """Brings the store in line with `source.files` for everything inside `scope` (absolute
    folder or file locations). `engine_for` is called only when something must be embedded
    (the model loads then). `unchanged`: locations of files known to be stored as they are,
    left out of `source.files` but still present. `full_scan` also repairs centroids left
    stale by any earlier crash."""
    progress = progress or SyncProgress()
    stop = stop or threading.Event()
    result = SyncResult()
    result.listed.update(unchanged)
    result.failed += [Failure(p.location, p.reason) for p in problems]
    scope = [displayable(s) for s in scope]
    now = time.time()

    ready: list[Path] = []
    for path in source.files:
        result.listed.add(displayable(str(path)))
        signature = stat_signature(path)
        if signature is not None and now - signature[1] / 1e9 < settle_seconds:
            result.deferred.append(path)  # still being written: read it once it is quiet
        else:
            ready.append(path)
    source.files = ready

    listed: list[SourceTrack] = []
    for found in source.tracks():
        if isinstance(found, Problem):
            result.failed.append(Failure(found.location, found.reason))
        else:
            listed.append(found)
    pending, identify_failures = identify(source, listed, None)
    result.failed += identify_failures

    stored_tracks = store.track_summaries()
    by_id = {t.track_id: t for t in stored_tracks}
    by_hash = {t.content_hash: t for t in stored_tracks if t.content_hash}
    touched: set[str] = set()
    current: dict[str, str] = {}  # location -> the id its file has now

    if pending:
        store.ensure_spec(engine_for().spec)  # refuses a model that differs from the store's
    todo, skipped = split_stored(store, pending, force=False)
    result.skipped = len(skipped)
    for item in skipped:
        current[item.track.location] = item.track_id
        result.stored[item.track.location] = stat_signature(Path(item.track.source_id)) or (0, 0)
        was = by_id.get(item.track_id)
        if was is not None and was.path != item.track.location and not _exists(was.path):
            relocated = _relocated(store, item)
            if relocated is not None:
                store.upsert_tracks([relocated])
                result.moved.append(item.track.location)
                touched.add(item.artist_key)

    # Same content already stored under another artist (a file moved between artist folders):
    # its vector is reused, not re-embedded.
    to_embed: list[PendingTrack] = []
    reused: list[tuple[PendingTrack, Track]] = []
    for item in todo:
        donor = by_hash.get(item.identity)
        track = _reuse(store, item, donor) if donor is not None else None
        if track is None:
            to_embed.append(item)
        else:
            reused.append((item, track))
    progress.planned(len(reused) + len(to_embed))

    def durable(items: list[PendingTrack]) -> None:
        for item in items:
            current[item.track.location] = item.track_id
            result.ingested.append(item.track.location)
            signature = stat_signature(Path(item.track.source_id))
            result.stored[item.track.location] = signature or (0, 0)
            touched.add(item.artist_key)
            progress.finished(item.track.location, None)

    writer = Writer(store, durable)
    if reused:
        writer.write([item for item, _ in reused], [track for _, track in reused])
    result.stopped = _embed_and_write(
        source, to_embed, engine_for, writer, workers, result, progress, stop
    )
    writer.flush()
    if result.stopped:
        # Shutting down: what is written is durable; the next start's scan does the rest
        # (its centroid repair sees the artists whose track counts changed).
        return result

    # A retagged or edited file has a new id now: its old point is retired, not left behind.
    touched |= retire_superseded(store, current)
    kept_ids = set(current.values())
    protected = result.listed  # every admissible file, ready or not, still exists
    gone = [
        t
        for t in stored_tracks
        if t.path is not None
        and t.track_id not in kept_ids
        and t.path not in protected
        and any(is_within(t.path, s) for s in scope)
    ]
    if gone:
        losers = {t.artist_key for t in gone}
        store.mark_centroids_pending(losers)
        store.delete_tracks(t.track_id for t in gone)
        touched |= losers
        result.removed = sorted({t.path for t in gone if t.path is not None})

    to_recompute = touched | store.pending_centroids()
    if full_scan:
        every_artist = store.artist_keys_in_tracks() | set(store.artist_names())
        to_recompute |= stale_artists(store, every_artist)
    if to_recompute:
        result.artists_updated = store.recompute_centroids(sorted(to_recompute))
        store.flush()
        store.clear_centroids_pending(to_recompute)
        update_neighbour_lists(store, to_recompute, False)
        if store.writes_since_optimize() >= OPTIMIZE_AFTER_WRITES:
            store.optimize()
        store.artist_names()  # rebuild the name index here, not inside the next request
    return result


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
    return to_track(item, stored.vector, stored.duration_seconds)


def _embed_and_write(
    source: LibrarySource,
    todo: list[PendingTrack],
    engine_for: Callable[[], VectorEngine],
    writer: Writer,
    workers: int,
    result: SyncResult,
    progress: SyncProgress,
    stop: threading.Event,
) -> bool:
    """The pipeline's decode → embed → write loop over `todo`; True when `stop` cut it short."""
    if not todo:
        return False
    engine = engine_for()

    def fail(item: PendingTrack, reason: str) -> None:
        result.failed.append(Failure(item.track.location, reason))
        progress.finished(item.track.location, reason)

    return decode_embed_write(source, todo, engine, writer, fail, workers, stop)
