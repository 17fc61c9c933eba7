""" "Artists like X" latency while the live library ingests, against the same store idle.

    python -m benchmarks.library [--artists 100000] [--files 200]
        [--track-seconds 8] [--idle-seconds 20] [--model full|tiny] [--dir DIR]

The catalogue: `--artists` artists (one track each, centroids shaped like MERT's: see
store.py's `clustered_centroids`) in an embedded (Edge) store, optimised, with exact neighbour
lists built, as after an ingest. Then, in this one process (as in `soundalike serve`):

- idle: one client thread asks `artists_like` (the HTTP route's query: a random artist, limit
  10) back to back for `--idle-seconds`;
- during a scan: the same client while a `Library` (ingest/library/) scans a folder of
  `--files` new synthesised tracks (`--track-seconds` each, 24 kHz, 10 per artist) through the
  ingest pipeline: decoding in its worker processes, embedding in the library's thread, writes,
  centroid recomputes and neighbour-list updates into the store the queries read.

`--model full` embeds with a random-weight checkpoint of MERT-v1-95M's full architecture (the
real model's compute, no download); `tiny` with a 32-wide one (store contention only).
Reported: p50/p90/p99 of both phases, their ratio, and the scan's files per second.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.store import _artist_names, clustered_centroids
from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.ingest.devtools.synth import synth_track, write_audio
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.library import Library, LibraryConfig
from soundalike.search.queries import artists_like
from soundalike.search.store import Store, open_store

MODULE = "benchmarks.library"
WRITE_BATCH = 2000
FILES_PER_ARTIST = 10
RATE = 24_000


def load_engine(model: str, scratch: Path) -> VectorEngine:
    from soundalike.ingest.devtools.checkpoint import TINY_MERT_OVERRIDES, write_mert_checkpoint
    from soundalike.ingest.embed import load_embedder

    overrides = TINY_MERT_OVERRIDES if model == "tiny" else None
    checkpoint = write_mert_checkpoint(scratch / f"mert-{model}", config_overrides=overrides)
    embedder = load_embedder(str(checkpoint), layer=11, device="cpu", batch_size=4)
    return VectorEngine(embedder, Decoding())


def fill(store: Store, engine: VectorEngine, artists: int, seed: int = 0) -> list[str]:
    """`artists` artists of one track each, in the engine's spec; their display names."""
    rng = np.random.default_rng(seed)
    store.ensure_spec(engine.spec)
    names = _artist_names(rng, artists)
    dim = engine.spec.dim
    for start in range(0, artists, WRITE_BATCH):
        stop = min(artists, start + WRITE_BATCH)
        vectors = clustered_centroids(rng, stop - start, dim=dim, subspace=min(64, dim))
        tracks = []
        for offset, vector in enumerate(vectors):
            name = names[start + offset]
            key = artist_key(name)
            content = f"{start + offset:064x}"
            tracks.append(
                Track(
                    track_id=track_id(content, key),
                    artist=name,
                    artist_key=key,
                    vector=vector.tolist(),
                    title="Track",
                    path=f"/elsewhere/{start + offset}.flac",
                    duration_seconds=200.0,
                    content_hash=content,
                )
            )
        store.upsert_tracks(tracks)
        store.recompute_centroids([t.artist_key for t in tracks])
        common.log(f"  {stop}/{artists} artists")
    store.flush()
    store.optimize()
    common.log("  building the neighbour lists")
    store.rebuild_neighbour_lists()
    store.optimize()
    return names


def write_folder(root: Path, files: int, seconds: float) -> None:
    for i in range(files):
        artist = f"Scanned Artist {i // FILES_PER_ARTIST:03d}"
        audio = synth_track(
            artist_seed=100 + i // FILES_PER_ARTIST,
            track_seed=i,
            seconds=seconds,
            sample_rate=RATE,
            channels=1,
        )
        path = root / artist / f"{i:04d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, audio, RATE)


class Client:
    """Back-to-back "artists like X" calls in a thread, timing each."""

    def __init__(self, store: Store, names: list[str]) -> None:
        self.store = store
        self.names = names
        self.samples_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._random = random.Random(1)

    def _run(self) -> None:
        while not self._stop.is_set():
            name = self._random.choice(self.names)
            started = time.perf_counter()
            try:
                artists_like(self.store, name, limit=10)
            except Exception:  # noqa: BLE001 - counted: a benchmark reports, never stops
                self.errors += 1
                continue
            self.samples_ms.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def measure(args: Any, scratch: Path) -> dict[str, Any]:
    engine = load_engine(args.model, scratch)
    folder = scratch / "music"
    common.log(f"writing {args.files} tracks of {args.track_seconds} s")
    write_folder(folder, args.files, args.track_seconds)
    with open_store(data_dir=scratch / "data") as store:
        common.log(f"filling the store with {args.artists} artists")
        started = time.perf_counter()
        names = fill(store, engine, args.artists)
        fill_seconds = time.perf_counter() - started

        common.log(f"idle: {args.idle_seconds} s of queries")
        with Client(store, names) as idle:
            time.sleep(args.idle_seconds)

        common.log("during a scan")
        config = LibraryConfig(
            roots=(folder,), watch=False, rescan_seconds=1e9, debounce_seconds=0.0, workers=2
        )
        library = Library(config, store=lambda: store, engine=lambda: engine)
        with Client(store, names) as scanning:
            scan_started = time.perf_counter()
            library.start()
            while True:
                status = library.status()
                if status.state == "idle" and status.last_scan_finished is not None:
                    break
                time.sleep(0.05)
            scan_seconds = time.perf_counter() - scan_started
        library.close()
        final = library.status().to_dict()
    idle_latency = common.latency_summary(idle.samples_ms)
    scan_latency = common.latency_summary(scanning.samples_ms)
    ratio = None
    if idle_latency["p99_ms"] and scan_latency["p99_ms"]:
        ratio = round(scan_latency["p99_ms"] / idle_latency["p99_ms"], 2)
    return {
        "artists": args.artists,
        "files": args.files,
        "track_seconds": args.track_seconds,
        "model": args.model,
        "fill_seconds": round(fill_seconds, 1),
        "idle": {"queries": len(idle.samples_ms), "errors": idle.errors, **idle_latency},
        "scanning": {
            "queries": len(scanning.samples_ms),
            "errors": scanning.errors,
            **scan_latency,
        },
        "p99_ratio": ratio,
        "scan_seconds": round(scan_seconds, 1),
        "files_per_second": round(final["ingested"] / scan_seconds, 2) if scan_seconds else None,
        "library": {k: final[k] for k in ("ingested", "failed", "files_seen")},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--artists", type=int, default=100_000, help="artists in the store")
    parser.add_argument("--files", type=int, default=200, help="new files the scan ingests")
    parser.add_argument("--track-seconds", type=float, default=8.0, help="length of each file")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle phase length")
    parser.add_argument("--model", choices=["full", "tiny"], default="full")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    document = common.document_header(MODULE, sys.argv[1:] if argv is None else list(argv))
    with common.work_dir(args.dir, "library") as scratch:
        document["result"] = measure(args, scratch)
    result = document["result"]
    text = (
        f"idle p50 {result['idle']['p50_ms']} ms, p99 {result['idle']['p99_ms']} ms; during a "
        f"scan p50 {result['scanning']['p50_ms']} ms, p99 {result['scanning']['p99_ms']} ms "
        f"(ratio {result['p99_ratio']}); {result['files_per_second']} files/s"
    )
    common.print_document(document, text=text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
