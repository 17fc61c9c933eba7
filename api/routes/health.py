"""Liveness and readiness: open even when an API key is required."""

from __future__ import annotations

from fastapi import APIRouter

from soundalike.api.deps import StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import Health, Readiness
from soundalike.search.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the store answers",
    responses=error_responses(503),
)
def readyz(store: StoreDep) -> Readiness:
    if not store.ping():
        raise StoreUnavailable("the store does not answer")
    return Readiness(status="ready", artists=store.count_artists(), tracks=store.count_tracks())
