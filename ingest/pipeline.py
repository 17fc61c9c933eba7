"""Catalogue ingest as plain stages: discover → identify → decode → embed → write → centroids.

Each stage is one function; `ingest()` chains them. The CLI and the tests call them directly.
Decoding runs in a pool of processes feeding the embedder through a bounded window of in-flight
work, so host memory stays flat whatever the catalogue size.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from soundalike.ingest.audio import DecodedAudio, ExcerptPolicy, content_hash, decode_excerpt
from soundalike.ingest.catalogue import CatalogueEntry, discover
from soundalike.ingest.embed import MertEmbedder
from soundalike.search.errors import AudioError, InvalidRequest
from soundalike.search.names import artist_key
from soundalike.search.store import Store, track_id
from soundalike.search.types import EmbeddingSpec, Track

# A flush (fsync of the store's files) costs ~0.2 s on a small disk: flushing per batch made
# the store the bottleneck of a fast GPU. Per interval, its cost is bounded whatever the rate.
FLUSH_INTERVAL_SECONDS = 2.0
# How many decoded tracks may wait for the embedder per decoding worker: enough to keep the
# model busy, small enough that memory does not grow with the catalogue.
IN_FLIGHT_PER_WORKER = 2


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
            raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard {text}: need N >= 1 and 0 <= i < N")
        return shard

    def owns(self, key: str) -> bool:
        # A stable hash (not Python's salted hash()) so every worker agrees on the partition.
        digest = hashlib.sha1(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


@dataclass(frozen=True)
class IngestOptions:
    excerpt: ExcerptPolicy
    window_seconds: float = 30.0
    min_duration_seconds: float = 3.0
    silence_rms: float = 1e-3
    workers: int = 2
    artist_from: Literal["folders", "tags"] = "folders"
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "skipped": self.skipped,
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "artists_updated": self.artists_updated,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class PendingTrack:
    """A catalogue entry with its identity, waiting to be decoded and embedded."""

    entry: CatalogueEntry
    artist_key: str
    content_hash: str
    track_id: str


class Report:
    """`--report FILE`: one JSON line per file, appended and flushed as the run goes."""

    def __init__(self, path: Path | None) -> None:
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path else None

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
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


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


def identify(
    entries: Iterable[CatalogueEntry], shard: Shard | None
) -> tuple[list[PendingTrack], list[Failure]]:
    """Give each entry its track id (content hash + artist key); keep this shard's artists."""
    pending: list[PendingTrack] = []
    failures: list[Failure] = []
    for entry in entries:
        try:
            key = artist_key(entry.artist or "")
        except ValueError:
            failures.append(Failure(str(entry.path), "empty artist name"))
            continue
        if shard is not None and not shard.owns(key):
            continue
        try:
            digest = content_hash(entry.path)
        except OSError as error:
            failures.append(Failure(str(entry.path), f"unreadable: {error.strerror or error}"))
            continue
        pending.append(PendingTrack(entry, key, digest, track_id(digest, key)))
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
    todo: list[PendingTrack], options: IngestOptions, sample_rate: int
) -> Iterator[tuple[PendingTrack, DecodedAudio | AudioError]]:
    """Decode in worker processes, yielding in completion order with bounded look-ahead."""
    decode_one = _Decoder(options, sample_rate)
    # spawn: forking a process that already runs torch's thread pools can deadlock.
    context = multiprocessing.get_context("spawn")
    queue = list(reversed(todo))
    in_flight_limit = max(1, options.workers * IN_FLIGHT_PER_WORKER)
    while queue:
        with ProcessPoolExecutor(max_workers=options.workers, mp_context=context) as pool:
            in_flight: dict[Future[DecodedAudio | AudioError], PendingTrack] = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < in_flight_limit:
                        item = queue.pop()
                        in_flight[pool.submit(decode_one, str(item.entry.path))] = item
                    future = next(iter(_first_done(in_flight)))
                    item = in_flight.pop(future)
                    yield item, future.result()
            except BrokenProcessPool:
                # A decoder process died (a crashing codec on a hostile file). Blame the files
                # it had in flight one by one: report them and start a fresh pool for the rest.
                for lost in in_flight.values():
                    yield lost, AudioError(str(lost.entry.path), "the decoder process crashed")
                in_flight.clear()


def _first_done(futures: dict[Future[Any], PendingTrack]) -> set[Future[Any]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
    return done


class _Decoder:
    """Picklable decode call for the worker processes; audio errors come back as values."""

    def __init__(self, options: IngestOptions, sample_rate: int) -> None:
        self.policy = options.excerpt
        self.window_seconds = options.window_seconds
        self.min_duration_seconds = options.min_duration_seconds
        self.silence_rms = options.silence_rms
        self.sample_rate = sample_rate

    def __call__(self, path: str) -> DecodedAudio | AudioError:
        try:
            return decode_excerpt(
                path,
                policy=self.policy,
                sample_rate=self.sample_rate,
                window_seconds=self.window_seconds,
                min_duration_seconds=self.min_duration_seconds,
                silence_rms=self.silence_rms,
            )
        except AudioError as error:
            return error


def embed(embedder: MertEmbedder, decoded: list[DecodedAudio]) -> np.ndarray:
    """One unit vector per decoded track, batching equal-length windows across tracks."""
    return embedder.embed_tracks([audio.windows for audio in decoded])


def to_track(item: PendingTrack, audio: DecodedAudio, vector: np.ndarray) -> Track:
    entry = item.entry
    return Track(
        track_id=item.track_id,
        artist=entry.artist or "",
        artist_key=item.artist_key,
        vector=vector.astype(np.float32).tolist(),
        title=entry.title or entry.path.stem,
        album=entry.album,
        genre=entry.genre,
        year=entry.year,
        path=str(entry.path),
        duration_seconds=round(audio.duration_seconds, 3),
        content_hash=item.content_hash,
        extra=dict(entry.extra),
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


# --- the whole run ------------------------------------------------------------------------


def ingest(
    source: Path,
    *,
    store: Store,
    embedder: MertEmbedder,
    options: IngestOptions,
    report_path: Path | None = None,
    progress: bool = False,
) -> IngestSummary:
    """Ingest a folder or manifest into the store. Bad files are reported, never fatal."""
    started = time.monotonic()
    summary = IngestSummary()
    spec: EmbeddingSpec = embedder.build_spec(str(options.excerpt), options.window_seconds)
    discovery = discover(source, artist_from=options.artist_from)
    if not discovery.entries and not discovery.problems:
        raise InvalidRequest(f"no audio files found under {source}")
    store.ensure_spec(spec, force=options.force)
    if options.filterable_columns:
        store.declare_filterable(options.filterable_columns)

    report = Report(report_path)
    failures = [Failure(str(path), reason) for path, reason in discovery.problems]
    pending, identify_failures = identify(discovery.entries, options.shard)
    failures += identify_failures
    todo, skipped = split_stored(store, pending, options.force)
    summary.skipped = len(skipped)
    for item in skipped:
        report.write(
            str(item.entry.path),
            "skipped",
            track=item.track_id,
            artist=item.entry.artist,
            reason="already stored",
        )
    for failure in failures:
        report.write(failure.path, "failed", reason=failure.reason)
    summary.failed.extend(failures)

    bar = Progress(len(todo), progress)
    touched: set[str] = set()

    def count_durable(items: list[PendingTrack]) -> None:
        for item in items:
            summary.ingested += 1
            touched.add(item.artist_key)
            report.write(
                str(item.entry.path), "ingested", track=item.track_id, artist=item.entry.artist
            )
            bar.advance()

    writer = Writer(store, count_durable)
    batch: list[tuple[PendingTrack, DecodedAudio]] = []
    windows_in_batch = 0

    def embed_and_write() -> None:
        nonlocal windows_in_batch
        if not batch:
            return
        vectors = embed(embedder, [audio for _, audio in batch])
        tracks = [
            to_track(item, audio, vector)
            for (item, audio), vector in zip(batch, vectors, strict=True)
        ]
        writer.write([item for item, _ in batch], tracks)
        batch.clear()
        windows_in_batch = 0

    try:
        for item, result in decode(todo, options, embedder.sample_rate):
            if isinstance(result, AudioError):
                failure = Failure(str(item.entry.path), result.detail)
                summary.failed.append(failure)
                report.write(
                    failure.path,
                    "failed",
                    track=item.track_id,
                    artist=item.entry.artist,
                    reason=failure.reason,
                )
                bar.advance(failed=True)
                continue
            batch.append((item, result))
            windows_in_batch += len(result.windows)
            if windows_in_batch >= embedder.batch_size:
                embed_and_write()
        embed_and_write()
        writer.flush()
    finally:
        bar.close()
        report.close()

    if options.rebuild_centroids:
        to_recompute = store.artist_keys_in_tracks() | set(store.artist_names())
        if options.shard is not None:
            to_recompute = {key for key in to_recompute if options.shard.owns(key)}
    else:
        in_scope = {item.artist_key for item in pending}
        to_recompute = touched | stale_artists(store, in_scope)
    summary.artists_updated = store.recompute_centroids(sorted(to_recompute))
    store.flush()
    store.optimize()
    summary.seconds = time.monotonic() - started
    return summary
