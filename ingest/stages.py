"""The ingest flow's stages, one function each: discover → identify → skip stored → decode →
embed → write → retire. `ingest/flow.py` chains them (for `soundalike ingest`, the live library
and music servers alike); the benchmarks call them one by one.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soundalike.core.artist_names import artist_key
from soundalike.core.errors import (
    AudioError,
    AudioTooShort,
    InvalidRequest,
    SilentAudio,
    UndecodableAudio,
)
from soundalike.core.events import FailureClass
from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.ingest.decode_pool import DecodePool
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.excerpt import DecodedAudio
from soundalike.ingest.sources import CatalogueSource, Problem, SourceTrack
from soundalike.search.store import Store

# A flush (fsync of the store's files) costs ~0.2 s on a small disk: flushing per batch made
# the store the bottleneck of a fast GPU. Per interval, its cost is bounded whatever the rate.
FLUSH_INTERVAL_SECONDS = 2.0
# How many decoded tracks may wait for the embedder per decoding worker: enough to keep the
# model busy, small enough that memory does not grow with the catalogue.
IN_FLIGHT_PER_WORKER = 2
# A decode that takes longer is killed and reported (a hung codec never hangs the run); a
# 30 s excerpt of a long file decodes in well under a second.
DECODE_TIMEOUT_SECONDS = 120.0
# Embedded batches that may wait for the writer thread: enough to ride out a slow upsert or
# a flush, few enough that memory stays flat when the store is slower than the model.
WRITE_QUEUE_BATCHES = 8


@dataclass(frozen=True)
class Shard:
    """`--shard i/N`: this worker owns the artists whose key hashes to i modulo N."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise InvalidRequest(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise InvalidRequest(f"--shard {text}: need N >= 1 and 0 <= i < N")
        return shard

    def owns(self, key: str) -> bool:
        # A stable hash (not Python's salted hash()) so every worker agrees on the partition.
        digest = hashlib.sha1(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass
class Failure:
    path: str
    reason: str
    # The reason as a small closed set (core/events.py): what a metric may count by.
    reason_class: FailureClass = "other"


def failure_class(error: AudioError) -> FailureClass:
    """What kind of failure a decode's AudioError is."""
    if isinstance(error, AudioTooShort):
        return "too_short"
    if isinstance(error, SilentAudio):
        return "silent"
    if isinstance(error, UndecodableAudio):
        return "undecodable"
    return "unreadable"  # a download that failed, a file gone before it was decoded


@dataclass
class PendingTrack:
    """A source's track with its identity, waiting to be decoded and embedded."""

    track: SourceTrack
    artist_key: str
    identity: str
    track_id: str


# --- stages -------------------------------------------------------------------------------


def discover(source: CatalogueSource) -> tuple[list[SourceTrack], list[Failure]]:
    """The source's tracks, and what it found that cannot become a track."""
    tracks: list[SourceTrack] = []
    failures: list[Failure] = []
    for found in source.tracks():
        if isinstance(found, Problem):
            failures.append(Failure(found.location, found.reason, "listing"))
        else:
            tracks.append(found)
    return tracks, failures


def identify(
    source: CatalogueSource, tracks: Iterable[SourceTrack], shard: Shard | None
) -> tuple[list[PendingTrack], list[Failure]]:
    """Give each track its id (the source's identity + artist key); keep this shard's artists."""
    pending: list[PendingTrack] = []
    failures: list[Failure] = []
    for track in tracks:
        try:
            key = artist_key(track.artist)
        except InvalidRequest:
            failures.append(Failure(track.location, "empty artist name", "metadata"))
            continue
        if shard is not None and not shard.owns(key):
            continue
        try:
            identity = source.identity(track)
        except OSError as error:
            reason = f"unreadable: {error.strerror or error}"
            failures.append(Failure(track.location, reason, "unreadable"))
            continue
        pending.append(PendingTrack(track, key, identity, track_id(identity, key)))
    return pending, failures


def split_stored(
    store: Store, pending: list[PendingTrack], force: bool
) -> tuple[list[PendingTrack], list[PendingTrack]]:
    """(to embed, already stored). Duplicate files of one artist are embedded once."""
    stored = set() if force else store.existing_track_ids(p.track_id for p in pending)
    todo: list[PendingTrack] = []
    skipped: list[PendingTrack] = []
    seen: set[str] = set()
    for item in pending:
        if item.track_id in stored or item.track_id in seen:
            skipped.append(item)
        else:
            seen.add(item.track_id)
            todo.append(item)
    return todo, skipped


def decode(
    source: CatalogueSource,
    todo: list[PendingTrack],
    decoding: Decoding,
    sample_rate: int,
    workers: int,
) -> Generator[tuple[PendingTrack, DecodedAudio | AudioError], None, None]:
    """Decode in worker processes, yielding in completion order with bounded look-ahead. A file
    that crashes, hangs or breaks its decoder fails alone (see ingest/decode_pool.py)."""
    with DecodePool(
        workers, timeout_s=DECODE_TIMEOUT_SECONDS, max_in_flight=workers * IN_FLIGHT_PER_WORKER
    ) as pool:
        yield from pool.decode_many(
            todo, lambda item: source.audio_file(item.track), decoding, sample_rate
        )


def changed_since_identified(source: CatalogueSource, item: PendingTrack) -> str | None:
    """Why the decoded audio may not be what the track's id was computed from (the file was
    rewritten between the two reads), or None. Such a track is left for the next run rather
    than stored under an id that does not match its vector."""
    try:
        current = source.identity(item.track)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if current != item.identity:
        return "the file changed while it was being ingested; the next run picks up the new one"
    return None


def embed_batch(
    engine: VectorEngine, batch: list[tuple[PendingTrack, DecodedAudio]]
) -> tuple[list[tuple[PendingTrack, Track]], list[tuple[PendingTrack, str]]]:
    """(embedded tracks, failures with reasons). The batch is embedded at once; when that fails
    (one track's non-finite vector, say), each track is retried alone so only the culprit fails."""
    try:
        vectors = engine.embed([audio for _, audio in batch])
    except Exception as error:  # noqa: BLE001 - narrowed to the failing track, the run goes on
        if len(batch) == 1:
            return [], [(batch[0][0], f"embedding failed: {error}")]
        embedded: list[tuple[PendingTrack, Track]] = []
        failed: list[tuple[PendingTrack, str]] = []
        for pair in batch:
            done, lost = embed_batch(engine, [pair])
            embedded += done
            failed += lost
        return embedded, failed
    pairs = zip(batch, vectors, strict=True)
    precision = engine.precision
    return [
        (item, to_track(item, vector, audio.duration_seconds, precision))
        for (item, audio), vector in pairs
    ], []


def to_track(
    item: PendingTrack,
    vector: np.ndarray | list[float],
    duration_seconds: float | None,
    precision: str | None,
) -> Track:
    """The track to store for a listed file and its vector (embedded now, or reused from a
    stored copy of the same audio), with the precision that made the vector."""
    listed = item.track
    return Track(
        track_id=item.track_id,
        artist=listed.artist,
        artist_key=item.artist_key,
        vector=np.asarray(vector, dtype=np.float32).tolist(),
        title=listed.title or Path(listed.location).stem,
        album=listed.album,
        genre=listed.genre,
        year=listed.year,
        path=listed.location,
        duration_seconds=None if duration_seconds is None else round(duration_seconds, 3),
        content_hash=item.identity,
        extra=dict(listed.extra),
        item_id=listed.item_id,
        precision=precision,
    )


class Writer:
    """The write stage: upserts each batch at once, makes them durable at most every
    `flush_interval` seconds, and only then hands the tracks to `on_durable` (the report and the
    summary count them), so what a run reports as ingested survives a crash."""

    def __init__(
        self,
        store: Store,
        on_durable: Callable[[list[PendingTrack]], None],
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.on_durable = on_durable
        self.flush_interval = flush_interval
        self._pending: list[PendingTrack] = []
        self._last_flush = time.monotonic()

    def write(self, items: list[PendingTrack], tracks: list[Track]) -> None:
        self.store.upsert_tracks(tracks)
        self._pending.extend(items)
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self.store.flush()
        self._last_flush = time.monotonic()
        durable, self._pending = self._pending, []
        self.on_durable(durable)


# What the writer thread hands back to the flow's thread: tracks made durable, or the seconds
# one write took. The flow emits the events itself, so sinks keep seeing one thread.
WriteReport = tuple[str, list[PendingTrack] | float]  # ("durable", tracks) | ("write", s)


class WriteBehind:
    """A `Writer` on its own thread: `submit` queues a batch (blocking only when
    WRITE_QUEUE_BATCHES wait), so upserts and flushes never stall the model. The writer's
    `on_durable` runs on that thread and must only hand the tracks over; `reports()` gives the
    flow, on its own thread, what became durable and how long writes took. A write that fails
    ends the thread; the error is raised by the next `submit` or by `close`."""

    def __init__(self, writer: Writer, reports: queue.SimpleQueue[WriteReport]) -> None:
        self.writer = writer
        self._reports = reports
        # None: no more batches (flush and end).
        self._queue: queue.Queue[tuple[list[PendingTrack], list[Track]] | None] = queue.Queue(
            maxsize=WRITE_QUEUE_BATCHES
        )
        self._error: BaseException | None = None
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soundalike-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[PendingTrack], tracks: list[Track]) -> None:
        self._raise_if_failed()
        while True:  # a writer that died while we wait must not leave us blocked forever
            try:
                self._queue.put((items, tracks), timeout=0.5)
                return
            except queue.Full:
                self._raise_if_failed()

    def close(self, *, abandon: bool = False) -> None:
        """Waits until every queued batch is written and flushed (durable), then raises the
        writer's error, if any. `abandon`: the run is failing anyway; what is queued is dropped
        and nothing more is flushed (unflushed tracks were never reported, so none is lost from
        the count: the next run embeds them again)."""
        if abandon:
            self._abandon.set()
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while True:
                work = self._queue.get()
                if self._abandon.is_set():
                    return
                if work is None:
                    started = time.perf_counter()
                    self.writer.flush()
                    self._reports.put(("write", time.perf_counter() - started))
                    return
                items, tracks = work
                started = time.perf_counter()
                self.writer.write(items, tracks)
                self._reports.put(("write", time.perf_counter() - started))
        except BaseException as error:  # noqa: BLE001 - handed to the flow's thread, raised there
            self._error = error
            # Unblock a producer waiting on a full queue: it sees the error on its next try.
            while not self._queue.empty():
                self._queue.get_nowait()


def retire_superseded(store: Store, current_ids: dict[str, str]) -> set[str]:
    """Deletes stored tracks of these locations whose id is no longer the location's current
    one (the file was retagged to another artist, or its audio changed). Returns the artists
    that lost a track, whose centroids need recomputing."""
    superseded = [
        track
        for track in store.tracks_at(current_ids)
        if track.path is not None and current_ids.get(track.path) != track.track_id
    ]
    losers = {track.artist_key for track in superseded}
    # Noted first: after the delete the artist's track count looks right again, so a crash
    # before its recompute would otherwise leave the old centroid for good.
    store.mark_centroids_pending(losers)
    store.delete_tracks(track.track_id for track in superseded)
    return losers


def retire_missing(
    store: Store, source: CatalogueSource, current_ids: Iterable[str], shard: Shard | None
) -> tuple[set[str], list[str]]:
    """For a source that lists everything it owns (a music server: `lists_everything`),
    deletes the stored tracks it no longer lists; returns their artists, whose centroids need
    recomputing, and the removed tracks' locations. Folders and manifests are left alone: a
    manifest lists a subset of its folder, and a folder of an unmounted disk lists nothing; the
    live library's batch lists everything inside its scope."""
    if not source.lists_everything:
        return set(), []
    stored = [t for t in store.track_summaries() if t.path is not None]
    gone = source.missing(t.path for t in stored if t.path is not None)
    keep = set(current_ids)
    doomed = [
        t
        for t in stored
        if t.path in gone and t.track_id not in keep and (shard is None or shard.owns(t.artist_key))
    ]
    losers = {t.artist_key for t in doomed}
    store.mark_centroids_pending(losers)  # before the delete, as in retire_superseded
    store.delete_tracks(t.track_id for t in doomed)
    return losers, sorted({t.path for t in doomed if t.path is not None})


def stale_artists(store: Store, artist_keys: set[str]) -> set[str]:
    """Artists whose centroid does not reflect their stored tracks (left by an interrupted run)."""
    track_counts = store.artist_track_counts()
    stored_artists = store.get_artists(artist_keys)
    return {
        key
        for key in artist_keys
        if (stored_artists[key].track_count if key in stored_artists else 0)
        != track_counts.get(key, 0)
    }
