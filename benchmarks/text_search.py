"""Track search, radio and path benchmark at N tracks, through an Edge store.

    python -m benchmarks.text_search [--tracks 100000] [--queries 300] [--dir DIR]

Writes N tracks (random unit vectors, dim 768; titles, artists and albums of random syllables,
100 tracks per artist) and measures: the first `find_tracks` after a catalogue change (one
scroll of every title, artist and album, and the in-memory index built from them), then
`find_tracks` latency for queries of 1, 3 and 6 characters and title+artist lookups (how the
AudioMuse routes find a seed by name); `radio` latency (two liked tracks, one unliked artist,
20 tracks, at most 2 per artist) and `sonic_path` latency (25 steps). Prints a JSON document on
the last line of stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from soundalike.api.bench import peak_rss_mb
from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.search.radio import Seed, radio
from soundalike.search.sonic_paths import sonic_path
from soundalike.search.store import Store, open_store
from soundalike.search.text_search import find_tracks

MODULE = "benchmarks.text_search"
CHUNK = 5000
TRACKS_PER_ARTIST = 100
SYLLABLES = ["ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "do", "be", "ze", "qu", "an", "or"]


def _words(rng: np.random.Generator, count: int) -> str:
    return " ".join(
        "".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(count)
    )


def write_tracks(store: Store, n: int, rng: np.random.Generator) -> list[Track]:
    written: list[Track] = []
    for start in range(0, n, CHUNK):
        rows = rng.standard_normal((min(CHUNK, n - start), common.BENCH_DIM), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        chunk = []
        for offset, vector in enumerate(rows):
            i = start + offset
            artist = f"artist {i // TRACKS_PER_ARTIST:05d} {_words(rng, 1)}"
            key = artist_key(artist.rsplit(" ", 1)[0])
            chunk.append(
                Track(
                    track_id=track_id(f"hash-{i}", key),
                    artist=artist.rsplit(" ", 1)[0],
                    artist_key=key,
                    vector=vector.tolist(),
                    title=_words(rng, int(rng.integers(1, 5))),
                    album=_words(rng, 2),
                    content_hash=f"hash-{i}",
                )
            )
        store.upsert_tracks(chunk)
        written += [Track(t.track_id, t.artist, t.artist_key, None, t.title) for t in chunk]
        common.log(f"  {start + len(chunk)} tracks written")
    store.recompute_centroids({t.artist_key for t in written})
    store.flush()
    store.optimize()
    return written


def timed(calls: Sequence[Callable[[], Any]]) -> dict[str, Any]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return common.latency_summary(samples)


def run(n: int, queries: int, folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    store = open_store(data_dir=folder / "data")
    try:
        store.ensure_spec(common.BENCH_SPEC, force=True)
        common.log(f"writing {n} tracks")
        tracks = write_tracks(store, n, rng)
        started = time.perf_counter()
        find_tracks(store, "ka")
        first_s = time.perf_counter() - started
        common.log(f"first find_tracks (index build): {first_s:.2f} s")
        picks = [tracks[int(i)] for i in rng.integers(0, len(tracks), size=queries)]
        figures: dict[str, Any] = {"first_find_tracks_s": round(first_s, 3)}
        for length in (1, 3, 6):
            needles = [(t.title or "ka")[:length] for t in picks]
            figures[f"query_{length}_chars"] = timed(
                [lambda q=q: find_tracks(store, q, limit=50) for q in needles]
            )
        figures["title_and_artist"] = timed(
            [lambda t=t: find_tracks(store, title=t.title, artist=t.artist) for t in picks]
        )
        seeds = [(picks[i], picks[-1 - i]) for i in range(min(queries, 100))]
        figures["radio_20"] = timed(
            [
                lambda a=a, b=b: radio(
                    store,
                    [Seed(track_id=a.track_id), Seed(track_id=b.track_id)],
                    [Seed(artist=tracks[0].artist)],
                    limit=20,
                    max_per_artist=2,
                )
                for a, b in seeds
            ]
        )
        figures["path_25_steps"] = timed(
            [
                lambda a=a, b=b: sonic_path(store, a.track_id, b.track_id, steps=25)
                for a, b in seeds[:30]
            ]
        )
        figures["peak_rss_mb"] = round(peak_rss_mb())
        return figures
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="keep the store here")
    args = parser.parse_args(argv)
    arguments = list(argv if argv is not None else sys.argv[1:])
    with common.work_dir(args.dir, "text-search") as folder:
        figures = run(args.tracks, args.queries, folder)
    common.print_document(
        {**common.document_header(MODULE, arguments), "tracks": args.tracks, **figures}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
