"""Catalogue ingest as plain stages: discover → identify → decode → embed → write → centroids.

Each stage is one function; `ingest()` chains them. The CLI and the tests call them directly.
Decoding runs in a pool of processes feeding the embedder through a bounded window of in-flight
work, so host memory stays flat whatever the catalogue size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from soundalike.core.artist_names import artist_key
from soundalike.core.errors import AudioError, InvalidRequest
from soundalike.core.identity import track_id
from soundalike.core.types import EmbeddingSpec, Track
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


@dataclass(frozen=True)
class IngestOptions:
    """How a run goes (what is embedded, and how, is the engine's decoding and model)."""

    workers: int = 2
    force: bool = False
    shard: Shard | None = None
    rebuild_centroids: bool = False
    # Manifest columns that searches filter on: given payload indexes when the run starts.
    filterable_columns: tuple[str, ...] = ()


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class IngestSummary:
    ingested: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    artists_updated: int = 0
    seconds: float = 0.0
    report_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ingested": self.ingested,
            "skipped": self.skipped,
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "artists_updated": self.artists_updated,
            "seconds": round(self.seconds, 3),
        }
        if self.report_error is not None:
            document["report_error"] = self.report_error
        return document


@dataclass
class PendingTrack:
    """A source's track with its identity, waiting to be decoded and embedded."""

    track: SourceTrack
    artist_key: str
    identity: str
    track_id: str


class Report:
    """`--report FILE`: one JSON line per file, appended and flushed as the run goes.

    The report never stops a run: a line that cannot be written (a full disk) is cut back to the
    last whole line, the report stops, and `error` says why (the summary carries it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.error: str | None = None
        self._file: IO[bytes] | None = None
        if path is not None:
            try:
                self._file = path.open("ab")
            except OSError as error:
                self._stop(f"cannot open {path}: {error.strerror or error}")

    def write(
        self,
        path: str,
        status: str,
        *,
        track: str | None = None,
        artist: str | None = None,
        reason: str | None = None,
    ) -> None:
        if self._file is None:
            return
        line = {
            "path": path,
            "track_id": track,
            "artist": artist,
            "status": status,
            "reason": reason,
        }
        encoded = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        start = self._file.tell()
        try:
            self._file.write(encoded)
            self._file.flush()
        except OSError as error:
            self._truncate(start)
            self._stop(f"writing {self.path} failed: {error.strerror or error}")

    def _truncate(self, size: int) -> None:
        try:
            assert self._file is not None
            self._file.truncate(size)
        except (OSError, ValueError):
            pass  # the next writer appends after whatever survived; lines stay line-delimited

    def _stop(self, why: str) -> None:
        self.error = f"{why}; the report stopped there, the ingest went on"
        print(f"soundalike: {self.error}", file=sys.stderr)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class Progress:
    """A tqdm bar on a terminal; silent otherwise (pipes, `--json`)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="track", file=sys.stderr, dynamic_ncols=True)
        self.failures = 0

    def advance(self, *, failed: bool = False) -> None:
        if self._bar is None:
            return
        if failed:
            self.failures += 1
            self._bar.set_postfix(failed=self.failures)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --- stages -------------------------------------------------------------------------------


def discover(source: CatalogueSource) -> tuple[list[SourceTrack], list[Failure]]:
    """The source's tracks, and what it found that cannot become a track."""
    tracks: list[SourceTrack] = []
    failures: list[Failure] = []
    for found in source.tracks():
        if isinstance(found, Problem):
            failures.append(Failure(found.location, found.reason))
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
            failures.append(Failure(track.location, "empty artist name"))
            continue
        if shard is not None and not shard.owns(key):
            continue
        try:
            identity = source.identity(track)
        except OSError as error:
            failures.append(Failure(track.location, f"unreadable: {error.strerror or error}"))
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
) -> Iterator[tuple[PendingTrack, DecodedAudio | AudioError]]:
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
    return [
        (item, to_track(item, vector, audio.duration_seconds)) for (item, audio), vector in pairs
    ], []


def to_track(
    item: PendingTrack, vector: np.ndarray | list[float], duration_seconds: float | None
) -> Track:
    """The track to store for a listed file and its vector (embedded now, or reused from a
    stored copy of the same audio)."""
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
    )


def decode_embed_write(
    source: CatalogueSource,
    todo: list[PendingTrack],
    engine: VectorEngine,
    writer: Writer,
    fail: Callable[[PendingTrack, str], None],
    workers: int,
    stop: threading.Event | None = None,
) -> bool:
    """decode → embed → write for `todo`: decoded files are embedded in batches of the
    embedder's size and handed to `writer`; a file that cannot become a track goes to `fail`
    with the reason. True when `stop` was set before the end (the rest is left for a rerun)."""
    batch: list[tuple[PendingTrack, DecodedAudio]] = []
    windows_in_batch = 0

    def embed_and_write() -> None:
        nonlocal windows_in_batch
        if not batch:
            return
        embedded, failed = embed_batch(engine, batch)
        for item, reason in failed:
            fail(item, reason)
        if embedded:
            writer.write([item for item, _ in embedded], [track for _, track in embedded])
        batch.clear()
        windows_in_batch = 0

    decoded = decode(source, todo, engine.decoding, engine.sample_rate, workers)
    try:
        for item, result in decoded:
            if stop is not None and stop.is_set():
                return True
            if isinstance(result, AudioError):
                fail(item, result.detail)
                continue
            changed = changed_since_identified(source, item)
            if changed is not None:
                fail(item, changed)
                continue
            batch.append((item, result))
            windows_in_batch += len(result.windows)
            if windows_in_batch >= engine.embedder.batch_size:
                embed_and_write()
        embed_and_write()
    finally:
        decoded.close()  # stops the decoding processes, also when stopped early
    return False


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
) -> set[str]:
    """For a source that lists everything it owns (a music server: `lists_everything`),
    deletes the stored tracks it no longer lists; returns their artists, whose centroids need
    recomputing. Folders and manifests are left alone: a manifest lists a subset of its folder,
    and a folder of an unmounted disk lists nothing."""
    if not getattr(source, "lists_everything", False):
        return set()
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
    return losers


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


@contextlib.contextmanager
def counted_progress(
    unit: str, description: str, enabled: bool
) -> Iterator[Callable[[int, int], None] | None]:
    """A `(done, total)` callback drawing a tqdm bar on stderr, created on the first call and
    closed on exit; None when disabled (pipes, `--json`)."""
    if not enabled:
        yield None
        return
    bar: Any = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit=unit, desc=description, file=sys.stderr,
                       dynamic_ncols=True)  # fmt: skip
        bar.update(done - bar.n)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()


def update_neighbour_lists(store: Store, changed: set[str], progress: bool) -> None:
    """The exact "artists like X" lists, updated for the artists just recomputed (or rebuilt
    when there are none valid or many changed); a bar on stderr while they are computed."""
    with counted_progress("artist", "neighbour lists", progress) as advance:
        store.update_neighbour_lists(changed, progress=advance)


# --- the whole run ------------------------------------------------------------------------


def ingest(
    source: CatalogueSource,
    *,
    store: Store,
    engine: VectorEngine,
    options: IngestOptions,
    report_path: Path | None = None,
    progress: bool = False,
) -> IngestSummary:
    """Ingest a catalogue source into the store. Bad files are reported, never fatal."""
    started = time.monotonic()
    summary = IngestSummary()
    spec: EmbeddingSpec = engine.spec
    listed, failures = discover(source)
    if not listed and not failures:
        raise InvalidRequest(f"no audio files found in {source.description}")
    store.ensure_spec(spec, force=options.force)
    if options.filterable_columns:
        store.declare_filterable(options.filterable_columns)

    report = Report(report_path)
    pending, identify_failures = identify(source, listed, options.shard)
    failures += identify_failures
    todo, skipped = split_stored(store, pending, options.force)
    summary.skipped = len(skipped)
    for item in skipped:
        report.write(
            item.track.location,
            "skipped",
            track=item.track_id,
            artist=item.track.artist,
            reason="already stored",
        )
    for failure in failures:
        report.write(failure.path, "failed", reason=failure.reason)
    summary.failed.extend(failures)

    bar = Progress(len(todo), progress)
    touched: set[str] = set()

    durable_ids: dict[str, str] = {}

    def count_durable(items: list[PendingTrack]) -> None:
        for item in items:
            durable_ids[item.track.location] = item.track_id
            summary.ingested += 1
            touched.add(item.artist_key)
            report.write(
                item.track.location, "ingested", track=item.track_id, artist=item.track.artist
            )
            bar.advance()

    writer = Writer(store, count_durable)

    def fail(item: PendingTrack, reason: str) -> None:
        failure = Failure(item.track.location, reason)
        summary.failed.append(failure)
        report.write(
            failure.path, "failed", track=item.track_id, artist=item.track.artist, reason=reason
        )
        bar.advance(failed=True)

    # A remote source is told what it will be asked for, in order, and which excerpt is
    # decoded: it can download ahead and fetch only the excerpt (HTTP Range).
    prepare_fetch = getattr(source, "prepare_fetch", None)
    if prepare_fetch is not None:
        decoding = engine.decoding
        prepare_fetch(
            [item.track for item in todo],
            decoding.excerpt,
            decoding.window_seconds,
            engine.sample_rate,
        )
    try:
        decode_embed_write(source, todo, engine, writer, fail, options.workers)
        writer.flush()
    finally:
        bar.close()
        report.close()
    summary.report_error = report.error
    # A retagged or edited file has a new id now: its old point is retired, not left behind.
    current = {item.track.location: item.track_id for item in skipped}
    current.update(durable_ids)
    touched |= retire_superseded(store, current)
    # A song the server no longer lists leaves the store (only after a complete listing).
    touched |= retire_missing(store, source, current.values(), options.shard)

    every_artist = store.artist_keys_in_tracks() | set(store.artist_names())
    if options.shard is not None:
        every_artist = {key for key in every_artist if options.shard.owns(key)}
    if options.rebuild_centroids:
        to_recompute = every_artist
    else:
        # Every artist, not only this source's: a crashed run over another folder left its
        # artists' centroids stale too.
        to_recompute = touched | stale_artists(store, every_artist)
    to_recompute |= {
        key for key in store.pending_centroids() if options.shard is None or options.shard.owns(key)
    }
    summary.artists_updated = store.recompute_centroids(sorted(to_recompute))
    store.flush()
    store.clear_centroids_pending(to_recompute)
    if options.shard is None:
        # Before optimize: payload writes move points out of indexed segments. A sharded run
        # leaves the lists stale (the live search answers): workers running at once would
        # each rewrite lists from the others' half-written centroids.
        update_neighbour_lists(store, to_recompute, progress)
    store.optimize()
    summary.seconds = time.monotonic() - started
    return summary
