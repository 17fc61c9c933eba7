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

Modules: table.py (the table and its markers), exact.py (the exact selection and `update`),
symmetric.py (the triangle of the symmetric product), approximate.py (the inverted file),
candidates.py (a full build's candidates and their exact scoring), products.py (the products
in numpy or on a torch device). The tunables below are read from this package at call time, so
that one `setattr` here (tests, benchmarks) tunes every module.
"""

from __future__ import annotations

import numpy as np

from soundalike.search.neighbours.approximate import build_approximate
from soundalike.search.neighbours.config import APPROXIMATE_ABOVE, EXACT_ON_CPU, NeighbourConfig
from soundalike.search.neighbours.exact import (
    _compute_rows,
    _ranks,
    error_margin,
    exact_scores,
    update,
)
from soundalike.search.neighbours.exact import (
    _exact_block as _exact_block,  # the neighbours benchmark times it
)
from soundalike.search.neighbours.products import products_device
from soundalike.search.neighbours.symmetric import _build_symmetric
from soundalike.search.neighbours.table import (
    DELETED,
    NONE,
    ROW,
    SPARE,
    K,
    NeighbourTable,
    Progress,
    renumbered,
)

__all__ = [
    "APPROXIMATE_ABOVE",
    "DELETED",
    "NONE",
    "ROW",
    "SPARE",
    "K",
    "NeighbourConfig",
    "NeighbourTable",
    "Progress",
    "build",
    "build_approximate",
    "error_margin",
    "exact_scores",
    "products_device",
    "renumbered",
    "update",
]

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


def build(
    matrix: np.ndarray,
    ranks: np.ndarray | None = None,
    *,
    k: int = K,
    spare: int = 0,
    progress: Progress | None = None,
    one_sided: bool = False,
    config: NeighbourConfig = EXACT_ON_CPU,
) -> NeighbourTable:
    """Every row's exact top k + spare other rows, by blocked matrix products; `config.device`
    is the device setting (`auto`, `cpu`, `cuda`, `cuda:N`) for the products of a catalogue
    large enough to take the symmetric path (see `products_device`). `one_sided`: every row
    against every artist instead, in numpy (twice the products; for measuring). With more
    rows than `config.approximate_above` and the products on the CPU: `build_approximate`'s
    lists."""
    device, approximate_above = config.device, config.approximate_above
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
