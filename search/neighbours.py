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

from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
# Rows whose candidates are scored exactly at once (bounds the float64 gather).
EXACT_ROWS = 64
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
            renumbered(self.neighbours[keep], renumber), self.scores[keep], self.next_scores[keep]
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
) -> NeighbourTable:
    """Every row's exact top k + spare other rows, by blocked matrix products."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    ranks = _ranks(ranks, n)
    table = NeighbourTable.empty(n, k + spare)
    _compute_rows(matrix, ranks, np.arange(n), table, k + spare, progress)
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
    table = NeighbourTable(old.neighbours.copy(), old.scores.copy(), old.next_scores.copy())
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
        sample = np.partition(scores[:, :m], m - kk, axis=1)[:, m - kk]
        candidates = _compact(scores, sample - margin)
        # The kk-th best candidate bounds the kk-th best score more tightly.
        values = _gather(scores, candidates)
        width = values.shape[1]
        tighter = np.partition(values, width - kk, axis=1)[:, width - kk]
        candidates = _compact_rows(values, candidates, tighter - margin)
    return _exact_top(matrix, ranks, rows, candidates, kk)


def _compact(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per row, the columns scoring at least its threshold, NONE-padded to one width."""
    picked_rows, picked_columns = np.nonzero(scores >= thresholds[:, None])
    return _pad(picked_rows, picked_columns, scores.shape[0])


def _compact_rows(values: np.ndarray, columns: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    keep = (values >= thresholds[:, None]) & (columns >= 0)
    picked_rows, positions = np.nonzero(keep)
    return _pad(picked_rows, columns[picked_rows, positions], values.shape[0])


def _pad(picked_rows: np.ndarray, picked: np.ndarray, n_rows: int) -> np.ndarray:
    counts = np.bincount(picked_rows, minlength=n_rows)
    width = int(counts.max()) if counts.size else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((n_rows, max(width, 1)), NONE, dtype=np.int64)
    out[picked_rows, np.arange(picked_rows.size) - starts[picked_rows]] = picked
    return out


def _gather(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    values = np.take_along_axis(scores, np.maximum(columns, 0), axis=1)
    return np.where(columns >= 0, values, -np.inf).astype(np.float32)


def _exact_top(
    matrix: np.ndarray, ranks: np.ndarray, rows: np.ndarray, candidates: np.ndarray, kk: int
) -> tuple[np.ndarray, np.ndarray]:
    width = candidates.shape[1]
    best = np.full((rows.size, kk), NONE, dtype=np.int64)
    best_scores = np.full((rows.size, kk), -np.inf, dtype=np.float32)
    for start in range(0, rows.size, EXACT_ROWS):
        part = slice(start, start + EXACT_ROWS)
        columns = candidates[part]
        valid = columns >= 0
        theirs = matrix[np.maximum(columns, 0)].astype(np.float64)
        mine = matrix[rows[part]].astype(np.float64)
        exact = np.einsum("rcd,rd->rc", theirs, mine).astype(np.float32)
        exact = np.where(valid, exact, -np.inf)
        tie_ranks = np.where(valid, ranks[np.maximum(columns, 0)], np.iinfo(np.int64).max)
        order = np.lexsort((tie_ranks, -exact), axis=1)[:, :kk]
        take = min(kk, width)
        picked = np.take_along_axis(columns, order, axis=1)[:, :take]
        picked_scores = np.take_along_axis(exact, order, axis=1)[:, :take]
        best[part, :take] = np.where(np.isfinite(picked_scores), picked, NONE)
        best_scores[part, :take] = picked_scores
    return best, best_scores


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
