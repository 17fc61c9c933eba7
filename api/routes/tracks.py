"""Tracks: one track's metadata, and the stored tracks that sound like it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from soundalike.api.deps import SettingsDep, StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.routes.artists import ColumnFilters, track_filters
from soundalike.api.schemas import ErrorBody, SimilarTracks, TrackInfo, TrackList, TrackScore
from soundalike.search.queries import MAX_LIMIT, require_track, tracks_like
from soundalike.search.text_search import MAX_SEARCH_LIMIT, find_tracks

# Every route here needs the key, validates its parameters and reads the store.
router = APIRouter(prefix="/tracks", tags=["tracks"], responses=error_responses(401, 422, 503))

TrackId = Annotated[UUID, Path(description="A track id, as listed by /artists/{artist}.")]
TrackGenre = Annotated[str | None, Query(max_length=200, description="Only tracks of this genre.")]
TrackAlbum = Annotated[str | None, Query(max_length=500, description="Only tracks on this album.")]
TrackYear = Annotated[int | None, Query(ge=0, le=9999, description="Only tracks of this year.")]


@router.get(
    "",
    summary="Tracks by title, artist or album (a substring, any case or accents)",
)
def search_tracks_by_text(
    store: StoreDep,
    q: Annotated[
        str,
        Query(min_length=1, max_length=200, description="Text in the title, artist or album."),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Tracks skipped.")] = 0,
) -> TrackList:
    found = find_tracks(store, q, limit=limit, offset=offset)
    return TrackList(tracks=[TrackInfo.from_track(t) for t in found], limit=limit, offset=offset)


@router.get(
    "/{track_id}",
    summary="One track's metadata",
    responses=error_responses(404, not_found=ErrorBody),
)
def get_one_track(store: StoreDep, track_id: TrackId) -> TrackInfo:
    return TrackInfo.from_track(require_track(store, str(track_id)))


@router.get(
    "/{track_id}/similar",
    summary="Tracks that sound like this one (never itself)",
    responses=error_responses(404, not_found=ErrorBody),
)
def similar_tracks(
    store: StoreDep,
    settings: SettingsDep,
    track_id: TrackId,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Results.")] = 10,
    exclude_same_artist: Annotated[
        bool, Query(description="Leave out the track's own artist.")
    ] = False,
    max_per_artist: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="At most this many tracks per artist.")
    ] = 2,
    genre: TrackGenre = None,
    album: TrackAlbum = None,
    year: TrackYear = None,
    column_filters: ColumnFilters = None,
) -> SimilarTracks:
    track, hits = tracks_like(
        store,
        str(track_id),
        limit=limit,
        exclude_same_artist=exclude_same_artist,
        max_per_artist=max_per_artist,
        filters=track_filters(genre, album, year, column_filters, settings.filterable_columns)
        or None,
    )
    return SimilarTracks(
        track=TrackInfo.from_track(track), results=[TrackScore.from_hit(h) for h in hits]
    )
