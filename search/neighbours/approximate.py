"""The approximate full build: an inverted file of spherical k-means cells, each row scored
against its nearest cells' members, the candidates then scored exactly."""

from __future__ import annotations

import numpy as np

from soundalike.search import neighbours  # the tunables, read at call time (see __init__)
from soundalike.search.neighbours.candidates import _Candidates, _score_candidates
from soundalike.search.neighbours.exact import (
    _compute_rows,
    _kth_largest,
    _positions,
    _ranks,
    error_margin,
)
from soundalike.search.neighbours.table import K, NeighbourTable, Progress


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
        return neighbours.build(matrix, ranks, k=k, spare=spare, progress=progress)
    ranks = _ranks(ranks, n)
    table = NeighbourTable.empty(n, k + spare)
    centres = _cells(matrix, max(1, n // neighbours.CELL_ROWS))
    # Probing every cell scores every pair: the lists are then exact.
    probes = neighbours.PROBES if probes is None else probes
    table.exact = probes >= centres.shape[0]
    probes = min(probes, centres.shape[0])
    nearest = _nearest_cells(matrix, centres, probes)
    home = nearest[:, 0]
    by_home = np.argsort(home, kind="stable")
    home_starts = np.searchsorted(home[by_home], np.arange(centres.shape[0] + 1))
    pool = _Candidates(n, neighbours.BLOCK_ROWS, kk, error_margin(matrix))
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
    step = max(1, neighbours.BLOCK_BYTES // (4 * members.size))
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
    sample = matrix[
        np.sort(rng.choice(n, size=min(n, neighbours.SAMPLE_PER_CELL * count), replace=False))
    ]
    centres = sample[rng.choice(sample.shape[0], size=count, replace=False)].copy()
    for _ in range(neighbours.KMEANS_ITERATIONS):
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
    step = max(1, neighbours.BLOCK_BYTES // (4 * centres.shape[0]))
    for start in range(0, rows.shape[0], step):
        scores = rows[start : start + step] @ centres.T
        if probes == 1:
            nearest[start : start + step, 0] = np.argmax(scores, axis=1)
            continue
        best = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        nearest[start : start + step] = np.take_along_axis(best, order, axis=1)
    return nearest
