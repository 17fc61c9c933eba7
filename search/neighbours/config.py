"""The neighbour-list settings a store hands whole to its list upkeep and to `build`."""

from __future__ import annotations

from dataclasses import dataclass

# Above this many artists a full rebuild whose products run on the CPU builds approximate
# lists (`build_approximate`): the exact products grow with the square of the catalogue (about
# 2 hours at 1M artists on 2 cores), the approximation's with n * sqrt(n). The crossover and the
# approximation's recall are measured in docs/benchmarks.md.
APPROXIMATE_ABOVE = 400_000


@dataclass(frozen=True)
class NeighbourConfig:
    """How full rebuilds of the neighbour lists run. `device`: where their products run
    (`auto`: CUDA when present; `cpu`, `cuda`, `cuda:N`; see `products_device`).
    `approximate_above`: a rebuild of more artists than this, its products on the CPU, builds
    approximate lists (None: always exact). The defaults are a library's (exact, on the CPU);
    the app's settings choose `auto` and APPROXIMATE_ABOVE."""

    device: str = "cpu"
    approximate_above: int | None = None


# The library default: exact lists, products in numpy.
EXACT_ON_CPU = NeighbourConfig()
