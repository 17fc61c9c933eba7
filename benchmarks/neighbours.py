"""Neighbour lists benchmark: exact "artists like X" lists at N artists.

    python -m benchmarks.neighbours [--artists 100000] [--changes 10]
        [--store [--no-index]] [--one-sided] [--device cuda] [--approximate 16,32]
        [--no-numpy] [--dir DIR]
    python -m benchmarks.neighbours --rate-at 1000000 [--rate-seconds 240]
    python -m benchmarks.neighbours --size-at 1000000 [--no-index] [--dir DIR]

Clustered 768-d centroids shaped like MERT's (`clustered_centroids`). Measures, in NumPy: the
full rebuild (every artist's exact top 100), and the incremental update per changed artist for
three kinds of change (a centroid nudged as by a new track, a new artist, a deleted artist),
checked against the rebuild; from these, the share of changed artists above which a rebuild is
cheaper. `--store` also measures it through an Edge store: rebuild and update times with the
reads and payload writes, bytes per artist of the stored list, and the data dir's growth.
Prints a JSON document on the last line of stdout.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    BENCH_SPEC,
    bench_parser,
    document_header,
    int_list,
    log,
    print_document,
    work_dir,
)
from benchmarks.store import _disk_mb, clustered_centroids
from soundalike.core.artist_names import artist_key
from soundalike.core.types import Artist
from soundalike.search import neighbours
from soundalike.search.schema import F_NEIGHBOURS
from soundalike.search.store import Store, open_store

MODULE = "benchmarks.neighbours"
NUDGE = 0.05


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _check(table: neighbours.NeighbourTable, expected: neighbours.NeighbourTable) -> bool:
    """Every list holds at least K entries, each the rebuild's (lists may hold fewer spare
    entries than a rebuild gives)."""
    for row in range(table.neighbours.shape[0]):
        listed, scores = table.list_of(row)
        wanted, wanted_scores = expected.list_of(row)
        if listed.size < min(neighbours.K, wanted.size):
            return False
        if not (
            np.array_equal(listed, wanted[: listed.size])
            and np.array_equal(scores, wanted_scores[: listed.size])
        ):
            return False
    return True


def measure_numpy(
    matrix: np.ndarray, changes: int, rng: np.random.Generator, *, one_sided: bool
) -> tuple[dict[str, Any], neighbours.NeighbourTable]:
    """The numpy rebuild's figures, and its table (for `measure_device` to check against)."""
    n = matrix.shape[0]
    log(f"full rebuild of {n} artists")
    started = time.perf_counter()
    table = neighbours.build(matrix, spare=neighbours.SPARE)
    full_s = time.perf_counter() - started
    log(f"  {full_s:.1f} s")
    result: dict[str, Any] = {"full_rebuild_s": round(full_s, 2), "incremental": {}}
    if one_sided:
        log("full rebuild, one-sided products (every row against every artist)")
        started = time.perf_counter()
        naive = neighbours.build(matrix, spare=neighbours.SPARE, one_sided=True)
        naive_s = time.perf_counter() - started
        log(f"  {naive_s:.1f} s")
        result["one_sided_rebuild_s"] = round(naive_s, 2)
        result["one_sided_equal"] = _same_lists(naive, table)
    changed = rng.choice(n, size=changes, replace=False)

    nudged = matrix.copy()
    nudged[changed] = _unit(
        nudged[changed] + NUDGE * _unit(rng.standard_normal(nudged[changed].shape))
    )
    # A new artist: appended rows, no list yet, near an existing one (as in its cluster).
    near = matrix[rng.choice(n, size=changes, replace=False)]
    added = np.vstack([matrix, _unit(near + NUDGE * _unit(rng.standard_normal(near.shape)))])
    width = table.neighbours.shape[1]
    grown = neighbours.NeighbourTable(
        np.vstack([table.neighbours, np.full((changes, width), neighbours.NONE)]),
        np.vstack([table.scores, np.full((changes, width), -np.inf, np.float32)]),
        np.concatenate([table.next_scores, np.full(changes, -np.inf, np.float32)]),
    )
    # Deleted artists: rows removed, the survivors renumbered, the deleted marked in old lists.
    keep = np.setdiff1d(np.arange(n), changed)
    shrunk = table.without_rows(keep)
    cases = {
        "nudged": (nudged, table, changed),
        "added": (added, grown, np.arange(n, n + changes)),
        "deleted": (matrix[keep], shrunk, np.zeros(0, np.int64)),
    }
    for kind, (changed_matrix, old, rows) in cases.items():
        started = time.perf_counter()
        updated, rewritten = neighbours.update(changed_matrix, None, old, rows)
        seconds = time.perf_counter() - started
        log(f"  {kind}: {seconds * 1000 / changes:.1f} ms per artist, checking")
        exact = (
            _check(updated, neighbours.build(changed_matrix, spare=neighbours.SPARE))
            if n <= 20_000
            else None
        )
        result["incremental"][kind] = {
            "ms_per_artist": round(seconds * 1000 / changes, 2),
            "lists_rewritten_per_artist": round(rewritten.size / changes, 1),
            "equals_rebuild": exact,
        }
    worst = max(case["ms_per_artist"] for case in result["incremental"].values())
    result["rebuild_cheaper_above_share"] = round(full_s * 1000 / worst / n, 4)
    return result, table


def measure_device(
    matrix: np.ndarray, device: str, reference: neighbours.NeighbourTable | None
) -> dict[str, Any]:
    """The full rebuild with its products on `device` (a torch device: `cuda`), checked against
    the numpy rebuild of the same run when there is one, else against brute force on sampled
    rows (a numpy rebuild of a million artists takes hours)."""
    n = matrix.shape[0]
    table, seconds = _timed(
        f"full rebuild of {n} artists, products on {device}",
        lambda progress: neighbours.build(
            matrix,
            spare=neighbours.SPARE,
            config=neighbours.NeighbourConfig(device=device),
            progress=progress,
        ),
    )
    result: dict[str, Any] = {"device": device, "full_rebuild_s": round(seconds, 2)}
    if reference is not None:
        result["equals_numpy"] = _same_lists(table, reference)
    else:
        rows = _sampled_rows(n)
        result["sampled_rows_equal_brute_force"] = sampled_rows_match(matrix, table, rows)
        result["sampled_rows"] = int(rows.size)
    return result


SAMPLED_ROWS = 500


def _same_lists(table: neighbours.NeighbourTable, other: neighbours.NeighbourTable) -> bool:
    """Whether two builds give identical lists, scores and bounds."""
    return bool(
        np.array_equal(table.neighbours, other.neighbours)
        and np.array_equal(table.scores, other.scores)
        and np.array_equal(table.next_scores, other.next_scores)
    )


def _sampled_rows(n: int) -> np.ndarray:
    return np.random.default_rng(5).choice(n, size=min(n, SAMPLED_ROWS), replace=False)


def _timed(
    label: str, build: Callable[[neighbours.Progress], neighbours.NeighbourTable]
) -> tuple[neighbours.NeighbourTable, float]:
    """A build and its seconds, its progress logged at every tenth (a run cut short still
    shows its rate)."""
    log(label)
    started = time.perf_counter()
    logged = [0]

    def progress(done: int, total: int) -> None:
        if done * 10 // max(total, 1) > logged[0]:
            logged[0] = done * 10 // max(total, 1)
            log(f"  {done / total:.0%} after {time.perf_counter() - started:.1f} s")

    table = build(progress)
    seconds = time.perf_counter() - started
    log(f"  {seconds:.1f} s")
    return table, seconds


def measure_approximate(
    matrix: np.ndarray, probes: int, reference: neighbours.NeighbourTable | None
) -> dict[str, Any]:
    """The approximate full build (`build_approximate`, what a rebuild on the CPU uses above
    APPROXIMATE_ABOVE artists) at `probes`: its time, and its recall@K (the share of each true
    top K it lists) against the numpy rebuild of the same run when there is one, else against
    brute force on sampled rows."""
    n = matrix.shape[0]
    table, seconds = _timed(
        f"approximate rebuild of {n} artists, {probes} probes",
        lambda progress: neighbours.build_approximate(
            matrix, spare=neighbours.SPARE, probes=probes, progress=progress
        ),
    )
    if reference is not None:
        rows = np.arange(n)
        truth = reference.neighbours[:, : neighbours.K]
    else:
        rows = _sampled_rows(n)
        truth = _brute_force_rows(matrix, rows, neighbours.K)
    found = [
        np.intersect1d(table.neighbours[row, : neighbours.K], truth[i]).size
        for i, row in enumerate(rows.tolist())
    ]
    recall = np.asarray(found) / neighbours.K
    return {
        "probes": probes,
        "cells": max(1, n // neighbours.CELL_ROWS),
        "full_rebuild_s": round(seconds, 2),
        "recall_at_k": round(float(recall.mean()), 4),
        "recall_at_k_p1": round(float(np.percentile(recall, 1)), 2),
        "rows_checked": int(rows.size),
    }


def _brute_force_rows(matrix: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """Each of `rows`' best `width` other rows by float64 cosine rounded to float32, ties to
    the lower row; the float64 products run over blocks of the matrix."""
    n = matrix.shape[0]
    mine = matrix[rows].astype(np.float64)
    scores = np.empty((rows.size, n), dtype=np.float32)
    for start in range(0, n, 65536):
        theirs = matrix[start : start + 65536].astype(np.float64)
        scores[:, start : start + 65536] = (mine @ theirs.T).astype(np.float32)
    scores[np.arange(rows.size), rows] = -np.inf
    best = np.empty((rows.size, width), dtype=np.int64)
    for i in range(rows.size):
        kth = np.partition(scores[i], n - width)[n - width]
        candidates = np.flatnonzero(scores[i] >= kth)
        order = np.lexsort((candidates, -scores[i][candidates]))[:width]
        best[i] = candidates[order]
    return best


def sampled_rows_match(
    matrix: np.ndarray, table: neighbours.NeighbourTable, rows: np.ndarray
) -> bool:
    """Whether each sampled row's list equals brute force: its best K + SPARE other rows by
    float64 cosine rounded to float32, ties to the lower row (the benchmark's ranks)."""
    width = table.neighbours.shape[1]
    for row, best in zip(rows.tolist(), _brute_force_rows(matrix, rows, width), strict=True):
        listed, listed_scores = table.list_of(row)
        expected = neighbours.exact_scores(matrix, row, best)
        if not (np.array_equal(listed, best) and np.array_equal(listed_scores, expected)):
            return False
    return True


def write_artists(store: Store, names: list[str], matrix: np.ndarray) -> None:
    """One artist per row of `matrix`, in batches of 5,000, progress every 100,000."""
    for start in range(0, len(names), 5000):
        store.upsert_artists(
            [
                Artist(name=name, artist_key=artist_key(name), track_count=1, centroid=row)
                for name, row in zip(
                    names[start : start + 5000], matrix[start : start + 5000].tolist(), strict=True
                )
            ]
        )
        if start and start % 100_000 == 0:
            log(f"  {start} artists written")


def measure_store(
    matrix: np.ndarray, changes: int, folder: Path, *, index: bool = True
) -> dict[str, Any]:
    n = matrix.shape[0]
    data_dir = folder / "data"
    store = open_store(data_dir=data_dir)
    try:
        store.ensure_spec(BENCH_SPEC, force=True)
        names = [f"artist {i:07d}" for i in range(n)]
        write_artists(store, names, matrix)
        store.flush()
        if index:
            store.optimize()
        size_before = _size(data_dir)
        log("store: rebuild")
        rebuild = store.rebuild_neighbour_lists()
        store.flush()
        if index:
            store.optimize()
        size_after = _size(data_dir)
        point = store.backend_for_tests.retrieve(
            store.artists_collection,
            [_pid(names[0])],
            with_payload=True,
            with_vectors=False,
        )[0]
        blob = str(point.payload[F_NEIGHBOURS])
        rng = np.random.default_rng(1)
        lookups = _time_lookups(store, names, rng)
        updates = _time_store_updates(store, names, changes, rng)
    finally:
        store.close()
    log("store: reopened, reading the artists into memory")
    reopened = open_store(data_dir=data_dir)
    try:
        started = time.perf_counter()
        reopened.load_in_memory()
        load_s = time.perf_counter() - started
        served_after_restart = reopened.answers_from_memory()
    finally:
        reopened.close()
    return {
        "rebuild_s": round(rebuild.seconds, 2),
        "updates": updates,
        "list_base64_bytes_per_artist": len(blob),
        "data_dir_growth_bytes_per_artist": (
            round((size_after - size_before) / n) if index else None
        ),
        "lookups": lookups,
        "load_in_memory_s": round(load_s, 2),
        "served_from_memory_after_restart": served_after_restart,
    }


class _Measured(Exception):
    """Stops a rebuild once its rate is known."""


def measure_rebuild_rate(matrix: np.ndarray, seconds: float) -> dict[str, Any]:
    """A full rebuild too long to wait for: the products are run for `seconds` and their
    rate taken from the build's own progress (which counts them in proportion to their
    flops); the exact re-scoring, linear in the artists, is timed on a sample of rows. The
    total is computed from the two measured rates."""
    n = matrix.shape[0]
    started = time.perf_counter()
    seen: list[tuple[float, int]] = []

    def stop_after(done: int, total: int) -> None:
        seen.append((time.perf_counter() - started, done))
        if seen[-1][0] >= seconds:
            raise _Measured

    log(f"rebuild of {n} artists: the products for {seconds:.0f} s")
    with contextlib.suppress(_Measured):
        neighbours.build(matrix, spare=neighbours.SPARE, progress=stop_after)
    elapsed, done = seen[-1]
    products_share = done / (0.9 * n)  # the products are the first 90 % of its progress
    if products_share >= 1.0:
        raise RuntimeError(f"the rebuild of {n} artists finished its products: measure it whole")
    rows = np.random.default_rng(2).choice(n, size=min(n, 20_000), replace=False)
    columns = np.random.default_rng(3).integers(0, n, size=(rows.size, neighbours.K + 20))
    began = time.perf_counter()
    neighbours._exact_block(matrix, rows, columns)
    exact_s = (time.perf_counter() - began) * n / rows.size
    products_s = elapsed / products_share
    log(f"  {products_share:.2%} of the products in {elapsed:.0f} s; exact part ~{exact_s:.0f} s")
    return {
        "artists": n,
        "measured_s": round(elapsed, 1),
        "products_share_done": round(products_share, 4),
        "products_s_computed": round(products_s),
        "exact_rescoring_s_computed": round(exact_s),
        "rebuild_s_computed": round(products_s + exact_s),
    }


def measure_store_size(matrix: np.ndarray, folder: Path, *, index: bool) -> dict[str, Any]:
    """The Edge data dir with every artist and a list of the stored size for each (random
    members: the encoding's length does not depend on them), before and after the lists are
    written, and after the HNSW build when `index`; then once the store is closed (what
    stays: an open store still holds the segments an optimize replaced)."""
    from soundalike.core.identity import artist_id64
    from soundalike.search.neighbour_lists import encode_list, fingerprint
    from soundalike.search.schema import F_ID64

    n = matrix.shape[0]
    data_dir = folder / "size"
    names = [f"artist {i:07d}" for i in range(n)]
    id64s = np.asarray([artist_id64(artist_key(name)) for name in names], dtype=np.int64)
    width = neighbours.K + neighbours.SPARE
    rng = np.random.default_rng(4)
    store = open_store(data_dir=data_dir, artists_in_memory=False)
    result: dict[str, Any] = {"artists": n}
    try:
        store.ensure_spec(BENCH_SPEC, force=True)
        started = time.perf_counter()
        write_artists(store, names, matrix)
        store.flush()
        result["artists_write_s"] = round(time.perf_counter() - started, 1)
        result["artists_only"] = _disk_mb(data_dir)
        started = time.perf_counter()
        scores = np.sort(rng.uniform(0.7, 0.95, size=width).astype(np.float32))[::-1]
        for start in range(0, n, 5000):
            writes = []
            for row in range(start, min(n, start + 5000)):
                ids = id64s[rng.integers(0, n, size=width)]
                blob = encode_list(fingerprint(matrix[row]), ids, scores, float(scores[-1]))
                writes.append((_pid(names[row]), {F_NEIGHBOURS: blob, F_ID64: int(id64s[row])}))
            # Raw payloads, as a full build would leave them: through the backend (the store's
            # test hook), the lists' own writer needing real neighbours.
            store.backend_for_tests.set_payloads(store.artists_collection, writes)
        store.flush()
        result["lists_write_s"] = round(time.perf_counter() - started, 1)
        result["with_lists"] = _disk_mb(data_dir)
        if index:
            started = time.perf_counter()
            store.optimize()
            result["index_s"] = round(time.perf_counter() - started, 1)
            result["with_lists_indexed"] = _disk_mb(data_dir)
    finally:
        store.close()
    result["closed"] = _disk_mb(data_dir)
    return result


LOOKUPS = 2000


def _time_lookups(store: Store, names: list[str], rng: np.random.Generator) -> dict[str, Any]:
    """`neighbours_of` (limit 10) for random artists: from memory, and through the store
    (the same backend, no copy in memory) as before the copy existed."""
    from_disk = Store(store.backend_for_tests, artists_in_memory=False)
    picks = [artist_key(names[i]) for i in rng.integers(0, len(names), LOOKUPS)]
    result: dict[str, Any] = {"from_memory": store.answers_from_memory()}
    for label, reader in (("memory", store), ("store", from_disk)):
        times = []
        for key in picks:
            started = time.perf_counter()
            answer = reader.neighbours_of(key, limit=10)
            times.append(time.perf_counter() - started)
            assert answer is not None
        ms = np.asarray(times) * 1000
        result[label] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
        }
    return result


def _time_store_updates(
    store: Store, names: list[str], changes: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The list upkeep through the store after `changes` artists moved, were added, or were
    deleted (centroid writes not counted), per changed artist."""
    updates: dict[str, Any] = {}
    moved = store.get_artists([artist_key(name) for name in names[:changes]], with_centroid=True)
    for artist in moved.values():
        row = np.asarray(artist.centroid, np.float32)
        artist.centroid = _unit(row + NUDGE * _unit(rng.standard_normal(row.shape))).tolist()
    store.upsert_artists(list(moved.values()))
    updates["nudged"] = store.update_neighbour_lists(moved)
    near = store.get_artists(
        [artist_key(n) for n in names[changes : 2 * changes]], with_centroid=True
    )
    added = [
        Artist(
            name=f"added {i}",
            artist_key=artist_key(f"added {i}"),
            track_count=1,
            centroid=_unit(
                np.asarray(a.centroid, np.float32)
                + NUDGE * _unit(rng.standard_normal(len(a.centroid or [])))
            ).tolist(),
        )
        for i, a in enumerate(near.values())
    ]
    store.upsert_artists(added)
    updates["added"] = store.update_neighbour_lists({a.artist_key for a in added})
    doomed = [artist_key(name) for name in names[2 * changes : 3 * changes]]
    for key in doomed:
        store.delete_artist(key)
    updates["deleted"] = store.update_neighbour_lists(set(doomed))
    return {
        kind: {
            "seconds": round(u.seconds, 3),
            "ms_per_artist": round(u.seconds * 1000 / changes, 1),
            "full": u.full,
            "changed": u.changed,
            "lists_written": u.written,
        }
        for kind, u in updates.items()
    }


def _pid(name: str) -> str:
    from soundalike.core.identity import artist_point_id

    return artist_point_id(artist_key(name))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(MODULE, __doc__)
    parser.add_argument("--artists", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=10, help="changed artists per update")
    parser.add_argument("--store", action="store_true", help="also through an Edge store")
    parser.add_argument(
        "--no-index",
        action="store_false",
        dest="index",
        help="skip building the store's HNSW (minutes at 100k; only the data dir growth needs it)",
    )
    parser.add_argument(
        "--one-sided",
        action="store_true",
        help="also time the one-sided full build (every row against every artist) and check "
        "that it gives the same lists",
    )
    parser.add_argument(
        "--rate-at",
        type=int,
        default=None,
        metavar="N",
        help="instead: the full rebuild's rate at N artists, its products run for --rate-seconds",
    )
    parser.add_argument("--rate-seconds", type=float, default=240.0)
    parser.add_argument(
        "--size-at",
        type=int,
        default=None,
        metavar="N",
        help="instead: the Edge data dir's size with N artists and their lists",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="also time the full rebuild with its products on this torch device (cuda) and "
        "check its lists against numpy's (or, with --no-numpy, sampled rows against brute force)",
    )
    parser.add_argument(
        "--no-numpy",
        action="store_false",
        dest="numpy",
        help="skip the numpy rebuild and incremental upkeep (with --device, at sizes where "
        "numpy would take hours)",
    )
    parser.add_argument(
        "--approximate",
        type=int_list,
        default=None,
        metavar="PROBES[,PROBES...]",
        help="also time the approximate rebuild (inverted file) at each number of probes and "
        "measure its recall against numpy's lists (or, with --no-numpy, sampled brute force)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    args = parser.parse_args(argv)
    if not args.numpy and args.device is None and args.approximate is None:
        parser.error("--no-numpy measures nothing without --device or --approximate")
    document = document_header(MODULE, sys.argv[1:] if argv is None else argv)
    rng = np.random.default_rng(0)
    if args.rate_at or args.size_at:
        n = args.rate_at or args.size_at
        matrix = clustered_centroids(rng, n)
        if args.rate_at:
            document["rebuild_rate"] = measure_rebuild_rate(matrix, args.rate_seconds)
        if args.size_at:
            with work_dir(args.dir, "neighbours") as folder:
                document["store_size"] = measure_store_size(matrix, folder, index=args.index)
        print_document(document)
        return 0
    matrix = clustered_centroids(rng, args.artists)
    document["artists"] = args.artists
    document["k"] = neighbours.K
    document["spare"] = neighbours.SPARE
    reference = None
    if args.numpy:
        document["numpy"], reference = measure_numpy(
            matrix, args.changes, rng, one_sided=args.one_sided
        )
    if args.device is not None:
        document["on_device"] = measure_device(matrix, args.device, reference)
    for probes in args.approximate or []:
        document.setdefault("approximate", []).append(
            measure_approximate(matrix, probes, reference)
        )
    if args.store:
        with work_dir(args.dir, "neighbours") as folder:
            document["store"] = measure_store(matrix, args.changes, folder, index=args.index)
    print_document(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
