"""`GET /metrics`: Prometheus' text format, behind the API key like every other route."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from soundalike.api.deps import MetricsDep
from soundalike.api.errors import error_responses

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Requests, ingest, store upkeep, library and uploads, in Prometheus' "
            "text exposition format (scrape with `Authorization: Bearer <key>` when the server "
            "has one).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **error_responses(401),
    },
)
def metrics(metrics: MetricsDep) -> Response:
    # Sync (threadpool): collecting reads the store's counts.
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
