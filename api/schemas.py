"""The JSON shapes of the HTTP API (docs/contracts.md), as pydantic models for OpenAPI.

Routes build these from the search types with the `from_*` constructors and send the hot ones
as `ModelResponse` (serialised once, not validated again); nothing else here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from soundalike.core.types import Artist, ArtistHit, Track, TrackHit
from soundalike.search.queries import SimilarArtist, TrackPair

# --- serialisation ---------------------------------------------------------------------


class ModelResponse(Response):
    """A model already built by a route, serialised once by pydantic straight to JSON bytes.

    Returning a model from a route makes FastAPI validate it again against `response_model`
    (in the threadpool, for a sync route) and then serialise it: this skips both. The route
    keeps `response_model=` in its decorator, so the OpenAPI document is unchanged; the bytes
    are those FastAPI would send, parsed (floats may be spelt differently: `1e-5`, not
    `1e-05`)."""

    media_type = "application/json"

    def __init__(
        self, model: BaseModel, *, status_code: int = 200, exclude_unset: bool = False
    ) -> None:
        super().__init__(
            type(model).__pydantic_serializer__.to_json(model, exclude_unset=exclude_unset),
            status_code=status_code,
        )


# --- errors ------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error: one readable sentence."""

    model_config = ConfigDict(json_schema_extra={"example": {"detail": "unknown track '…'"}})

    detail: str = Field(description="What went wrong, readable by a person.")


class ArtistNotFoundBody(ErrorBody):
    """An unknown artist name, with the closest stored names."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "detail": "unknown artist 'eclair ensembel'. Did you mean: Éclair Ensemble?",
                "suggestions": ["Éclair Ensemble"],
            }
        }
    )

    suggestions: list[str] = Field(description="Close stored artist names, best first.")


# --- health ------------------------------------------------------------------------------


class Health(BaseModel):
    status: str = Field(description="`ok` while the process serves requests.")


class Readiness(BaseModel):
    status: str = Field(description="`ready` when the store answers.")
    artists: int | None = Field(
        None, description="Artists in the store (only with the API key, when one is set)."
    )
    tracks: int | None = Field(
        None, description="Tracks in the store (only with the API key, when one is set)."
    )
    lookups_in_memory: bool | None = Field(
        None,
        description="Whether artists-like-X is answered from the lists in memory now (false "
        "while they are read at start-up or brought up to date; only with the API key).",
    )


# --- artists and tracks ------------------------------------------------------------------


class ArtistSummary(BaseModel):
    artist: str = Field(description="Display name.")
    track_count: int = Field(description="Tracks stored for this artist.")

    @classmethod
    def from_artist(cls, artist: Artist) -> ArtistSummary:
        return cls(artist=artist.name, track_count=artist.track_count)


class ArtistList(BaseModel):
    artists: list[ArtistSummary] = Field(description="One page of artists, by name.")
    total: int = Field(description="Artists matching the prefix, all pages together.")
    limit: int
    offset: int


class TrackInfo(BaseModel):
    track_id: str = Field(description="Stable id (UUIDv5 of audio content and artist).")
    artist: str
    title: str | None = None
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    duration_seconds: float | None = Field(None, description="Length of the whole file.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Extra manifest columns kept with the track."
    )

    @classmethod
    def from_track(cls, track: Track) -> TrackInfo:
        return cls(
            track_id=track.track_id,
            artist=track.artist,
            title=track.title,
            album=track.album,
            genre=track.genre,
            year=track.year,
            duration_seconds=track.duration_seconds,
            extra=track.extra,
        )


class ArtistDetail(ArtistSummary):
    genres: list[str] = Field(description="Genres of the artist's tracks.")
    tracks: list[TrackInfo] = Field(
        description="One page of the artist's tracks, by album then title (`track_count` in all)."
    )
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Tracks skipped before this page.")


class TrackRef(BaseModel):
    track_id: str
    title: str | None

    @classmethod
    def from_track(cls, track: Track) -> TrackRef:
        return cls(track_id=track.track_id, title=track.title)


class ClosestPair(BaseModel):
    """One track of the queried artist, one of the result artist, and their similarity."""

    track: TrackRef = Field(description="A track of the queried artist.")
    other_track: TrackRef = Field(description="A track of the result artist.")
    score: float = Field(description="Cosine similarity of the two tracks.")

    @classmethod
    def from_pair(cls, pair: TrackPair) -> ClosestPair:
        return cls(
            track=TrackRef.from_track(pair.track),
            other_track=TrackRef.from_track(pair.other_track),
            score=round(pair.score, 6),
        )


class ArtistScore(BaseModel):
    artist: str = Field(description="Display name.")
    score: float = Field(description="Cosine similarity of the artist centroids (-1..1).")
    track_count: int

    @classmethod
    def from_hit(cls, hit: ArtistHit) -> ArtistScore:
        return cls(
            artist=hit.artist.name, score=round(hit.score, 6), track_count=hit.artist.track_count
        )


class SimilarArtistResult(ArtistScore):
    closest_pairs: list[ClosestPair] | None = Field(
        default=None,
        description="Only with `explain=true`: the closest track pairs of the two artists.",
    )

    @classmethod
    def from_result(cls, result: SimilarArtist, explain: bool) -> SimilarArtistResult:
        # Built in one step (not via ArtistScore and a dump): this runs ten times per request
        # on the hottest route.
        hit = result.hit
        if not explain:
            # Left unset, so serialising with exclude_unset omits the key.
            return cls(
                artist=hit.artist.name,
                score=round(hit.score, 6),
                track_count=hit.artist.track_count,
            )
        return cls(
            artist=hit.artist.name,
            score=round(hit.score, 6),
            track_count=hit.artist.track_count,
            closest_pairs=[ClosestPair.from_pair(p) for p in result.closest_pairs],
        )


class SimilarArtists(BaseModel):
    artist: str = Field(description="The queried artist's display name.")
    results: list[SimilarArtistResult] = Field(
        description="Best first; the artist itself excluded."
    )


class TrackScore(TrackInfo):
    score: float = Field(description="Cosine similarity to the query (-1..1).")

    @classmethod
    def from_hit(cls, hit: TrackHit) -> TrackScore:
        return cls(**TrackInfo.from_track(hit.track).model_dump(), score=round(hit.score, 6))


class SimilarTracks(BaseModel):
    track: TrackInfo = Field(description="The queried track.")
    results: list[TrackScore] = Field(description="Best first; never the track itself.")


class AudioMatches(BaseModel):
    tracks: list[TrackScore] = Field(description="Stored tracks nearest to the clip, best first.")
    artists: list[ArtistScore] = Field(description="Artist centroids nearest to the clip.")


class SimilarityMatrix(BaseModel):
    artists: list[str] = Field(description="Display names, in the order they were asked for.")
    matrix: list[list[float]] = Field(
        description="matrix[i][j]: cosine similarity of the centroids of artists i and j."
    )


# --- the front end: track search and the catalogue map -------------------------------------


class TrackList(BaseModel):
    tracks: list[TrackInfo] = Field(description="One page of matching tracks.")
    limit: int
    offset: int


class MapArtist(BaseModel):
    artist: str = Field(description="Display name.")
    x: float = Field(description="Horizontal position, -1..1.")
    y: float = Field(description="Vertical position, -1..1.")
    track_count: int
    genre: str | None = Field(description="The artist's first genre, when its tracks have one.")


class CatalogueMapBody(BaseModel):
    artists: list[MapArtist] = Field(description="Every stored artist, by name key.")
    projection: str = Field(description="How centroids were projected to 2-D (`pca`).")
