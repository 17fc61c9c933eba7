"""The catalogue map: `GET /map` gives every artist a 2-D position for the page to draw.

The projection (search/projection.py) reads every centroid, so it is computed once per catalogue
version and kept until the catalogue changes (any centroid write bumps the version)."""

from __future__ import annotations

import hashlib
import threading
import weakref

from fastapi import APIRouter, Request
from fastapi.responses import Response

from soundalike.api.deps import StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import CatalogueMapBody, MapArtist, ModelResponse
from soundalike.search.projection import catalogue_map
from soundalike.search.store import Store

router = APIRouter(tags=["map"])

# Per store: (cache key, the serialised body, its ETag). A lock per store, so concurrent first
# requests compute the map once.
_maps: weakref.WeakKeyDictionary[Store, tuple[tuple[str | None, int], bytes, str]] = (
    weakref.WeakKeyDictionary()
)
# The body is megabytes at 100k artists: browsers revalidate (ETag) instead of downloading again.
CACHE_CONTROL = "private, no-cache"
_locks: weakref.WeakKeyDictionary[Store, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


@router.get(
    "/map",
    summary="Every artist on a 2-D map of the catalogue (PCA of the centroids)",
    response_model=CatalogueMapBody,
    responses={
        304: {"description": "Unchanged since the `If-None-Match` ETag: no body."},
        **error_responses(401, 503),
    },
)
def get_map(store: StoreDep, request: Request) -> Response:
    with _locks_guard:
        lock = _locks.setdefault(store, threading.Lock())
    with lock:
        # The artist count joins the version: a store written before versions existed has none.
        key = (store.catalogue_version(), store.count_artists())
        cached = _maps.get(store)
        if cached is None or cached[0] != key:
            computed = catalogue_map(store)
            body = CatalogueMapBody(
                artists=[
                    MapArtist(
                        artist=p.artist, x=p.x, y=p.y, track_count=p.track_count, genre=p.genre
                    )
                    for p in computed.points
                ],
                projection=computed.projection,
            )
            # Serialised once per catalogue version (bytes: Response.body may be a memoryview).
            content = bytes(ModelResponse(body).body)
            etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
            cached = _maps[store] = (key, content, etag)
    _, content, etag = cached
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    wanted = {
        t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")
    }
    if etag in wanted:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)
