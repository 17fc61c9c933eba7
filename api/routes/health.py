"""Liveness and readiness: open even when an API key is required."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from soundalike.api.deps import KeyCheckDep, StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import Health, Readiness
from soundalike.core.errors import StoreUnavailable

router = APIRouter(tags=["health"])

# Always the same answer: serialised once, not per probe.
HEALTHY_BODY = Health(status="ok").model_dump_json().encode()


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Response:
    # On the event loop, never the store: a stuck store must not fail liveness.
    return Response(HEALTHY_BODY, media_type="application/json")


@router.get(
    "/readyz",
    summary="Readiness: the store answers",
    responses=error_responses(503),
    response_model_exclude_none=True,
)
def readyz(request: Request, store: StoreDep, keys: KeyCheckDep) -> Readiness:
    """Open to probes; the catalogue's size only for callers with the API key (when one is set)."""
    if not store.ping():
        raise StoreUnavailable("the store does not answer")
    if not keys.has_key(request.scope):
        return Readiness(status="ready")
    return Readiness(
        status="ready",
        artists=store.count_artists(),
        tracks=store.count_tracks(),
        lookups_in_memory=store.answers_from_memory(),
    )
