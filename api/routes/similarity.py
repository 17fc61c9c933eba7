"""The artist-by-artist similarity matrix."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from soundalike.api.deps import StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import SimilarityMatrix
from soundalike.search.queries import MAX_MATRIX_ARTISTS, similarity_matrix

router = APIRouter(tags=["artists"])


@router.get(
    "/similarity",
    summary="Cosine similarity of every pair of the given artists' centroids",
    responses=error_responses(401, 404, 422, 503),
)
def artist_similarity(
    store: StoreDep,
    artist: Annotated[
        list[str],
        Query(
            min_length=1,
            max_length=MAX_MATRIX_ARTISTS,
            description=f"Repeat once per artist (1..{MAX_MATRIX_ARTISTS}): `?artist=A&artist=B`.",
        ),
    ],
) -> SimilarityMatrix:
    artists, matrix = similarity_matrix(store, artist)
    return SimilarityMatrix(artists=[a.name for a in artists], matrix=matrix)
