"""The store: every Qdrant access of soundalike (see store.py for its parts)."""

from __future__ import annotations

from soundalike.search.neighbour_lists import NeighbourListsState, NeighbourListsUpdate
from soundalike.search.neighbours.config import NeighbourConfig
from soundalike.search.store.config import (
    DEFAULT_OVERSAMPLING,
    DEFAULT_RETRY_SECONDS,
    DEFAULT_SEARCH_EF,
    MAX_SEARCH_EF,
    QUANTIZE_TRACKS,
    SHARED_NAME_INDEX_TTL_S,
    StoreConfig,
)
from soundalike.search.store.opener import open_store
from soundalike.search.store.spec import SPEC_RECHECK_S
from soundalike.search.store.store import Store

__all__ = [
    "DEFAULT_OVERSAMPLING",
    "DEFAULT_RETRY_SECONDS",
    "DEFAULT_SEARCH_EF",
    "MAX_SEARCH_EF",
    "QUANTIZE_TRACKS",
    "SHARED_NAME_INDEX_TTL_S",
    "SPEC_RECHECK_S",
    "NeighbourConfig",
    "NeighbourListsState",
    "NeighbourListsUpdate",
    "Store",
    "StoreConfig",
    "open_store",
]
