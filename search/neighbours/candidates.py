"""Candidates of a full build: the (row, column, score) triples that may belong to each row's
best, per block of rows, and their exact scoring at the end of the build."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from soundalike.search import neighbours  # the tunables, read at call time (see __init__)
from soundalike.search.neighbours.exact import _exact_top, _kth_largest, _pad, _store_top
from soundalike.search.neighbours.table import NONE, ROW, NeighbourTable, Progress


def _cores() -> int:
    """Threads for the exact re-scoring: the cores this process may run on, at most
    MAX_THREADS (each holds a block's candidates; a container's CPU quota is not visible in
    the affinity mask)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, neighbours.MAX_THREADS))


Found = tuple[np.ndarray, np.ndarray, np.ndarray]


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
            if self._sizes[index] > neighbours.COMPACT_PER_ENTRY * self.kk * self.block:
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
