"""The one ingest flow: `soundalike ingest`, the live library and music servers all run it.

discover → identify → skip stored → [hooks: reuse stored vectors] → decode → embed → write, then
one shared tail: retire superseded → retire removed → centroids → neighbour lists → optimize.
What a run reports is not built here: the flow emits events (core/events.py) and sinks
(ingest/sinks.py, the library's status, metrics) listen. Decoding runs in a pool of processes
feeding the embedder through a bounded window of in-flight work, and the store is written on a
writer thread behind a bounded queue (stages.WriteBehind), so the model never waits for the
store and host memory stays flat whatever the catalogue size.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from soundalike.core.errors import AudioError, InvalidRequest
from soundalike.core.events import (
    NO_EVENTS,
    EventStream,
    FailureClass,
    IngestOrigin,
    Stage,
    StageTimed,
    TrackFailed,
    TracksPlanned,
    TrackStored,
)
from soundalike.core.types import Track
from soundalike.ingest.defaults import DEFAULT_WORKERS
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.excerpt import DecodedAudio, ExcerptRead
from soundalike.ingest.sources import CatalogueSource
from soundalike.ingest.stages import (
    PendingTrack,
    Shard,
    WriteBehind,
    Writer,
    WriteReport,
    changed_since_identified,
    decode,
    discover,
    embed_batch,
    failure_class,
    identify,
    retire_missing,
    retire_superseded,
    split_stored,
    stale_artists,
)
from soundalike.search.store import Store


@dataclass(frozen=True)
class IngestOptions:
    """How a run goes (what is embedded, and how, is the engine's decoding and model)."""

    workers: int = DEFAULT_WORKERS
    force: bool = False
    shard: Shard | None = None
    rebuild_centroids: bool = False
    # Manifest columns that searches filter on: given payload indexes when the run starts.
    filterable_columns: tuple[str, ...] = ()
    # The live library's batches: an empty listing is a batch of nothing (not a mistake), and
    # the model loads only when something is to be embedded.
    allow_empty: bool = False
    # Look for centroids left stale by any earlier crash (every artist: costs a count per
    # artist); a library event batch only repairs what is pending.
    repair_stale: bool = True
    # None: upkeep and optimize after every run (the CLI). A number: upkeep only when artists
    # changed, and the vector index rebuilt once that many writes accumulated (Qdrant Edge
    # holds the interpreter while it builds: a small library batch must not pay for it).
    optimize_after_writes: int | None = None


@dataclass
class FlowOutcome:
    """What the store side of a run did (the tracks' fate travels as events)."""

    artists_updated: int = 0
    removed: list[str] = field(default_factory=list)  # locations of tracks deleted
    stopped: bool = False
    seconds: float = 0.0


class FlowHooks:
    """Steps a caller adds to the flow; the defaults add nothing (the live library's:
    ingest/library/sync.py)."""

    def before_embed(
        self, store: Store, skipped: list[PendingTrack], todo: list[PendingTrack]
    ) -> tuple[list[tuple[PendingTrack, Track]], list[PendingTrack], set[str]]:
        """(tracks given a stored vector instead of being embedded, tracks left to embed,
        artists touched by changes made here)."""
        return [], todo, set()


NO_HOOKS = FlowHooks()


class _Emitter:
    """The flow's events for one origin."""

    def __init__(self, events: EventStream, origin: IngestOrigin) -> None:
        self.events = events
        self.origin = origin

    def stored(self, item: PendingTrack, outcome: str = "ingested") -> None:
        self.events.emit(
            TrackStored(
                item.track.location,
                item.track_id,
                item.track.artist,
                "skipped" if outcome == "skipped" else "ingested",
                self.origin,
            )
        )

    def failed(self, item: PendingTrack, reason: str, reason_class: FailureClass) -> None:
        self.events.emit(
            TrackFailed(
                item.track.location,
                reason,
                reason_class,
                item.track_id,
                item.track.artist,
                self.origin,
            )
        )

    def timed(self, stage: Stage, started: float, windows: int = 0) -> None:
        seconds = time.perf_counter() - started
        self.events.emit(StageTimed(stage, seconds, windows, self.origin))


def run(
    source: CatalogueSource,
    *,
    store: Store,
    engine: Callable[[], VectorEngine],
    options: IngestOptions,
    events: EventStream = NO_EVENTS,
    origin: IngestOrigin = "cli",
    hooks: FlowHooks = NO_HOOKS,
    stop: threading.Event | None = None,
) -> FlowOutcome:
    """Brings the store in line with `source`. `engine` is called when the store's spec is
    checked or something must be embedded (a model loads then). Bad files are reported as
    events, never fatal. A set `stop` ends the run after the current file (what is written is
    durable; the tail is left to the next run)."""
    started = time.monotonic()
    emit = _Emitter(events, origin)
    outcome = FlowOutcome()
    listed, failures = discover(source)
    if not listed and not failures and not options.allow_empty:
        raise InvalidRequest(f"no audio files found in {source.description}")
    checked = False

    def check_spec() -> None:
        nonlocal checked
        if not checked:
            store.ensure_spec(engine().spec, force=options.force)  # refuses another model
            if options.filterable_columns:
                store.declare_filterable(options.filterable_columns)
            checked = True

    if not options.allow_empty:
        check_spec()
    pending, identify_failures = identify(source, listed, options.shard)
    for failure in failures + identify_failures:
        events.emit(TrackFailed(failure.path, failure.reason, failure.reason_class, origin=origin))
    if pending:
        check_spec()
    todo, skipped = split_stored(store, pending, options.force)
    current: dict[str, str] = {}  # location -> the id its file has now
    for item in skipped:
        current[item.track.location] = item.track_id
        emit.stored(item, "skipped")
    reused, to_embed, touched = hooks.before_embed(store, skipped, todo)
    events.emit(TracksPlanned(len(reused) + len(to_embed), origin))

    # The store is written on its own thread (stages.WriteBehind) while the model embeds the
    # next batch; what became durable comes back here and is reported on this thread, so every
    # event of a run is still emitted by the thread that runs it.
    reports: queue.SimpleQueue[WriteReport] = queue.SimpleQueue()

    def report_written() -> None:
        while True:
            try:
                _, value = reports.get_nowait()
            except queue.Empty:
                return
            if isinstance(value, float):
                events.emit(StageTimed("write", value, 0, origin))
                continue
            for item in value:
                current[item.track.location] = item.track_id
                touched.add(item.artist_key)
                emit.stored(item)

    writer = WriteBehind(Writer(store, lambda items: reports.put(("durable", items))), reports)
    try:
        if reused:
            writer.submit([item for item, _ in reused], [track for _, track in reused])
        if to_embed:
            outcome.stopped = decode_embed_write(
                source, to_embed, engine(), writer, emit, options.workers, stop, report_written
            )
    except BaseException:
        writer.close(abandon=True)  # the run fails with this error, not the writer's
        report_written()
        raise
    try:
        writer.close()  # everything written and flushed: durable, and only now reported
    finally:
        report_written()
    if not outcome.stopped:
        # A retagged or edited file has a new id now: its old point is retired, not left behind.
        touched |= retire_superseded(store, current)
        upkeep(store, source, current, touched, options, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


def upkeep(
    store: Store,
    source: CatalogueSource,
    current: dict[str, str],
    touched: set[str],
    options: IngestOptions,
    outcome: FlowOutcome,
) -> None:
    """The tail every run shares: retire what the source no longer has, recompute the
    centroids of the artists that changed (and any left stale), update the neighbour lists,
    optimize."""
    shard = options.shard

    def owned(keys: set[str]) -> set[str]:
        return keys if shard is None else {key for key in keys if shard.owns(key)}

    # A track the source no longer lists leaves the store (only after a complete listing).
    losers, outcome.removed = retire_missing(store, source, current.values(), shard)
    touched |= losers
    every_artist: set[str] = set()
    if options.rebuild_centroids or options.repair_stale:
        every_artist = owned(store.artist_keys_in_tracks() | set(store.artist_names()))
    if options.rebuild_centroids:
        to_recompute = every_artist
    else:
        # Every artist, not only this source's: a crashed run over another folder left its
        # artists' centroids stale too.
        to_recompute = touched | stale_artists(store, every_artist)
    to_recompute |= owned(store.pending_centroids())
    incremental = options.optimize_after_writes is not None
    if incremental and not to_recompute:
        return
    outcome.artists_updated = store.recompute_centroids(sorted(to_recompute))
    store.flush()
    store.clear_centroids_pending(to_recompute)
    if shard is None:
        # Before optimize: payload writes move points out of indexed segments. A sharded run
        # leaves the lists stale (the live search answers): workers running at once would
        # each rewrite lists from the others' half-written centroids. Progress is the
        # store's UpkeepProgress events.
        store.update_neighbour_lists(to_recompute)
    threshold = options.optimize_after_writes
    if threshold is None or store.writes_since_optimize() >= threshold:
        store.optimize()
    if incremental:
        store.artist_names()  # rebuild the name index here, not inside the next request


def decode_embed_write(
    source: CatalogueSource,
    todo: list[PendingTrack],
    engine: VectorEngine,
    writer: WriteBehind,
    emit: _Emitter,
    workers: int,
    stop: threading.Event | None = None,
    report_written: Callable[[], None] = lambda: None,
) -> bool:
    """decode → embed → write for `todo`: decoded files are embedded in batches of the
    embedder's size and handed to `writer` (its thread writes while the next batch embeds;
    `report_written` emits what it made durable so far); a file that cannot become a track is
    emitted as failed. True when `stop` was set before the end (the rest is left for a rerun)."""
    # A remote source is told what it will be asked for, in order, and which excerpt is
    # decoded: it can download ahead and fetch only the excerpt (HTTP Range).
    decoding = engine.decoding
    source.prepare_fetch(
        [item.track for item in todo],
        ExcerptRead(decoding.excerpt, decoding.window_seconds, engine.sample_rate),
    )
    batch: list[tuple[PendingTrack, DecodedAudio]] = []
    windows_in_batch = 0
    decode_seconds = 0.0

    def embed_and_write() -> None:
        nonlocal windows_in_batch, decode_seconds
        if not batch:
            return
        emit.events.emit(StageTimed("decode", decode_seconds, windows_in_batch, emit.origin))
        embed_started = time.perf_counter()
        embedded, failed = embed_batch(engine, batch)
        emit.timed("embed", embed_started, windows_in_batch)
        for item, reason in failed:
            emit.failed(item, reason, "embedding")
        if embedded:
            writer.submit([item for item, _ in embedded], [track for _, track in embedded])
        report_written()
        batch.clear()
        windows_in_batch = 0
        decode_seconds = 0.0

    decoded = decode(source, todo, engine.decoding, engine.sample_rate, workers)
    try:
        while True:
            waited = time.perf_counter()
            step = next(decoded, None)
            decode_seconds += time.perf_counter() - waited
            if step is None:
                break
            item, result = step
            if stop is not None and stop.is_set():
                return True
            if isinstance(result, AudioError):
                emit.failed(item, result.detail, failure_class(result))
                continue
            changed = changed_since_identified(source, item)
            if changed is not None:
                emit.failed(item, changed, "unreadable")
                continue
            batch.append((item, result))
            windows_in_batch += len(result.windows)
            if windows_in_batch >= engine.embedder.batch_size:
                embed_and_write()
        embed_and_write()
    finally:
        decoded.close()  # stops the decoding processes, also when stopped early
    return False
