"""The neighbour table (every row's list, best first) and its markers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K = 100
# Entries kept beyond K in every list (see "Spare entries" above).
SPARE = 16
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
