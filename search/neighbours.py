"""Exact "artists like X" lists: every artist's K most similar other artists, by brute force
over the centroid matrix, and their incremental upkeep when a few centroids change.

Pure numpy; nothing here knows about Qdrant (neighbour_lists.py stores the lists).

Exactness. A score is the cosine of two stored (unit) centroids computed in float64 and rounded
to float32, so the same pair scores the same whichever path computed it. Candidates are chosen
with float32 matrix products, whose error is bounded (`error_margin`): a candidate window wider
than twice that bound cannot lose a true neighbour, and every candidate is then scored exactly.
Ties are broken by rank (the caller's artist-key order): lower rank first.

Incremental upkeep keeps, for every list, an upper bound of the best score of an artist *not*
listed (`next_scores`). When artists change, a list whose members are unchanged and into which
no changed artist climbs above that bound is untouched; a list that some changed artist enters,
or whose changed members stay above the bound, is re-sorted from the known candidates; only a
list that lost a member it cannot refill from them (a deleted artist, a member that moved away)
is recomputed against every artist. The result equals a full `build` (lists and scores; the
bounds may be looser, never lower).

Spare entries. A table may hold more than the k entries served (`spare`): the next best
artists, exact in rank too. A list that loses members (deleted artists, members that moved
away) refills from them instead of being recomputed against every artist, which is what a
deletion otherwise costs (a list holds an artist about as often as the artist holds lists).
A list keeps at least k entries, and up to k + spare.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

K = 100
# Entries kept beyond K in every list (see "Spare entries" above).
SPARE = 16
# Rows scored per matrix product: at most BLOCK_ROWS, fewer when the block's scores
# (rows x artists, float32) would exceed BLOCK_BYTES.
BLOCK_ROWS = 2048
BLOCK_BYTES = 256 * 2**20
# Columns whose k-th best score gives each row a first candidate threshold: about
# k * artists / SAMPLE_COLUMNS candidates per row survive it, whatever the score distribution.
SAMPLE_COLUMNS = 16384
# Rows whose candidates are scored exactly at once: their float64 copies stay in cache.
EXACT_ROWS = 8
# Threads that score candidates exactly at the end of a full build.
MAX_THREADS = 8
# A full build of more artists than this computes one triangle of the symmetric product
# (each block of scores serves the lists of its rows and of its columns): half the flops.
SYMMETRIC_MIN_ROWS = 4 * BLOCK_ROWS
# Columns per product of the symmetric build (BLOCK_ROWS x this many float32 scores).
STRIP_COLUMNS = 16384
# Columns whose best scores give a row its first threshold in the symmetric build; the
# candidates it lets through then tighten it (see `_Candidates`).
THRESHOLD_COLUMNS = 2048
# On a GPU the sample, its threshold columns and the strips are this many times wider: the
# products cost little there, a wider sample lets fewer candidates through to the CPU, and
# wider strips mean fewer round trips per product.
DEVICE_COLUMNS = 8
# Above this many artists a full rebuild whose products run on the CPU builds approximate
# lists (`build_approximate`): the exact products grow with the square of the catalogue (about
# 2 hours at 1M artists on 2 cores), the approximation's with n * sqrt(n). The crossover and the
# approximation's recall are measured in docs/benchmarks.md.
APPROXIMATE_ABOVE = 400_000
# The approximation's cells: about CELL_ROWS rows each (spherical k-means on a sample of
# SAMPLE_PER_CELL rows per cell), several times a list's length so that a row's own cell gives
# it a useful first threshold; each row is scored against its PROBES nearest cells.
CELL_ROWS = 1024
PROBES = 16
KMEANS_ITERATIONS = 8
SAMPLE_PER_CELL = 64
# A block of rows' candidates are narrowed to the tightest thresholds they prove once they
# exceed this many per row and list entry.
COMPACT_PER_ENTRY = 4
# Markers in `NeighbourTable.neighbours`.
NONE = -1
DELETED = -2
# Row indices are int32: half the memory and copying of int64 (2**31 artists is far off).
ROW = np.int32

Progress = Callable[[int, int], None]


@dataclass
class NeighbourTable:
    """Row i's list: `neighbours[i]` (row indices, best first, NONE-padded when fewer than k
    other artists exist), `scores[i]` (float32, -inf padded) and `next_scores[i]`, an upper
    bound of the best score of an artist outside the list (-inf: every other artist is listed).
    """

    neighbours: np.ndarray
    scores: np.ndarray
    next_scores: np.ndarray
    # False for `build_approximate`'s lists: a true neighbour may be missing, and next_scores
    # are the best scores it left out, not bounds.
    exact: bool = True

    @classmethod
    def empty(cls, n: int, k: int = K) -> NeighbourTable:
        return cls(
            neighbours=np.full((n, k), NONE, dtype=ROW),
            scores=np.full((n, k), -np.inf, dtype=np.float32),
            next_scores=np.full(n, -np.inf, dtype=np.float32),
        )

    def without_rows(self, keep: np.ndarray) -> NeighbourTable:
        """The table of the rows in `keep` (sorted) after the others were deleted: survivors
        renumbered, deleted artists still listed marked DELETED (for `update` to replace)."""
        renumber = np.full(self.neighbours.shape[0], DELETED, dtype=ROW)
        renumber[keep] = np.arange(keep.size)
        return NeighbourTable(
            renumbered(self.neighbours[keep], renumber),
            self.scores[keep],
            self.next_scores[keep],
            self.exact,
        )

    def list_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Row's neighbours and scores without padding."""
        listed = self.neighbours[row] >= 0
        return self.neighbours[row][listed], self.scores[row][listed]


def renumbered(members: np.ndarray, renumber: np.ndarray) -> np.ndarray:
    """`members` (row indices and markers) with every row index r replaced by renumber[r];
    markers kept. One gather over the table."""
    lookup = np.concatenate([np.asarray([DELETED, NONE], dtype=ROW), renumber.astype(ROW)])
    return lookup[members + 2]


def error_margin(matrix: np.ndarray) -> float:
    """Twice the worst float32 error of one row's dot product with another (any summation
    order: d products of at most max|row|^2 in all, each rounding by at most 2^-24, plus the
    final rounding): candidate windows this wide cannot lose a neighbour. The squared norms are
    summed in float32 (off by at most d * 2^-24 of themselves) and scaled up past that."""
    if matrix.size == 0:
        return 0.0
    d = matrix.shape[1]
    norm2 = float(np.max(np.einsum("ij,ij->i", matrix, matrix))) * (1.0 + (d + 2) * 2.0**-23)
    unit = 2.0**-24
    return 2.0 * ((d + 2) * unit * max(norm2, 1.0) * 1.01 + unit)


def exact_scores(matrix: np.ndarray, row: int, columns: np.ndarray) -> np.ndarray:
    """Scores of `row` against `columns`, computed in float64 and rounded to float32."""
    theirs = matrix[columns].astype(np.float64)
    return (theirs @ matrix[row].astype(np.float64)).astype(np.float32)


def build(
    matrix: np.ndarray,
    ranks: np.ndarray | None = None,
    *,
    k: int = K,
    spare: int = 0,
    progress: Progress | None = None,
    device: str = "cpu",
    one_sided: bool = False,
    approximate_above: int | None = None,
) -> NeighbourTable:
    """Every row's exact top k + spare other rows, by blocked matrix products; `device` is
    the device setting (`auto`, `cpu`, `cuda`, `cuda:N`) for the products of a catalogue
    large enough to take the symmetric path (see `products_device`). `one_sided`: every row
    against every artist instead, in numpy (twice the products; for measuring). With more
    rows than `approximate_above` and the products on the CPU: `build_approximate`'s lists."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    if (
        approximate_above is not None
        and n > approximate_above
        and not one_sided
        and products_device(device) is None
    ):
        return build_approximate(matrix, ranks, k=k, spare=spare, progress=progress)
    ranks = _ranks(ranks, n)
    table = NeighbourTable.empty(n, k + spare)
    if one_sided or n < SYMMETRIC_MIN_ROWS or n - 1 <= k + spare + 1:
        _compute_rows(matrix, ranks, np.arange(n), table, k + spare, progress)
    else:
        _build_symmetric(matrix, ranks, table, k + spare + 1, progress, products_device(device))
    return table


def update(
    matrix: np.ndarray,
    ranks: np.ndarray | None,
    old: NeighbourTable,
    changed: Iterable[int],
    *,
    k: int = K,
) -> tuple[NeighbourTable, np.ndarray]:
    """A table whose lists' first k entries are those `build(matrix)` gives (every entry exact
    in rank, up to the table's width), from `old`: the lists of the same rows before the
    `changed` rows (new or moved centroids) changed. In `old`, a neighbour that no longer exists
    is DELETED; the lists of changed rows are ignored. `old` is k + spare wide (spare >= 0).
    Returns the table and the rows whose lists were rewritten."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    width = old.neighbours.shape[1]
    if width < k:
        raise ValueError(f"the table holds {width} entries per list, fewer than k = {k}")
    ranks = _ranks(ranks, n)
    changed_rows = np.unique(np.fromiter(changed, dtype=np.int64))
    members = old.neighbours
    # Lists holding a changed or deleted artist: one gather over the table (markers shifted by
    # 2: DELETED counts, NONE does not).
    is_changed = np.zeros(n, dtype=bool)
    is_changed[changed_rows] = True
    hit = np.concatenate([[True, False], is_changed])
    touched = hit[members + 2].any(axis=1)
    table = NeighbourTable(
        old.neighbours.copy(), old.scores.copy(), old.next_scores.copy(), old.exact
    )
    if changed_rows.size == 0 and not touched.any():
        return table, changed_rows
    margin = error_margin(matrix)
    bounds = old.next_scores

    # One product scores every changed row against everything: its own list, and its score
    # in every other list (does it climb into the list, or stay in it).
    entering_rows: list[np.ndarray] = []
    entering_scores: list[np.ndarray] = []
    for start in range(0, changed_rows.size, _block_rows(n)):
        rows = changed_rows[start : start + _block_rows(n)]
        scores = _score_block(matrix, rows)
        _store_top(table, rows, *_select(matrix, ranks, rows, scores, width + 1, margin), width)
        climbs = scores >= (bounds - margin)[None, :]
        climbs[:, changed_rows] = False
        changed_idx, others = np.nonzero(climbs)
        entering_rows.append(np.stack([others, rows[changed_idx]]))
        entering_scores.append(scores[changed_idx, others])
    pairs = np.concatenate(entering_rows, axis=1) if entering_rows else np.zeros((2, 0), np.int64)
    entering: dict[int, list[int]] = {}
    for other, row in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        entering.setdefault(other, []).append(row)

    touched[list(entering)] = True
    touched[changed_rows] = False

    recompute: list[int] = []
    for row in np.nonzero(touched)[0].tolist():
        kept = members[row][members[row] >= 0]
        kept = kept[~is_changed[kept]]
        known = np.concatenate([kept, np.asarray(entering.get(row, []), dtype=np.int64)])
        scores = exact_scores(matrix, row, known)
        order = np.lexsort((ranks[known], -scores))
        known, scores = known[order], scores[order]
        bound = float(bounds[row])
        if bound == -np.inf:
            # Every other artist was listed, and every new one is a changed row: all known.
            keep = min(width, known.size)
            next_score = float(scores[keep]) if known.size > keep else -np.inf
        elif known.size >= k and scores[k - 1] > bound:
            # Known entries above the bound are exact in rank; an unknown artist may come
            # between those below it, so they are dropped (the bound still covers them).
            keep = min(width, int(np.count_nonzero(scores > bound)))
            next_score = max(bound, float(scores[keep])) if known.size > keep else bound
        else:
            recompute.append(row)  # an unknown artist may belong: score it against all
            continue
        _store_list(table, row, known[:keep], scores[:keep], next_score, width)
    _compute_rows(
        matrix, ranks, np.asarray(recompute, dtype=np.int64), table, width, None, margin=margin
    )
    rewritten = np.union1d(changed_rows, np.nonzero(touched)[0])
    return table, rewritten


# --- the blocked product and the exact selection ---------------------------------------------


def _ranks(ranks: np.ndarray | None, n: int) -> np.ndarray:
    if ranks is None:
        return np.arange(n, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.shape != (n,):
        raise ValueError(f"ranks must have one entry per row ({n}), got shape {ranks.shape}")
    return ranks


def _block_rows(n: int) -> int:
    return int(max(1, min(BLOCK_ROWS, BLOCK_BYTES // (4 * max(n, 1)))))


def _score_block(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float32 scores of `rows` against every row, an artist never scoring itself."""
    scores = matrix[rows] @ matrix.T
    scores[np.arange(rows.size), rows] = -np.inf
    return scores


def _compute_rows(
    matrix: np.ndarray,
    ranks: np.ndarray,
    rows: np.ndarray,
    table: NeighbourTable,
    k: int,
    progress: Progress | None,
    *,
    margin: float | None = None,
) -> None:
    if rows.size == 0:
        return
    margin = error_margin(matrix) if margin is None else margin
    step = _block_rows(matrix.shape[0])
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        scores = _score_block(matrix, block)
        _store_top(table, block, *_select(matrix, ranks, block, scores, k + 1, margin), k)
        if progress is not None:
            progress(min(start + step, rows.size), rows.size)


def _select(
    matrix: np.ndarray,
    ranks: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    kk: int,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's exact best `kk` (row indices, float32 exact scores; NONE / -inf padded)."""
    n = scores.shape[1]
    if n - 1 <= kk:
        columns = np.broadcast_to(np.arange(n), scores.shape)
        candidates = np.where(np.isfinite(scores), columns, NONE)
    else:
        # A lower bound of each row's kk-th best: the kk-th best of a sample of columns.
        m = min(n, max(SAMPLE_COLUMNS, 4 * kk))
        sample = _kth_largest(scores[:, :m], kk)
        candidates = _compact(scores, sample - margin)
        # The kk-th best candidate bounds the kk-th best score more tightly.
        values = _gather(scores, candidates)
        tighter = _kth_largest(values, kk)
        candidates = _compact_rows(values, candidates, tighter - margin)
    return _exact_top(matrix, ranks, rows, candidates, kk)


def _compact(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per row, the columns scoring at least its threshold, NONE-padded to one width."""
    picked_rows, picked_columns = _positions(scores >= thresholds[:, None])
    return _pad(picked_rows, picked_columns, scores.shape[0])


def _positions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.nonzero` of a 2-d mask, row-major: the flat search is several times faster on the
    sparse masks of candidate selection."""
    rows, columns = np.divmod(np.flatnonzero(mask), mask.shape[1])
    return rows, columns


def _kth_largest(values: np.ndarray, kk: int) -> np.ndarray:
    """Each row's kk-th largest value (rows at least kk wide)."""
    width = values.shape[1]
    return np.partition(values, width - kk, axis=1)[:, width - kk]


def _compact_rows(values: np.ndarray, columns: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    keep = (values >= thresholds[:, None]) & (columns >= 0)
    picked_rows, positions = np.nonzero(keep)
    return _pad(picked_rows, columns[picked_rows, positions], values.shape[0])


def _pad(
    picked_rows: np.ndarray, picked: np.ndarray, n_rows: int, fill: float = NONE
) -> np.ndarray:
    """One row per row index of `picked` (its values, `picked_rows` sorted), `fill`-padded to
    the longest row."""
    counts = np.bincount(picked_rows, minlength=n_rows)
    width = int(counts.max()) if counts.size else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((n_rows, max(width, 1)), fill, dtype=picked.dtype)
    out[picked_rows, np.arange(picked_rows.size) - starts[picked_rows]] = picked
    return out


def _gather(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    values = np.take_along_axis(scores, np.maximum(columns, 0), axis=1)
    return np.where(columns >= 0, values, -np.inf).astype(np.float32)


def _exact_top(
    matrix: np.ndarray, ranks: np.ndarray, rows: np.ndarray, candidates: np.ndarray, kk: int
) -> tuple[np.ndarray, np.ndarray]:
    width = candidates.shape[1]
    valid = candidates >= 0
    columns = np.maximum(candidates, 0)
    exact = np.where(valid, _exact_block(matrix, rows, columns), -np.inf)
    tie_ranks = np.where(valid, ranks[columns], np.iinfo(np.int64).max)
    order = np.lexsort((tie_ranks, -exact), axis=1)[:, :kk]
    take = min(kk, width)
    picked = np.take_along_axis(candidates, order, axis=1)[:, :take]
    picked_scores = np.take_along_axis(exact, order, axis=1)[:, :take]
    best = np.full((rows.size, kk), NONE, dtype=np.int64)
    best_scores = np.full((rows.size, kk), -np.inf, dtype=np.float32)
    best[:, :take] = np.where(np.isfinite(picked_scores), picked, NONE)
    best_scores[:, :take] = picked_scores
    return best, best_scores


def _exact_block(matrix: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """float32-rounded float64 scores of each row against its columns, a few rows at a time
    so that the float64 copies stay in cache."""
    exact = np.empty(columns.shape, dtype=np.float32)
    for start in range(0, rows.size, EXACT_ROWS):
        part = slice(start, start + EXACT_ROWS)
        theirs = matrix[columns[part]].astype(np.float64)
        mine = matrix[rows[part]].astype(np.float64)
        exact[part] = np.matmul(theirs, mine[:, :, None])[:, :, 0]
    return exact


def _store_top(
    table: NeighbourTable, rows: np.ndarray, best: np.ndarray, scores: np.ndarray, k: int
) -> None:
    table.neighbours[rows] = best[:, :k]
    table.scores[rows] = scores[:, :k]
    table.next_scores[rows] = scores[:, k]


def _store_list(
    table: NeighbourTable,
    row: int,
    neighbours: np.ndarray,
    scores: np.ndarray,
    next_score: float,
    k: int,
) -> None:
    table.neighbours[row] = NONE
    table.scores[row] = -np.inf
    table.neighbours[row, : neighbours.size] = neighbours
    table.scores[row, : scores.size] = scores
    table.next_scores[row] = next_score


# --- the symmetric full build ----------------------------------------------------------------


def _build_symmetric(
    matrix: np.ndarray,
    ranks: np.ndarray,
    table: NeighbourTable,
    kk: int,
    progress: Progress | None,
    device: str | None,
) -> None:
    """Every row's exact best `kk` (the table's width and the next score), computing each
    pair's float32 score once. Rows are visited in a fixed shuffled order, so that the first
    `sample` of them are a fair sample whatever order the catalogue came in:

    1. every row against the sample: each row's first threshold (the kk-th best score among
       the sample's first columns, a lower bound of its kk-th best overall), its candidates
       among the sample, and, for the sample's rows, their candidates among every other row;
    2. the upper triangle of the rest, block by block: a block of scores gives candidates
       to its rows (scores above their thresholds) and to its columns (above theirs).

    Candidates tighten the thresholds as they accumulate (`_Candidates`), and are scored
    exactly at the end, as in `_select`. The products run on `device` (a torch device, see
    `products_device`), or in numpy when it is None."""
    n = matrix.shape[0]
    shuffle = np.random.default_rng(0).permutation(n)
    rows_of = matrix[shuffle]
    products = _products(rows_of, device)
    block = BLOCK_ROWS
    wide = 1 if device is None else DEVICE_COLUMNS
    sample = min(n, -(-max(wide * SAMPLE_COLUMNS, 4 * kk) // block) * block)
    first = min(sample, max(wide * THRESHOLD_COLUMNS, 4 * kk))
    strip = wide * STRIP_COLUMNS
    pool = _Candidates(n, block, kk, error_margin(matrix))
    # Progress: the products (the sample strip, then the triangle) make the first 90 %, the
    # exact scoring of the candidates the rest (about their shares of the time).
    work_total = n * sample + sum(
        (min(n, s + block) - s) * (n - s) for s in range(sample, n, block)
    )
    work_done = 0.0

    def advance(products_done: float) -> None:
        nonlocal work_done
        work_done += products_done
        if progress is not None:
            progress(int(0.9 * n * work_done / work_total), n)

    for start in range(0, n, block):
        stop = min(n, start + block)
        scores = products.scores(start, stop, 0, sample)
        pool.thresholds[start:stop] = products.kth_best(scores, first, kk)
        pool.add(*products.at_least(scores, start, 0, row_limits=pool.limits(start, stop)))
        pool.compact(start // block)
        if start >= sample:
            limits = pool.limits(0, sample)
            pool.add(*products.at_least(scores, start, 0, column_limits=limits), by_column=True)
        advance((stop - start) * sample)

    for start in range(sample, n, block):
        stop = min(n, start + block)
        for left in range(start, n, strip):
            right = min(n, left + strip)
            scores = products.scores(start, stop, left, right)
            pool.add(*products.at_least(scores, start, left, row_limits=pool.limits(start, stop)))
            if right > stop:
                beyond = max(left, stop)
                limits = pool.limits(beyond, right)
                found = products.at_least(scores, start, left, column_limits=limits)
                pool.add(*found, by_column=True)
            advance((stop - start) * (right - left))

    _score_candidates(rows_of, ranks[shuffle], shuffle, pool, table, progress)


def _score_candidates(
    rows_of: np.ndarray,
    ranks_of: np.ndarray,
    shuffle: np.ndarray,
    pool: _Candidates,
    table: NeighbourTable,
    progress: Progress | None,
) -> None:
    """The last 10 % of a build: every row's candidates scored exactly (`_exact_top`), its
    best stored in `table` (row i of `rows_of` is the table's row shuffle[i])."""
    n, block, kk = rows_of.shape[0], pool.block, pool.kk
    width = table.neighbours.shape[1]
    # numpy's float64 products release the GIL: blocks are scored on every core, a few in
    # flight at a time (each holds its block's candidates).
    threads = _cores()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        pending: deque[tuple[np.ndarray, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        starts = range(0, n, block)
        for index, start in enumerate(starts):
            rows = np.arange(start, min(n, start + block))
            candidates = pool.finish(index)
            last = index == len(starts) - 1
            pending.append(
                (rows, executor.submit(_exact_top, rows_of, ranks_of, rows, candidates, kk))
            )
            while pending and (last or len(pending) > 2 * threads):
                rows, scored = pending.popleft()
                best, scores = scored.result()
                best = np.where(best >= 0, shuffle[np.maximum(best, 0)], NONE)
                _store_top(table, shuffle[rows], best, scores, width)
                if progress is not None:
                    progress(int(0.9 * n + 0.1 * (rows[-1] + 1)), n)


# --- the approximate full build ---------------------------------------------------------------


def build_approximate(
    matrix: np.ndarray,
    ranks: np.ndarray | None = None,
    *,
    k: int = K,
    spare: int = 0,
    probes: int | None = None,
    progress: Progress | None = None,
) -> NeighbourTable:
    """Every row's approximate top k + spare other rows (an inverted file): the rows are
    grouped into cells of about CELL_ROWS rows by spherical k-means, and each row is scored
    against the members of its `probes` (default PROBES) nearest cells (its own first: a
    first threshold); the candidates are then scored exactly, as in `build`, so every listed
    score is exact and the order is the exact order of what was found. A true neighbour in a
    cell not probed is missed: `exact` is False (unless every cell was probed), and
    `next_scores` hold the best scores left out among the rows probed, not bounds."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    kk = k + spare + 1
    if n - 1 <= 4 * kk:
        return build(matrix, ranks, k=k, spare=spare, progress=progress)
    ranks = _ranks(ranks, n)
    table = NeighbourTable.empty(n, k + spare)
    centres = _cells(matrix, max(1, n // CELL_ROWS))
    # Probing every cell scores every pair: the lists are then exact.
    probes = PROBES if probes is None else probes
    table.exact = probes >= centres.shape[0]
    probes = min(probes, centres.shape[0])
    nearest = _nearest_cells(matrix, centres, probes)
    home = nearest[:, 0]
    by_home = np.argsort(home, kind="stable")
    home_starts = np.searchsorted(home[by_home], np.arange(centres.shape[0] + 1))
    pool = _Candidates(n, BLOCK_ROWS, kk, error_margin(matrix))
    for rank in range(probes):
        cell_of = nearest[:, rank]
        by_cell = np.argsort(cell_of, kind="stable")
        starts = np.searchsorted(cell_of[by_cell], np.arange(centres.shape[0] + 1))
        for cell in range(centres.shape[0]):
            queries = by_cell[starts[cell] : starts[cell + 1]]
            members = by_home[home_starts[cell] : home_starts[cell + 1]]  # sorted rows
            if queries.size and members.size:
                _probe(matrix, queries, members, pool, own_cell=rank == 0)
            if progress is not None:
                progress(int(0.9 * n * (rank + (cell + 1) / centres.shape[0]) / probes), n)
    _score_candidates(matrix, ranks, np.arange(n), pool, table, progress)
    # A row whose probed cells held fewer than its list's length (small or empty cells, many
    # duplicates) would have a short list that reads as "every other artist is listed":
    # such rows are scored against every artist instead.
    short = np.flatnonzero(table.next_scores == -np.inf)
    _compute_rows(matrix, ranks, short, table, k + spare, None)
    return table


def _probe(
    matrix: np.ndarray,
    queries: np.ndarray,
    members: np.ndarray,
    pool: _Candidates,
    *,
    own_cell: bool,
) -> None:
    """The queries' candidates among one cell's members (`own_cell`: the queries' own). The
    kk-th best score in any cell bounds a row's kk-th best from below: it is the row's first
    threshold, taken from its own cell, or from the first probed cell large enough when its
    own cell holds fewer than kk others (a row without one would keep every score)."""
    step = max(1, BLOCK_BYTES // (4 * members.size))
    theirs = matrix[members]
    others = members.size - 1 if own_cell else members.size
    for start in range(0, queries.size, step):
        rows = queries[start : start + step]
        scores = matrix[rows] @ theirs.T
        if own_cell:
            own = np.searchsorted(members, rows)
            scores[np.arange(rows.size), own] = -np.inf
        if others >= pool.kk:
            unset = np.flatnonzero(pool.thresholds[rows] == -np.inf)
            if unset.size:
                pool.thresholds[rows[unset]] = _kth_largest(scores[unset], pool.kk)
        limits = (pool.thresholds[rows] - pool.margin)[:, None]
        # A row without a threshold yet keeps every score, but never its own (-inf).
        found, columns = _positions((scores >= limits) & (scores > -np.inf))
        pool.add(rows[found], members[columns], scores[found, columns])


def _cells(matrix: np.ndarray, count: int) -> np.ndarray:
    """`count` unit cell centres: spherical k-means on a fixed random sample of the rows."""
    rng = np.random.default_rng(0)
    n = matrix.shape[0]
    sample = matrix[np.sort(rng.choice(n, size=min(n, SAMPLE_PER_CELL * count), replace=False))]
    centres = sample[rng.choice(sample.shape[0], size=count, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assigned = _nearest_cells(sample, centres, 1)[:, 0]
        order = np.argsort(assigned, kind="stable")
        counts = np.bincount(assigned, minlength=count)
        filled = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        sums = np.add.reduceat(sample[order].astype(np.float64), starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centres[filled] = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return centres


def _nearest_cells(rows: np.ndarray, centres: np.ndarray, probes: int) -> np.ndarray:
    """Each row's `probes` nearest cells, nearest first."""
    nearest = np.empty((rows.shape[0], probes), dtype=np.int64)
    step = max(1, BLOCK_BYTES // (4 * centres.shape[0]))
    for start in range(0, rows.shape[0], step):
        scores = rows[start : start + step] @ centres.T
        if probes == 1:
            nearest[start : start + step, 0] = np.argmax(scores, axis=1)
            continue
        best = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        nearest[start : start + step] = np.take_along_axis(best, order, axis=1)
    return nearest


def _cores() -> int:
    """Threads for the exact re-scoring: the cores this process may run on, at most
    MAX_THREADS (each holds a block's candidates; a container's CPU quota is not visible in
    the affinity mask)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


Found = tuple[np.ndarray, np.ndarray, np.ndarray]


class _NumpyProducts:
    """Blocks of float32 scores between the rows of a matrix, in numpy (BLAS). `_TorchProducts`
    does the same on a torch device through the four array primitives at the end."""

    def __init__(self, rows_of: np.ndarray) -> None:
        self._rows_of = self._array(rows_of)

    def scores(self, start: int, stop: int, left: int, right: int) -> Any:
        """Rows [start, stop) against rows [left, right), a row never scoring itself."""
        scores = self._rows_of[start:stop] @ self._rows_of[left:right].T
        both = self._arange(max(start, left), min(stop, right))
        scores[both - start, both - left] = -np.inf
        return scores

    def kth_best(self, scores: Any, columns: int, kk: int) -> np.ndarray:
        """Each row's kk-th best score among the first `columns`."""
        return _kth_largest(scores[:, :columns], kk)

    def at_least(
        self,
        scores: Any,
        start: int,
        left: int,
        *,
        row_limits: np.ndarray | None = None,
        column_limits: np.ndarray | None = None,
    ) -> Found:
        """(row, column, score) of the scores at least their row's limit, or their column's
        (limits for the last columns only), as indices of the whole matrix."""
        if row_limits is not None:
            offset, part = 0, scores
            mask = part >= self._array(row_limits)[:, None]
        else:
            assert column_limits is not None
            offset = scores.shape[1] - column_limits.size
            part = scores[:, offset:]
            mask = part >= self._array(column_limits)[None, :]
        rows, columns = self._positions(mask)
        found = part[rows, columns]
        return (
            start + self._numpy(rows),
            left + offset + self._numpy(columns),
            self._numpy(found),
        )

    def _array(self, values: np.ndarray) -> Any:
        return values

    def _arange(self, first: int, stop: int) -> Any:
        return np.arange(first, max(first, stop))

    def _positions(self, mask: Any) -> tuple[Any, Any]:
        return _positions(mask)

    def _numpy(self, values: Any) -> np.ndarray:
        return values


class _TorchProducts(_NumpyProducts):
    """The same on a torch device: the matrix stays there, only the candidates come back."""

    def __init__(self, rows_of: np.ndarray, device: str) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)
        super().__init__(rows_of)

    def scores(self, start: int, stop: int, left: int, right: int) -> Any:
        # The candidate window (`error_margin`) bounds float32 rounding; TF32's 10-bit
        # mantissa (which a process may have allowed for its own matmuls) is far coarser.
        matmul = self._torch.backends.cuda.matmul
        allowed = matmul.allow_tf32
        matmul.allow_tf32 = False
        try:
            return super().scores(start, stop, left, right)
        finally:
            matmul.allow_tf32 = allowed

    def kth_best(self, scores: Any, columns: int, kk: int) -> np.ndarray:
        kth = self._torch.topk(scores[:, :columns], kk, dim=1, sorted=True).values[:, -1]
        return self._numpy(kth)

    def _array(self, values: np.ndarray) -> Any:
        return self._torch.from_numpy(values).to(self._device)

    def _arange(self, first: int, stop: int) -> Any:
        return self._torch.arange(first, max(first, stop), device=self._device)

    def _positions(self, mask: Any) -> tuple[Any, Any]:
        rows, columns = self._torch.nonzero(mask, as_tuple=True)
        return rows, columns

    def _numpy(self, values: Any) -> np.ndarray:
        return values.cpu().numpy()


def _products(rows_of: np.ndarray, device: str | None) -> _NumpyProducts | _TorchProducts:
    return _NumpyProducts(rows_of) if device is None else _TorchProducts(rows_of, device)


def products_device(setting: str) -> str | None:
    """The torch device a full build's products run on for a device setting (`auto`, `cpu`,
    `cuda`, `cuda:N`): None (numpy) for the CPU, where numpy's BLAS is as fast as torch's
    and torch need not be imported; `auto` takes CUDA when torch sees one."""
    if setting == "cpu":
        return None
    if setting == "auto":
        try:
            import torch
        except ImportError:
            return None
        return "cuda" if torch.cuda.is_available() else None
    return setting


class _Candidates:
    """Per block of rows, the (row, column, float32 score) triples that may belong to the
    rows' best kk, and per row a lower bound of its kk-th best float32 score (`thresholds`):
    the kk-th best of any kk columns' scores is one. A score below its row's threshold by more
    than the product's error margin cannot be a true neighbour (see `_select`)."""

    def __init__(self, n: int, block: int, kk: int, margin: float) -> None:
        self.thresholds = np.full(n, -np.inf, dtype=np.float32)
        self.block, self.kk, self.margin = block, kk, margin
        blocks = -(-n // block)
        self._parts: list[list[Found]] = [[] for _ in range(blocks)]
        self._sizes = np.zeros(blocks, dtype=np.int64)
        self._n = n

    def limits(self, start: int, stop: int) -> np.ndarray:
        """The lowest score rows [start, stop) may still need."""
        return self.thresholds[start:stop] - np.float32(self.margin)

    def add(
        self, rows: np.ndarray, columns: np.ndarray, scores: np.ndarray, *, by_column: bool = False
    ) -> None:
        """Candidates found for `rows` among `columns`; with `by_column`, for the columns
        among the rows (the symmetric pair)."""
        owners, members = (columns, rows) if by_column else (rows, columns)
        if owners.size == 0:
            return
        owners, members = owners.astype(ROW), members.astype(ROW)
        blocks = owners // self.block
        order = np.argsort(blocks, kind="stable")
        blocks = blocks[order]
        starts = np.flatnonzero(np.diff(blocks, prepend=-1))
        for begin, end in zip(starts, [*starts[1:], blocks.size], strict=True):
            part = order[begin:end]
            index = int(blocks[begin])
            self._parts[index].append((owners[part], members[part], scores[part]))
            self._sizes[index] += part.size
            if self._sizes[index] > COMPACT_PER_ENTRY * self.kk * self.block:
                self.compact(index)

    def _rows_of(self, index: int) -> tuple[int, int]:
        """Block `index`'s first row and its number of rows."""
        first = index * self.block
        return first, min(self.block, self._n - first)

    def compact(self, index: int) -> None:
        """Tightens the block's thresholds to the kk-th best candidate score of each row and
        drops the candidates they rule out."""
        parts = self._parts[index]
        if not parts:
            return
        rows = np.concatenate([p[0] for p in parts])
        columns = np.concatenate([p[1] for p in parts])
        scores = np.concatenate([p[2] for p in parts])
        first, count = self._rows_of(index)
        order = np.argsort(rows, kind="stable")
        rows, columns, scores = rows[order], columns[order], scores[order]
        dense = _pad(rows - first, scores, count, fill=-np.inf)
        widest = dense.shape[1]
        if widest >= self.kk:
            kth = _kth_largest(dense, self.kk)
            own = self.thresholds[first : first + count]
            np.maximum(own, kth, out=own)
        keep = scores >= self.thresholds[rows] - np.float32(self.margin)
        self._parts[index] = [(rows[keep], columns[keep], scores[keep])]
        self._sizes[index] = int(np.count_nonzero(keep))

    def finish(self, index: int) -> np.ndarray:
        """The block's candidate columns, a row per row of the block, NONE-padded (rows are
        sorted by `compact`); the block's triples are released."""
        self.compact(index)
        first, count = self._rows_of(index)
        if not self._parts[index]:
            return np.full((count, 1), NONE, dtype=np.int64)
        rows, columns, _ = self._parts[index][0]
        self._parts[index] = []
        return _pad(rows.astype(np.int64) - first, columns.astype(np.int64), count)
