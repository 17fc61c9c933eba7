"""What a store is opened with: one frozen `StoreConfig` (built from the app's settings by
`Settings.store_config`), and the defaults it starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from soundalike.search.neighbours.config import NeighbourConfig

# How long the in-memory artist-name index may lag writes made by *other* processes (server
# backend only: an embedded store has a single owner, so its index is exact).
SHARED_NAME_INDEX_TTL_S = 15.0
# HNSW candidates per search (see docs/benchmarks.md, "## Store", for the measurements).
DEFAULT_SEARCH_EF = 128
MAX_SEARCH_EF = 100_000
# New tracks collections are int8-quantized, and their searches keep twice the limit for
# rescoring: at 1M tracks that matched float32's recall@10 in half its time and memory
# (docs/benchmarks.md, "Track search at 1,000,000 tracks").
QUANTIZE_TRACKS = True
DEFAULT_OVERSAMPLING: float | None = 2.0
# How long a server store keeps retrying transient failures before giving up: short for
# request handling; a long batch job (an ingest) passes minutes so a Qdrant restart is survived.
DEFAULT_RETRY_SECONDS = 3.0


@dataclass(frozen=True)
class StoreConfig:
    """Which store to open and how: a server when `url` is given, qdrant-client `:memory:`
    when `in_memory`, else Qdrant Edge under `data_dir` (default ./soundalike-data).

    `timeout`, `shard_number`, `replication_factor`: a server's. `search_ef`: HNSW
    candidates per vector search (recall against latency; None: Qdrant's default, the index's
    ef_construct). `artists_in_memory`: see `Store.load_in_memory`. `quantize_tracks`: a
    tracks collection this store creates keeps int8 copies of the vectors in memory for the
    search and the float32 originals on disk to rescore its hits (an existing collection keeps
    what it was created with). `neighbours`: how full rebuilds of the neighbour lists run."""

    data_dir: Path | None = None
    url: str | None = None
    # Not in the repr: a config may be logged.
    api_key: str | None = field(default=None, repr=False)
    collection_prefix: str = ""
    timeout: float = 30.0
    shard_number: int = 1
    replication_factor: int = 1
    in_memory: bool = False
    search_ef: int | None = DEFAULT_SEARCH_EF
    artists_in_memory: bool = True
    quantize_tracks: bool = QUANTIZE_TRACKS
    neighbours: NeighbourConfig = NeighbourConfig()
