"""Radio and sonic paths: tracks towards and away from seeds, and smooth paths between tracks."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from soundalike.api.deps import SettingsDep, StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.routes.artists import track_filters
from soundalike.api.schemas import ErrorBody, TrackInfo, TrackScore
from soundalike.search.radio import MAX_RADIO_LIMIT, MAX_SEEDS, Seed, radio
from soundalike.search.sonic_paths import (
    MAX_STEPS,
    MIN_STEPS,
    PathStep,
    SonicPath,
    path_from_seeds,
    sonic_path,
)

router = APIRouter(tags=["radio and paths"])

MAX_EXCLUDED = 1000


class TrackSeed(BaseModel):
    """A stored track."""

    model_config = ConfigDict(extra="forbid")
    track_id: UUID = Field(description="A track id.")


class ArtistSeed(BaseModel):
    """A stored artist (by name, matched like artist names in paths); stands for its centroid."""

    model_config = ConfigDict(extra="forbid")
    artist: str = Field(min_length=1, max_length=500, description="An artist name.")


SeedIn = TrackSeed | ArtistSeed


def _seed(seed: SeedIn) -> Seed:
    if isinstance(seed, TrackSeed):
        return Seed(track_id=str(seed.track_id))
    return Seed(artist=seed.artist)


class RadioRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    like: list[SeedIn] = Field(
        min_length=1, max_length=MAX_SEEDS, description="Seeds to move towards."
    )
    unlike: list[SeedIn] = Field(
        default_factory=list,
        max_length=MAX_SEEDS,
        description="Seeds to move away from (an unliked artist's tracks never play).",
    )
    limit: int = Field(20, ge=1, le=MAX_RADIO_LIMIT, description="Tracks.")
    max_per_artist: int | None = Field(
        2,
        ge=1,
        le=MAX_RADIO_LIMIT,
        description="At most this many tracks per artist (null: no cap).",
    )
    exclude_track_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED,
        description="Tracks never to return (already played, say).",
    )
    genre: str | None = Field(None, max_length=200, description="Only tracks of this genre.")
    album: str | None = Field(None, max_length=500, description="Only tracks on this album.")
    year: int | None = Field(None, ge=0, le=9999, description="Only tracks of this year.")


class RadioBody(BaseModel):
    tracks: list[TrackScore] = Field(
        description="Best first; score = cosine to Σliked − Σunliked. Never a seed track."
    )


@router.post(
    "/radio",
    summary="Tracks like the liked seeds and unlike the unliked ones",
    responses=error_responses(400, 401, 404, 422, 503, not_found=ErrorBody),
)
def post_radio(store: StoreDep, settings: SettingsDep, body: RadioRequest) -> RadioBody:
    filters = track_filters(body.genre, body.album, body.year, None, settings.filterable_columns)
    hits = radio(
        store,
        [_seed(s) for s in body.like],
        [_seed(s) for s in body.unlike],
        limit=body.limit,
        max_per_artist=body.max_per_artist,
        exclude_track_ids=[str(t) for t in body.exclude_track_ids],
        filters=filters or None,
    )
    return RadioBody(tracks=[TrackScore.from_hit(h) for h in hits])


class PathStepOut(TrackInfo):
    hop_score: float | None = Field(
        description="Cosine to the previous track of the path; null for the first."
    )

    @classmethod
    def from_step(cls, step: PathStep) -> PathStepOut:
        hop = round(step.hop_score, 6) if step.hop_score is not None else None
        return cls(**TrackInfo.from_track(step.track).model_dump(), hop_score=hop)


class PathBody(BaseModel):
    tracks: list[PathStepOut] = Field(description="Start first, end last, no track twice.")
    total_distance: float = Field(description="Sum of each hop's 1 − cosine.")

    @classmethod
    def from_path(cls, path: SonicPath) -> PathBody:
        return cls(
            tracks=[PathStepOut.from_step(s) for s in path.steps],
            total_distance=round(path.total_distance, 6),
        )


Steps = Annotated[
    int,
    Query(
        ge=MIN_STEPS,
        le=MAX_STEPS,
        description="Tracks in the path, both ends counted (fewer when the catalogue or the "
        "artist cap runs out of tracks).",
    ),
]
MaxPerArtist = Annotated[
    int | None,
    Query(ge=1, le=MAX_STEPS, description="At most this many tracks per artist, ends included."),
]


@router.get(
    "/tracks/{track_id}/path/{other_track_id}",
    summary="A smooth path of tracks from one track to another",
    responses=error_responses(401, 404, 422, 503, not_found=ErrorBody),
)
def get_path(
    store: StoreDep,
    track_id: Annotated[UUID, Path(description="The first track.")],
    other_track_id: Annotated[UUID, Path(description="The last track.")],
    steps: Steps = 10,
    max_per_artist: MaxPerArtist = None,
) -> PathBody:
    path = sonic_path(
        store, str(track_id), str(other_track_id), steps=steps, max_per_artist=max_per_artist
    )
    return PathBody.from_path(path)


class PathRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: SeedIn = Field(description="A track, or an artist (its track nearest the end).")
    end: SeedIn = Field(description="A track, or an artist (its track nearest the start).")
    steps: int = Field(10, ge=MIN_STEPS, le=MAX_STEPS, description="Tracks, both ends counted.")
    max_per_artist: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="At most this many tracks per artist (null: no cap)."
    )


@router.post(
    "/paths",
    summary="A smooth path between two tracks or artists",
    responses=error_responses(400, 401, 404, 422, 503, not_found=ErrorBody),
)
def post_path(store: StoreDep, body: PathRequest) -> PathBody:
    path = path_from_seeds(
        store,
        _seed(body.start),
        _seed(body.end),
        steps=body.steps,
        max_per_artist=body.max_per_artist,
    )
    return PathBody.from_path(path)
