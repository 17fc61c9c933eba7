"""The live library over HTTP: its state, its failures, a rescan, and progress as server-sent
events (a front end follows a scan without polling)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from soundalike.api.deps import EventStreamDep, LibraryDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import ErrorBody
from soundalike.core.events import Event, LibraryChanged

router = APIRouter(tags=["library"])

# A server-sent event stream sends at most one event per interval (a scan changes the state per
# file), looks at least this often whether the server is stopping, and stays silent at most
# KEEP_ALIVE_SECONDS before a keep-alive comment (proxies drop idle connections).
EVENT_MIN_INTERVAL_SECONDS = 0.3
WAKE_AT_LEAST_SECONDS = 1.0
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
async def library_events(library: LibraryDep, stream: EventStreamDep) -> StreamingResponse:
    """The library's state as a stream of server-sent events."""

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake(event: Event) -> None:
            # A sink of the process's event stream: the library's own news wakes the stream.
            if isinstance(event, LibraryChanged) or getattr(event, "origin", None) == "library":
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = stream.subscribe(wake)
        try:
            seen = -1
            last_sent = time.monotonic()
            while True:
                changed.clear()  # before reading the version: a change after it wakes us
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), WAKE_AT_LEAST_SECONDS)
                await asyncio.sleep(EVENT_MIN_INTERVAL_SECONDS)  # a few events a second at most
        finally:
            unsubscribe()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
