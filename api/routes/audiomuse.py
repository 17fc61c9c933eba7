"""AudioMuse-AI's HTTP contract under /api, answered from soundalike's catalogue.

Navidrome's AudioMuse-AI plugin, Jellyfin's AudioMuse AI plugin (Instant Mix) and the LMS
AudioMuse mixers call these routes; a server answering them is a drop-in sonic-similarity
provider. Ids in and out are the media server's own (search/media_ids.py). The contract has its
own error shape, `{"error": "..."}`, with 400 (not 422) for bad or missing parameters: every
route here uses `AudioMuseRoute`, which turns soundalike's errors and FastAPI's validation errors
into that shape for these routes only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from soundalike.api.deps import SettingsDep, StoreDep
from soundalike.api.errors import (
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    Unauthorized,
    describe_validation,
    request_id_of,
    status_of,
    unavailable_detail,
)
from soundalike.core.artist_names import key_prefix
from soundalike.core.errors import (
    CapacityExhausted,
    InvalidRequest,
    SoundalikeError,
    TrackNotFound,
)
from soundalike.core.types import Track, TrackHit
from soundalike.search.media_ids import (
    artist_by_media_id,
    artist_media_ids,
    media_id,
    track_by_media_id,
)
from soundalike.search.queries import artists_like, cap_per_artist
from soundalike.search.radio import MAX_RADIO_LIMIT, MAX_SEEDS, Seed, radio
from soundalike.search.sonic_paths import MAX_STEPS, MIN_STEPS, sonic_path
from soundalike.search.store import Store
from soundalike.search.text_search import MAX_SEARCH_LIMIT, find_tracks

log = logging.getLogger("soundalike.api")

# AudioMuse's "eliminate duplicates": at most this many tracks per artist.
DUPLICATE_ARTIST_CAP = 3
# Jellyfin's Instant Mix asks for up to ~2x its mix size per seed (mixes of 200).
MAX_SIMILAR = 500
MAX_SIMILAR_ARTISTS = 100
# Tracks read for a capped similar-tracks answer, at most.
MAX_SIMILAR_CANDIDATES = 2000
DEFAULT_SEARCH_PAGE = 100


AUDIOMUSE_TAG = "AudioMuse-AI compatible"


# --- the contract's error shape ----------------------------------------------------------


class AudioMuseErrorBody(BaseModel):
    """Every error of these routes: one readable sentence under `error`."""

    error: str = Field(description="What went wrong, readable by a person.")


_ERROR_DESCRIPTIONS = {
    400: "Missing, contradictory or malformed parameters.",
    401: "Missing or wrong API key (`Authorization: Bearer <key>`).",
    404: "Unknown track or artist id.",
    503: "Store unavailable (see `Retry-After`).",
}


def audiomuse_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": AudioMuseErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def error_response(request: Request, error: Exception) -> JSONResponse:
    """The contract's answer to a failure: soundalike's status, but 400 for bad input."""
    headers: dict[str, str] = {}
    if isinstance(error, RequestValidationError):
        return JSONResponse({"error": describe_validation(error.errors())}, status_code=400)
    if not isinstance(error, SoundalikeError):
        request_id = request_id_of(request)
        log.error("request %s failed", request_id, exc_info=error)
        body = f"internal error; quote request id {request_id} to the operator"
        return JSONResponse({"error": body}, status_code=500)
    status = status_of(error)
    message = error.message
    if isinstance(error, InvalidRequest) or status == 422:
        status = 400
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        request_id = request_id_of(request)
        log.warning("request %s: %s", request_id, error.message)
        message = unavailable_detail(error, request_id)
        headers["Retry-After"] = str(
            error.retry_after_seconds
            if isinstance(error, CapacityExhausted)
            else UNAVAILABLE_RETRY_AFTER_SECONDS
        )
    if status == 500:
        return error_response(request, RuntimeError(message))
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class AudioMuseRoute(APIRoute):
    """A route whose failures (validation, auth, domain errors) answer `{"error": ...}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except (RequestValidationError, SoundalikeError) as error:
                return error_response(request, error)
            except HTTPException as error:  # FastAPI's own: a body that is not JSON at all
                return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

        return answer


def document_errors(app: FastAPI) -> None:
    """These routes never answer 422 (bad input is a 400 `{"error"}`): FastAPI documents a 422
    for every route with parameters, so it is taken out of this router's operations."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for path, item in document.get("paths", {}).items():
            if path.startswith("/api/"):
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


PREFIX = "/api"
# The health check is open (the plugins probe it without a key); the key check (api/auth.py)
# answers the others' refusals in this contract's shape (`error_response`).
open_router = APIRouter(prefix=PREFIX, tags=[AUDIOMUSE_TAG], route_class=AudioMuseRoute)
router = APIRouter(prefix=PREFIX, tags=[AUDIOMUSE_TAG], route_class=AudioMuseRoute)
# What a contract route may answer besides its result: all but the search may answer a 404.
LOOKUP_ERRORS = (400, 401, 404, 503)


def contract_route(
    method: Literal["GET", "POST"],
    path: str,
    summary: str,
    *,
    errors: tuple[int, ...] = LOOKUP_ERRORS,
    **options: Any,
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A route of `router`, documenting the contract's errors it may answer; `options` go to
    FastAPI's `api_route`."""
    return router.api_route(
        path, methods=[method], summary=summary, responses=audiomuse_errors(*errors), **options
    )


def media_id_query(description: str) -> Any:
    """A media server's id as a query parameter (`Any`, as FastAPI's own `Query` is typed)."""
    return Query(min_length=1, max_length=200, description=description)


def words_query(description: str) -> Any:
    """Words of a title, artist or album (`Any`, as FastAPI's own `Query` is typed)."""
    return Query(max_length=500, description=description)


def results_query(most: int) -> Any:
    """How many results (`n`), 1 to `most`."""
    return Query(ge=1, le=most, description="Results.")


# --- shapes ------------------------------------------------------------------------------


class SongRef(BaseModel):
    item_id: str = Field(description="The media server's id of the track.")
    title: str | None


class PathSong(SongRef):
    author: str = Field(description="The track's artist.")
    album: str | None


class AlchemySong(PathSong):
    distance: float = Field(description="1 − cosine to the query (0 = identical, up to 2).")


class SearchSong(PathSong):
    album_artist: str = Field(description="The album artist when known, else the artist.")


class SimilarSong(SearchSong):
    distance: float = Field(description="1 − cosine to the seed (0 = identical, up to 2).")


def _song_fields(track: Track) -> dict[str, Any]:
    return {
        "item_id": media_id(track),
        "title": track.title,
        "author": track.artist,
        "album": track.album,
    }


def _album_artist(track: Track) -> str:
    value = track.extra.get("album_artist")
    return str(value) if value not in (None, "") else track.artist


def _distance(score: float) -> float:
    return round(min(2.0, max(0.0, 1.0 - score)), 6)


class HealthBody(BaseModel):
    status: str = Field(description="`ok` while the process serves requests.")


@open_router.get("/health", summary="AudioMuse-AI health check (no API key needed)")
def audiomuse_health() -> HealthBody:
    return HealthBody(status="ok")


# --- similar tracks ----------------------------------------------------------------------

Ignored = Annotated[str | None, Query(max_length=200, description="Accepted and ignored.")]


def _seed_by_title(store: Store, title: str, artist: str) -> Track:
    """The track with this title by this artist: an exact (folded) match first, else the first
    track whose title and artist contain them; 404 when none does."""
    candidates = find_tracks(store, title=title, artist=artist, limit=MAX_SEARCH_LIMIT)
    wanted = (key_prefix(title), key_prefix(artist))
    exact = [t for t in candidates if (key_prefix(t.title or ""), key_prefix(t.artist)) == wanted]
    chosen = next(iter(exact or candidates), None)
    if chosen is None:
        raise TrackNotFound(f"{title} by {artist}")
    return track_by_media_id(store, chosen.track_id)


def _similar_hits(store: Store, seed: Track, n: int, cap: int | None) -> list[TrackHit]:
    assert seed.vector is not None
    fetch = n if cap is None else min(n * 4, MAX_SIMILAR_CANDIDATES)
    hits = store.search_tracks(seed.vector, limit=fetch, exclude_ids=[seed.track_id])
    return cap_per_artist(hits, cap, n)


@contract_route(
    "GET",
    "/similar_tracks",
    "Tracks that sound like a track (AudioMuse-AI); a bare array, closest first",
)
def audiomuse_similar_tracks(
    store: StoreDep,
    item_id: Annotated[str | None, media_id_query("The seed's media-server id.")] = None,
    title: Annotated[
        str | None, words_query("With `artist`, instead of `item_id`: the seed's title.")
    ] = None,
    artist: Annotated[str | None, words_query("With `title`: the seed's artist.")] = None,
    n: Annotated[int, results_query(MAX_SIMILAR)] = 10,
    eliminate_duplicates: Annotated[
        bool, Query(description=f"At most {DUPLICATE_ARTIST_CAP} tracks per artist.")
    ] = True,
    radius_similarity: Ignored = None,
    mood_similarity: Ignored = None,
    server: Ignored = None,
) -> list[SimilarSong]:
    if item_id is not None and (title is not None or artist is not None):
        raise InvalidRequest("give item_id, or title and artist, not both")
    if item_id is not None:
        seed = track_by_media_id(store, item_id)
    elif title and artist and key_prefix(title) and key_prefix(artist):
        seed = _seed_by_title(store, title, artist)
    else:
        raise InvalidRequest("give item_id, or both title and artist")
    cap = DUPLICATE_ARTIST_CAP if eliminate_duplicates else None
    return [
        SimilarSong(
            **_song_fields(hit.track),
            album_artist=_album_artist(hit.track),
            distance=_distance(hit.score),
        )
        for hit in _similar_hits(store, seed, n, cap)
    ]


# --- sonic path --------------------------------------------------------------------------


class PathBody(BaseModel):
    path: list[PathSong] = Field(description="Start first, end last, no track twice.")
    total_distance: float = Field(description="Sum of each hop's 1 − cosine.")


@contract_route(
    "GET", "/find_path", "A smooth path of tracks from one track to another (AudioMuse-AI)"
)
def audiomuse_find_path(
    store: StoreDep,
    start_song_id: Annotated[str, media_id_query("Media-server id of the start.")],
    end_song_id: Annotated[str, media_id_query("Media-server id of the end.")],
    max_steps: Annotated[
        int, Query(ge=MIN_STEPS, le=MAX_STEPS, description="Songs in the path, both ends counted.")
    ] = 25,
    path_fix_size: Annotated[
        bool,
        Query(
            description="Exactly `max_steps` songs (when the catalogue has them); otherwise at "
            "most, and no hop longer than the direct start→end distance."
        ),
    ] = False,
    mood_pct: Ignored = None,
    server: Ignored = None,
) -> PathBody:
    start = track_by_media_id(store, start_song_id, with_vector=False)
    end = track_by_media_id(store, end_song_id, with_vector=False)
    if start.track_id == end.track_id:
        raise InvalidRequest("start_song_id and end_song_id name the same track")
    found = sonic_path(
        store, start.track_id, end.track_id, steps=max_steps, fixed_size=path_fix_size
    )
    return PathBody(
        path=[PathSong(**_song_fields(step.track)) for step in found.steps],
        total_distance=round(found.total_distance, 6),
    )


# --- similar artists ---------------------------------------------------------------------


class ComponentMatch(BaseModel):
    distance: float = Field(description="1 − cosine of the two tracks.")
    artist1_representative_songs: list[SongRef] = Field(description="A track of the asked artist.")
    artist2_representative_songs: list[SongRef] = Field(description="A track of this artist.")


class SimilarArtistRow(BaseModel):
    artist: str = Field(description="Display name.")
    artist_id: str = Field(description="The media server's artist id when known, else the name.")
    divergence: float = Field(description="1 − cosine of the artist centroids; smaller = closer.")
    track_count: int
    component_matches: list[ComponentMatch] | None = Field(
        default=None,
        description="Only with `include_component_matches=true`: the closest track pairs.",
    )


@contract_route(
    "GET",
    "/similar_artists",
    "Artists that sound like an artist (AudioMuse-AI); a bare array, closest first",
    response_model_exclude_none=True,
)
def audiomuse_similar_artists(
    store: StoreDep,
    settings: SettingsDep,
    artist: Annotated[
        str | None,
        Query(min_length=1, max_length=500, description="An artist name or media-server id."),
    ] = None,
    artist_id: Annotated[
        str | None,
        Query(min_length=1, max_length=500, description="A media-server artist id."),
    ] = None,
    n: Annotated[int, results_query(MAX_SIMILAR_ARTISTS)] = 10,
    include_component_matches: Annotated[
        bool, Query(description="Add the closest track pairs of each result.")
    ] = False,
    server: Ignored = None,
) -> list[SimilarArtistRow]:
    if artist is not None and artist_id is not None and artist != artist_id:
        raise InvalidRequest("give artist or artist_id, not two different ones")
    asked = artist if artist is not None else artist_id
    if asked is None:
        raise InvalidRequest("give artist (a name or id) or artist_id")
    named = artist_by_media_id(store, asked)
    # The same query as GET /artists/{artist}/similar and `soundalike similar`.
    answer = artists_like(
        store,
        named.name,
        limit=n,
        explain=include_component_matches,
        lookup=settings.similar_lookup,
    )
    ids = artist_media_ids(store, [result.hit.artist for result in answer.results])
    rows = []
    for result in answer.results:
        hit = result.hit
        row = SimilarArtistRow(
            artist=hit.artist.name,
            artist_id=ids.get(hit.artist.artist_key, hit.artist.name),
            divergence=_distance(hit.score),
            track_count=hit.artist.track_count,
        )
        if include_component_matches:
            row.component_matches = [
                ComponentMatch(
                    distance=_distance(pair.score),
                    artist1_representative_songs=[
                        SongRef(item_id=media_id(pair.track), title=pair.track.title)
                    ],
                    artist2_representative_songs=[
                        SongRef(item_id=media_id(pair.other_track), title=pair.other_track.title)
                    ],
                )
                for pair in result.closest_pairs
            ]
        rows.append(row)
    return rows


# --- search ------------------------------------------------------------------------------


@contract_route(
    "GET",
    "/search_tracks",
    "Tracks by title, artist or album words (AudioMuse-AI)",
    errors=(400, 401, 503),
)
def audiomuse_search_tracks(
    store: StoreDep,
    search_query: Annotated[str | None, words_query("Words of the title, artist or album.")] = None,
    title: Annotated[str | None, words_query("Instead of search_query: title words.")] = None,
    artist: Annotated[str | None, words_query("Instead of search_query: artist words.")] = None,
    start: Annotated[int, Query(ge=0, le=1_000_000, description="First result (0-based).")] = 0,
    end: Annotated[
        int | None,
        Query(
            ge=0,
            le=1_000_000 + MAX_SEARCH_LIMIT,
            description=f"One past the last result (at most {MAX_SEARCH_LIMIT} after start; "
            f"default start + {DEFAULT_SEARCH_PAGE}).",
        ),
    ] = None,
) -> list[SearchSong]:
    if search_query and (title or artist):
        raise InvalidRequest("give search_query, or title and/or artist, not both")
    stop = end if end is not None else start + DEFAULT_SEARCH_PAGE
    if stop < start or stop - start > MAX_SEARCH_LIMIT:
        raise InvalidRequest(
            f"end must be between start and start + {MAX_SEARCH_LIMIT}, got {start}..{stop}"
        )
    tracks = find_tracks(
        store, search_query, title=title, artist=artist, limit=stop - start, offset=start
    )
    return [SearchSong(**_song_fields(t), album_artist=_album_artist(t)) for t in tracks]


# --- alchemy -----------------------------------------------------------------------------


class AlchemyItem(BaseModel):
    id: str = Field(min_length=1, max_length=500, description="A track's or artist's id.")
    op: Literal["ADD", "SUBTRACT"] = Field(description="Move towards (ADD) or away (SUBTRACT).")
    type: Literal["song", "artist"] = Field("song", description="What `id` names.")


class AlchemyRequest(BaseModel):
    items: list[AlchemyItem] = Field(min_length=1, max_length=2 * MAX_SEEDS)
    n: int = Field(100, ge=1, le=MAX_RADIO_LIMIT, description="Results.")


class AlchemyBody(BaseModel):
    results: list[AlchemySong] = Field(description="Best first; never an added or subtracted song.")


def _alchemy_seed(store: Store, item: AlchemyItem) -> Seed:
    if item.type == "song":
        return Seed(track_id=track_by_media_id(store, item.id, with_vector=False).track_id)
    return Seed(artist=artist_by_media_id(store, item.id).name)


@contract_route(
    "POST", "/alchemy", "Tracks near what is added and far from what is subtracted (AudioMuse-AI)"
)
def audiomuse_alchemy(store: StoreDep, body: AlchemyRequest) -> AlchemyBody:
    like = [_alchemy_seed(store, i) for i in body.items if i.op == "ADD"]
    unlike = [_alchemy_seed(store, i) for i in body.items if i.op == "SUBTRACT"]
    if not like:
        raise InvalidRequest("add at least one song or artist (op ADD)")
    if len(like) > MAX_SEEDS or len(unlike) > MAX_SEEDS:
        raise InvalidRequest(f"at most {MAX_SEEDS} items are added and {MAX_SEEDS} subtracted")
    hits = radio(store, like, unlike, limit=body.n, max_per_artist=None)
    return AlchemyBody(
        results=[AlchemySong(**_song_fields(h.track), distance=_distance(h.score)) for h in hits]
    )


# --- max distance ------------------------------------------------------------------------


class MaxDistanceBody(BaseModel):
    max_distance: float = Field(description="1 − cosine to the farthest stored track.")
    farthest_item_id: str | None = Field(description="That track's media-server id.")


@contract_route("GET", "/max_distance", "The farthest stored track from a track (AudioMuse-AI)")
def audiomuse_max_distance(
    store: StoreDep, item_id: Annotated[str, media_id_query("Media-server id.")]
) -> MaxDistanceBody:
    seed = track_by_media_id(store, item_id)
    assert seed.vector is not None
    # The nearest track to the opposite direction is the farthest one from the seed (cosine).
    opposite = -np.asarray(seed.vector, dtype=np.float32)
    hits = store.search_tracks(opposite, limit=1, exclude_ids=[seed.track_id])
    if not hits:
        return MaxDistanceBody(max_distance=0.0, farthest_item_id=None)
    return MaxDistanceBody(
        max_distance=_distance(-hits[0].score), farthest_item_id=media_id(hits[0].track)
    )
