"""Exact lists and their bounds: the blocked product, the exact selection of every row's
best candidates, and the incremental upkeep (`update`) of a table when a few rows change."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from soundalike.search import neighbours  # the tunables, read at call time (see __init__)
from soundalike.search.neighbours.table import NONE, K, NeighbourTable, Progress


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
    return int(max(1, min(neighbours.BLOCK_ROWS, neighbours.BLOCK_BYTES // (4 * max(n, 1)))))


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
        m = min(n, max(neighbours.SAMPLE_COLUMNS, 4 * kk))
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
    for start in range(0, rows.size, neighbours.EXACT_ROWS):
        part = slice(start, start + neighbours.EXACT_ROWS)
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
