"""The live library over HTTP: its state, its failures, a rescan, and progress as server-sent
events (a front end follows a scan without polling)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from soundalike.api.deps import LibraryDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import ErrorBody

router = APIRouter(tags=["library"])

# How often a server-sent event stream looks for a change (at most this many events a second),
# and how long it stays silent before a keep-alive comment (proxies drop idle connections).
EVENT_POLL_SECONDS = 0.3
KEEP_ALIVE_SECONDS = 15.0


class LibraryFailure(BaseModel):
    path: str
    reason: str


class LibraryState(BaseModel):
    state: Literal["off", "scanning", "watching", "idle"] = Field(
        description="`off`: no library folders; `scanning`: a scan or a batch of changes is "
        "being ingested; `watching`: following file-system events; `idle`: periodic rescans only."
    )
    roots: list[str]
    files_seen: int = Field(description="Audio files found in the library folders.")
    queued: int = Field(description="Files waiting to be ingested.")
    ingested: int = Field(description="Files ingested since the server started.")
    failed: int = Field(description="Files that currently cannot be ingested (see failures).")
    removed: int = Field(description="Tracks removed since the server started (files gone).")
    last_scan_started: str | None
    last_scan_finished: str | None
    eta_seconds: float | None = Field(description="Estimated seconds left while scanning.")
    failures: list[LibraryFailure] = Field(description="The 20 most recent failures.")


class LibraryFailures(BaseModel):
    failures: list[LibraryFailure]
    total: int
    limit: int
    offset: int


class ScanRequest(BaseModel):
    path: str | None = Field(
        None,
        max_length=4096,
        description="A folder or file on the server to scan now (under a library folder, or any "
        "folder when the server allows adding folders); absent: rescan every folder.",
    )


# One server-sent event: `event: status` and, as `data`, the GET /library document as JSON.
_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["status"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}

_OFF = {"model": ErrorBody, "description": "The server follows no library folders."}


@router.get("/library", response_model=LibraryState, responses=error_responses(401))
def library_state(library: LibraryDep) -> LibraryState:
    """The library's state: what is being scanned, counts, recent failures and an ETA."""
    return LibraryState.model_validate(library.status().to_dict())


@router.get(
    "/library/failures", response_model=LibraryFailures, responses=error_responses(401, 422)
)
def library_failures(
    library: LibraryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> LibraryFailures:
    """Files that cannot be ingested, with the reason, most recent first."""
    failures, total = library.failures(limit=limit, offset=offset)
    return LibraryFailures(
        failures=[LibraryFailure(**f) for f in failures], total=total, limit=limit, offset=offset
    )


@router.post(
    "/library/scan",
    status_code=202,
    response_model=LibraryState,
    responses={**error_responses(400, 401, 422), 409: _OFF},
)
def library_scan(
    library: LibraryDep, request: Annotated[ScanRequest | None, Body()] = None
) -> LibraryState:
    """Rescan now: every library folder, or one folder or file (`path`)."""
    library.request_scan(request.path if request is not None else None)
    return LibraryState.model_validate(library.status().to_dict())


@router.get(
    "/library/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `status`, whose data is the `GET /library` JSON, "
            "at once and on every change (a few a second at most). With the library off, the "
            "one event and the end of the stream.",
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        **error_responses(401),
    },
)
async def library_events(library: LibraryDep) -> StreamingResponse:
    """The library's state as a stream of server-sent events."""

    async def events() -> AsyncIterator[str]:
        seen = -1
        last_sent = time.monotonic()
        while True:
            version = library.version
            if version != seen:
                seen = version
                last_sent = time.monotonic()
                document = library.status().to_dict()
                yield f"event: status\ndata: {json.dumps(document, ensure_ascii=False)}\n\n"
                if not library.enabled:
                    return  # nothing will change: the stream ends
            elif time.monotonic() - last_sent >= KEEP_ALIVE_SECONDS:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            if library.closed:  # the server is stopping
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
