"""The symmetric full build: one triangle of the symmetric product, each block of scores
serving the lists of its rows and of its columns."""

from __future__ import annotations

import numpy as np

from soundalike.search import neighbours  # the tunables, read at call time (see __init__)
from soundalike.search.neighbours.candidates import _Candidates, _score_candidates
from soundalike.search.neighbours.exact import error_margin
from soundalike.search.neighbours.products import _products
from soundalike.search.neighbours.table import NeighbourTable, Progress


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
    block = neighbours.BLOCK_ROWS
    wide = 1 if device is None else neighbours.DEVICE_COLUMNS
    sample = min(n, -(-max(wide * neighbours.SAMPLE_COLUMNS, 4 * kk) // block) * block)
    first = min(sample, max(wide * neighbours.THRESHOLD_COLUMNS, 4 * kk))
    strip = wide * neighbours.STRIP_COLUMNS
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
