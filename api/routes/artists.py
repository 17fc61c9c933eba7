"""Artists: list and prefix search, one artist with its tracks, artists that sound alike.

Artist names travel in the path (`{artist:path}` so names with a slash, like AC/DC sent as
`AC%2FDC`, still route); they match case-, accent- and spacing-insensitively.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

from soundalike.api.deps import StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import (
    ArtistDetail,
    ArtistList,
    ArtistSummary,
    ModelResponse,
    SimilarArtistResult,
    SimilarArtists,
    TrackInfo,
)
from soundalike.api.services import Services
from soundalike.api.settings import Settings
from soundalike.core.errors import InvalidRequest, SoundalikeError
from soundalike.search.queries import MAX_LIMIT, ArtistNeighbours, artists_like, resolve_artist
from soundalike.search.store import Store

router = APIRouter(prefix="/artists", tags=["artists"])


class ArtistNameConvertor(Convertor[str]):
    """Starlette's `path` convertor (`.*`) stops at a newline, so `/artists/a%0Ab` matched no
    route (a bare 404 without `suggestions`, before the API-key check); this one takes any
    character."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("artist_name", ArtistNameConvertor())

MAX_PAGE = 1000
DEFAULT_TRACK_PAGE = 100
MAX_NAME_CHARS = 500
MAX_MIN_TRACKS = 1_000_000
ArtistName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="Artist name; case, accents and spacing do not matter.",
        examples=["eclair ensemble"],
    ),
]
Genre = Annotated[
    str | None,
    Query(max_length=200, description="Only artists with at least one track of this genre."),
]
Album = Annotated[
    str | None,
    Query(max_length=500, description="Only artists with at least one track on this album."),
]
Year = Annotated[
    int | None,
    Query(ge=0, le=9999, description="Only artists with at least one track from this year."),
]


ColumnFilters = Annotated[
    list[str] | None,
    Query(
        alias="filter",
        max_length=20,
        description="`column:value` on a manifest column the server declares filterable "
        "(SOUNDALIKE_FILTERABLE_COLUMNS); repeat for several (all must hold).",
        examples=["label:Blue Note"],
    ),
]


def track_filters(
    genre: str | None,
    album: str | None,
    year: int | None,
    column_filters: list[str] | None = None,
    filterable: list[str] | None = None,
) -> dict[str, Any]:
    """The filters a request gave, in the store's vocabulary (absent ones left out)."""
    if genre is None and album is None and year is None and not column_filters:
        return {}  # the common case, once per artists-like-X request
    given = {"genre": genre, "album": album, "year": year}
    filters: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    for text in column_filters or []:
        column, separator, value = text.partition(":")
        if not separator or not column or not value:
            raise InvalidRequest(f"filter: expected column:value, got {text!r}")
        if column not in (filterable or []):
            allowed = ", ".join(filterable or []) or "none are declared"
            raise InvalidRequest(f"filter: {column!r} is not a filterable column ({allowed})")
        filters.setdefault(column, [])
        if not isinstance(filters[column], list):
            filters[column] = [filters[column]]
        filters[column].append(value)
    return filters


@router.get(
    "",
    summary="List artists, optionally by name prefix",
    response_model=ArtistList,
    responses=error_responses(401, 422, 503),
)
def list_artists(
    store: StoreDep,
    q: Annotated[
        str | None,
        Query(max_length=MAX_NAME_CHARS, description="Name prefix (case/accent-insensitive)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Artists to skip.")] = 0,
) -> ModelResponse:
    artists, total = store.list_artists(prefix=q, limit=limit, offset=offset)
    return ModelResponse(
        ArtistList(
            artists=[ArtistSummary.from_artist(a) for a in artists],
            total=total,
            limit=limit,
            offset=offset,
        )
    )


# Registered before `/{artist:path}`, which would otherwise swallow the `/similar` suffix.
@router.get(
    "/{artist:artist_name}/similar",
    summary="Artists that sound like this one",
    response_model=SimilarArtists,
    response_model_exclude_unset=True,
    responses=error_responses(401, 404, 422, 503),
)
async def similar_artists(
    request: Request,
    store: StoreDep,
    artist: ArtistName,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Results.")] = 10,
    min_tracks: Annotated[
        int,
        Query(ge=1, le=MAX_MIN_TRACKS, description="Only artists with at least this many tracks."),
    ] = 1,
    genre: Genre = None,
    album: Album = None,
    year: Year = None,
    column_filters: ColumnFilters = None,
    explain: Annotated[
        bool, Query(description="Add the closest track pairs of each result (slower).")
    ] = False,
) -> ModelResponse:
    # The settings straight from the app, not through a (sync, so threadpool) dependency.
    settings: Settings = request.app.state.services.settings
    filters = track_filters(genre, album, year, column_filters, settings.filterable_columns)
    query = functools.partial(
        artists_like,
        store,
        artist,
        limit=limit,
        min_tracks=min_tracks,
        filters=filters or None,
        explain=explain,
        lookup=settings.similar_lookup,
    )
    if answers_on_the_event_loop(store, settings, filters, explain):
        answer = query()
    else:
        answer = await run_in_threadpool(query)
    return ModelResponse(similar_artists_body(answer, explain), exclude_unset=True)


def answers_on_the_event_loop(
    store: Store, settings: Settings, filters: dict[str, Any], explain: bool
) -> bool:
    """Whether artists-like-X will be answered from the lists in this process's memory (an
    embedded store, `SOUNDALIKE_ARTISTS_IN_MEMORY`): microseconds, cheaper on the event loop
    than the threadpool hop it would otherwise take. A live HNSW search (lookups off, filters,
    explain, lists not current) or a Qdrant server over the network stays in the threadpool,
    so it never blocks the other requests."""
    return settings.similar_lookup and not filters and not explain and store.answers_from_memory()


# The route the fast path stands in for.
SIMILAR_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is similar_artists)


class SimilarLookupFastPath:
    """ASGI middleware answering the commonest artists-like-X request, `GET
    /artists/{artist}/similar` with at most `limit` and `min_tracks`, straight from the lists in
    memory, without FastAPI's per-request parameter and dependency machinery (which costs
    several times the lookup itself: `docs/benchmarks.md`, "HTTP search").

    It answers only what it can answer exactly as the route would (same query, same body);
    anything else goes to the route unchanged: other parameters, values the route would
    validate differently, an unknown artist, lists not in memory. The outer middleware (request
    id, access log and metrics, deadline, CORS, the API key check) wraps both alike."""

    PREFIX = "/artists/"
    SUFFIX = "/similar"
    PARAMETERS = {"limit": (1, MAX_LIMIT), "min_tracks": (1, MAX_MIN_TRACKS)}

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._answer(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _answer(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]  # as the router matches it
        if (
            scope["method"] != "GET"
            or not path.startswith(self.PREFIX)
            or not path.endswith(self.SUFFIX)
        ):
            return None
        name = path[len(self.PREFIX) : -len(self.SUFFIX)]
        settings = self.services.settings
        store = self.services.opened_store()
        if not 1 <= len(name) <= MAX_NAME_CHARS or store is None:
            return None
        values = self._parameters(scope["query_string"])
        if values is None or not answers_on_the_event_loop(store, settings, {}, False):
            return None
        try:
            # `values` holds only PARAMETERS' keys (limit, min_tracks), both ints.
            answer = artists_like(store, name, lookup=True, **values)  # type: ignore[arg-type]
        except SoundalikeError:
            return None  # the route answers it, through the one error handler
        # The route it stands in for: metrics and logs label the request alike.
        scope["route"] = SIMILAR_ROUTE
        return ModelResponse(similar_artists_body(answer, False), exclude_unset=True)

    def _parameters(self, query: bytes) -> dict[str, int] | None:
        """`limit` and `min_tracks` as plain decimal integers in range, each at most once;
        None for anything else (the route validates and answers it)."""
        values: dict[str, int] = {}
        if not query:
            return values
        for pair in query.split(b"&"):
            key, separator, raw = pair.partition(b"=")
            name = key.decode("latin-1")
            bounds = self.PARAMETERS.get(name)
            if bounds is None or not separator or name in values:
                return None
            if not raw.isdigit() or len(raw) > 7:
                return None
            value = int(raw)
            if not bounds[0] <= value <= bounds[1]:
                return None
            values[name] = value
        return values


def similar_artists_body(answer: ArtistNeighbours, explain: bool) -> SimilarArtists:
    return SimilarArtists(
        artist=answer.artist.name,
        results=[SimilarArtistResult.from_result(r, explain) for r in answer.results],
    )


@router.get(
    "/{artist:artist_name}",
    summary="One artist and its tracks",
    response_model=ArtistDetail,
    responses=error_responses(401, 404, 422, 503),
)
def get_artist(
    store: StoreDep,
    artist: ArtistName,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Tracks per page (by album, then title).")
    ] = DEFAULT_TRACK_PAGE,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Tracks to skip.")] = 0,
) -> ModelResponse:
    # Sync (threadpool): a page scroll reads up to thousands of payloads, too long for the
    # event loop.
    found = resolve_artist(store, artist)
    tracks = store.artist_track_page(found.artist_key, limit=limit, offset=offset)
    return ModelResponse(
        ArtistDetail(
            artist=found.name,
            track_count=found.track_count,
            genres=found.genres,
            tracks=[TrackInfo.from_track(t) for t in tracks],
            limit=limit,
            offset=offset,
        )
    )
