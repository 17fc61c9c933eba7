"""Work per request on a catalogue with very large artists: bounded queries against the
unbounded way they used to run, in one run on one store.

    python -m benchmarks.queries [--big-tracks 5000] [--small-artists 200]
        [--repeat 5] [--dir DIR]

The catalogue: two artists of `--big-tracks` tracks each (nearby directions, so they are each
other's nearest artist) and `--small-artists` artists of 5 tracks, random 768-d unit vectors in
an embedded (Edge) store. Three requests, each timed `--repeat` times, with the peak of Python
allocations (tracemalloc: numpy arrays included) of one call:

- explain: "artists like <big one>, limit 1, explain" — bounded: the closest pairs among each
  artist's EXPLAIN_CANDIDATES tracks nearest the other's centroid; unbounded: every track of
  both artists with its vector and the full |A|x|B| similarity matrix.
- capped tracks: "tracks like a big artist's track, limit 100, max 1 per artist" — bounded: an
  over-fetch and at most one read of MAX_CANDIDATES; unbounded: doubling the fetch until the
  page is full or the whole collection was read.
- artist page: "/artists/<big one>" — bounded: the sort fields of every track, full payloads
  for one page of 100; unbounded: every track with its whole payload.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.search import queries
from soundalike.search.store import Store, open_store

MODULE = "benchmarks.queries"
SMALL_ARTIST_TRACKS = 5
PAGE = 100
WRITE_BATCH = 2000


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def fill(store: Store, big_tracks: int, small_artists: int, seed: int = 0) -> None:
    """The catalogue of the module docstring."""
    rng = np.random.default_rng(seed)
    store.ensure_spec(common.BENCH_SPEC)
    base = _unit(rng.standard_normal((1, common.BENCH_DIM)))[0]
    neighbour = _unit(base + 0.3 * _unit(rng.standard_normal((1, common.BENCH_DIM))))[0]
    artists: list[tuple[str, np.ndarray, int]] = [
        ("Big One", base, big_tracks),
        ("Big Two", neighbour, big_tracks),
    ]
    artists += [
        (
            f"Small {i:04d}",
            _unit(rng.standard_normal((1, common.BENCH_DIM)))[0],
            SMALL_ARTIST_TRACKS,
        )
        for i in range(small_artists)
    ]
    pending: list[Track] = []
    for name, centre, count in artists:
        vectors = _unit(
            centre + 0.9 * rng.standard_normal((count, common.BENCH_DIM)) / common.BENCH_DIM**0.5
        )
        key = name.lower()
        for number, vector in enumerate(vectors):
            pending.append(
                Track(
                    track_id=track_id(f"{key}-{number}", key),
                    artist=name,
                    artist_key=key,
                    vector=vector.tolist(),
                    title=f"Track {number:05d}",
                    album=f"Album {number % 40:02d}",
                    genre="rock",
                    path=f"/music/{name}/{number:05d}.flac",
                    duration_seconds=200.0,
                    content_hash=f"{key}-{number}",
                )
            )
            if len(pending) >= WRITE_BATCH:
                store.upsert_tracks(pending)
                pending = []
    store.upsert_tracks(pending)
    store.recompute_centroids(name.lower() for name, _, _ in artists)
    store.flush()


# --- the unbounded ways, as they ran before ------------------------------------------------


def explain_unbounded(store: Store, name: str) -> list[queries.TrackPair]:
    answer = queries.artists_like(store, name, limit=1)
    other = answer.results[0].hit.artist.artist_key
    mine = store.tracks_of_artist(answer.artist.artist_key, with_vectors=True)
    theirs = store.tracks_of_artist(other, with_vectors=True)
    return queries.closest_track_pairs(mine, theirs, queries.EXPLAIN_PAIRS)


def capped_unbounded(store: Store, seed: Track, limit: int) -> list[Any]:
    fetch, total = limit * queries.OVERFETCH, store.count_tracks()
    while True:
        hits = store.search_tracks(seed.vector or [], limit=fetch, exclude_ids={seed.track_id})
        page = queries.cap_per_artist(hits, 1, limit)  # the same cap, unbounded
        if len(page) >= limit or len(hits) < fetch or fetch >= total:
            return page
        fetch *= 2


def page_unbounded(store: Store, key: str) -> list[Track]:
    return store.tracks_of_artist(key, with_vectors=False)[:PAGE]


# --- measuring -----------------------------------------------------------------------------


def measure(call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Latencies of `repeat` calls, and the peak of Python allocations during one more."""
    call()  # warm caches and lazily opened shards
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    tracemalloc.start()
    try:
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"latency": common.latency_summary(samples), "peak_alloc_mb": round(peak / 2**20, 2)}


def run(store: Store, repeat: int) -> dict[str, dict[str, Any]]:
    seed = store.tracks_of_artist("big one", with_vectors=True)[0]
    requests: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "explain": (
            lambda: queries.artists_like(store, "Big One", limit=1, explain=True),
            lambda: explain_unbounded(store, "Big One"),
        ),
        "capped_tracks": (
            lambda: queries.tracks_like(store, seed.track_id, limit=100, max_per_artist=1),
            lambda: capped_unbounded(store, seed, 100),
        ),
        "artist_page": (
            lambda: store.artist_track_page("big one", limit=PAGE),
            lambda: page_unbounded(store, "big one"),
        ),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (bounded, unbounded) in requests.items():
        common.log(f"measuring {name}")
        results[name] = {
            "bounded": measure(bounded, repeat),
            "unbounded": measure(unbounded, repeat),
        }
        fast = results[name]["bounded"]["latency"]["p50_ms"]
        slow = results[name]["unbounded"]["latency"]["p50_ms"]
        results[name]["speedup_p50"] = round(slow / fast, 2) if fast else None
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--big-tracks", type=int, default=5000, help="tracks of each big artist")
    parser.add_argument("--small-artists", type=int, default=200, help="artists of 5 tracks")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per request")
    parser.add_argument("--dir", type=Path, help="keep the store here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.big_tracks < 1 or args.small_artists < 0 or args.repeat < 1:
        parser.error("--big-tracks and --repeat must be >= 1, --small-artists >= 0")
    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    document.update(big_tracks=args.big_tracks, small_artists=args.small_artists)
    with (
        common.work_dir(args.dir, "queries") as scratch,
        open_store(data_dir=scratch / "data") as store,
    ):
        common.log(f"writing {2 * args.big_tracks + 5 * args.small_artists} tracks")
        fill(store, args.big_tracks, args.small_artists)
        document["results"] = run(store, args.repeat)
    common.print_document(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
