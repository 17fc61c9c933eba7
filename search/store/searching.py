"""The vector-search settings every search of the store carries, shared by its track and
artist sides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from soundalike.search.backend import Backend, StoredPoint, VectorQuery, Where


@dataclass(frozen=True)
class VectorSearch:
    """`search_ef`: HNSW candidates per search (None: Qdrant's default); `exact`: scan every
    vector instead; `oversampling`: how many times the limit a quantized search rescores."""

    backend: Backend
    search_ef: int | None
    exact: bool
    oversampling: float | None

    def search(
        self,
        collection: str,
        query: list[float],
        limit: int,
        where: Where | None,
        with_vectors: bool = False,
    ) -> list[tuple[StoredPoint, float]]:
        request = VectorQuery(
            query,
            limit=limit,
            where=where,
            search_ef=self.search_ef,
            exact=self.exact,
            with_vectors=with_vectors,
            oversampling=self.oversampling,
        )
        return self.backend.search(collection, request)


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
