"""How failures reach HTTP clients: one handler maps domain errors to a status and a body.

Every error body is `{"detail": "<one readable sentence>"}`; an unknown artist adds `suggestions`.
Anything not raised on purpose becomes a generic 500 naming the request id (the traceback goes to
the log, never to the client). The request middleware here also assigns request ids and writes
the access log, because the last-resort 500 needs both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soundalike.api.schemas import ArtistNotFoundBody, ErrorBody
from soundalike.core.errors import (
    ArtistNotFound,
    AudioError,
    CapacityExhausted,
    Conflict,
    EmptyTaste,
    FeatureOff,
    InvalidRequest,
    ModelError,
    NotFound,
    SoundalikeError,
    SpecMismatch,
    StoreError,
    StoreLocked,
    UndecodableAudio,
)
from soundalike.core.events import Event, EventStream, RequestServed
from soundalike.ingest.library.library import LibraryOff
from soundalike.ingest.sources.subsonic_client import (
    SubsonicError,
    SubsonicNotFound,
    SubsonicUnavailable,
)

log = logging.getLogger("soundalike.api")
access_log = logging.getLogger("soundalike.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own request id is echoed only when it is short and plain (it lands in logs).
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# --- errors that only the HTTP layer raises ----------------------------------------------


class Unauthorized(SoundalikeError):
    """Missing or wrong API key."""


class UploadTooLarge(SoundalikeError):
    """The upload is bigger than `max_upload_mb`."""


class NothingIngested(SoundalikeError):
    """Search by audio needs a stored embedding spec; the store is still empty."""


# Most specific class first wins: the lookup walks each error's MRO.
STATUS_BY_ERROR: dict[type[SoundalikeError], int] = {
    Unauthorized: 401,
    NotFound: 404,
    NothingIngested: 409,
    LibraryOff: 409,
    FeatureOff: 409,
    Conflict: 409,
    EmptyTaste: 409,
    SpecMismatch: 409,
    UploadTooLarge: 413,
    UndecodableAudio: 415,
    AudioError: 422,  # too short, silent
    InvalidRequest: 422,
    StoreError: 503,  # unavailable, locked; a media server that does not answer
    SubsonicNotFound: 404,
    SubsonicUnavailable: 503,
    SubsonicError: 502,  # a media server that refused a request
    CapacityExhausted: 503,
    ModelError: 503,
}


def status_of(error: SoundalikeError) -> int:
    for klass in type(error).__mro__:
        status = STATUS_BY_ERROR.get(klass)
        if status is not None:
            return status
    return 500


def error_responses(
    *statuses: int, not_found: type[ErrorBody] = ArtistNotFoundBody
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status documented with the error model."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = not_found if status == 404 else ErrorBody
        documented[status] = {"model": model, "description": _DESCRIPTIONS[status]}
    return documented


_DESCRIPTIONS = {
    400: "A request body that cannot be parsed (not JSON, not UTF-8).",
    401: "Missing or wrong API key (`Authorization: Bearer <key>`).",
    404: "Unknown artist (with `suggestions`) or track.",
    409: "Nothing ingested yet, the server's model differs from the catalogue's, a feature "
    "this server is not set up for, or a name that is taken.",
    413: "Upload larger than the server's limit.",
    415: "Not multipart, or a file that is not readable audio.",
    422: "Bad parameters, or audio too short or silent.",
    500: "Unexpected failure: a generic message with the request id (details in the log).",
    502: "The media server refused the request (its reason in `detail`).",
    503: "Store or media server unavailable, or every embedding worker busy (see `Retry-After`).",
}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


async def domain_error_handler(request: Request, error: Exception) -> JSONResponse:
    """The one mapping from soundalike's errors to HTTP."""
    assert isinstance(error, SoundalikeError)
    status = status_of(error)
    if status == 500:  # a SoundalikeError no mapping covers: still never echoed
        return internal_error_response(request, error)
    body: dict[str, Any] = {"detail": error.message}
    headers: dict[str, str] = {}
    if isinstance(error, ArtistNotFound):
        body["suggestions"] = error.suggestions
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        # The real cause (a URL, a path, a server's reply) goes to the log; clients get a
        # fixed sentence and the request id to quote.
        request_id = request_id_of(request)
        log.warning("request %s: %s", request_id, error.message)
        headers["Retry-After"] = str(
            error.retry_after_seconds
            if isinstance(error, CapacityExhausted)
            else UNAVAILABLE_RETRY_AFTER_SECONDS
        )
        body["detail"] = unavailable_detail(error, request_id)
    return JSONResponse(body, status_code=status, headers=headers)


# Seconds a client is told to wait before retrying a store or model outage.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


def unavailable_detail(error: SoundalikeError, request_id: str) -> str:
    """The fixed sentence a 503 carries: what is wrong, never the internals of why."""
    if isinstance(error, CapacityExhausted):
        return error.message  # our own words: how many workers, nothing internal
    if isinstance(error, SubsonicError):
        what = "the media server does not answer or refuses soundalike's credentials"
    elif isinstance(error, StoreLocked):
        what = "the store's data dir is in use by another soundalike process"
    elif isinstance(error, StoreError):
        what = "the store is not reachable"
    elif isinstance(error, ModelError):
        what = "the model is not available on this server"
    else:
        what = "the service is unavailable"
    return f"{what}; retry shortly (request id {request_id})"


async def validation_error_handler(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's parameter errors, re-shaped so `detail` is one readable string."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": describe_validation(error.errors())}, status_code=422)


def describe_validation(errors: Iterable[Any]) -> str:
    problems = []
    for problem in errors:
        # loc is ("query", "limit") or ("path", "track_id"): the parameter is what users know.
        location = [str(part) for part in problem.get("loc", ())[1:]]
        name = ".".join(location) or "request"
        problems.append(f"{name}: {problem.get('msg', 'invalid value')}")
    return "; ".join(problems) or "invalid request"


def internal_error_response(
    request: Request | None, error: BaseException, *, request_id: str | None = None
) -> JSONResponse:
    request_id = request_id or (request_id_of(request) if request is not None else "-")
    log.error("request %s failed", request_id, exc_info=error)
    return JSONResponse(
        {"detail": f"internal error; quote request id {request_id} to the operator"},
        status_code=500,
        headers={REQUEST_ID_HEADER: request_id},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SoundalikeError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)


# --- request ids, access log, last-resort 500 ---------------------------------------------


class RequestContextMiddleware:
    """Assigns a request id (or honours the client's), logs one JSON line per request, and turns
    any exception that escaped the app into a generic 500 (pure ASGI: no per-request task)."""

    def __init__(
        self,
        app: ASGIApp,
        events: EventStream,
        request_timeout_seconds: float | None = None,
    ) -> None:
        self.app = app
        self.events = events
        self.request_timeout_seconds = request_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        timed_out = False

        async def send_unless_timed_out(message: Message) -> None:
            if not timed_out:  # the deadline's 503 went out: later messages go nowhere
                await send_with_id(message)

        try:
            if self.request_timeout_seconds is None:
                await self.app(scope, receive, send_with_id)
            else:
                handling = asyncio.ensure_future(self.app(scope, receive, send_unless_timed_out))
                done, _ = await asyncio.wait({handling}, timeout=self.request_timeout_seconds)
                if not done and not response_started:
                    # Work in a thread cannot be interrupted: let it finish unobserved, answer
                    # the client now.
                    timed_out = True
                    handling.add_done_callback(_log_late_failure)
                    response = deadline_response(request_id, self.request_timeout_seconds)
                    await response(scope, receive, send_with_id)
                else:
                    await handling
        except Exception as error:  # the last resort: nothing else caught it
            if response_started:
                raise
            response = internal_error_response(None, error, request_id=request_id)
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            self.events.emit(
                RequestServed(
                    method=scope["method"],
                    route=getattr(route, "path_format", None),
                    path=scope["path"],
                    status=status,
                    seconds=time.perf_counter() - started,
                    request_id=request_id,
                )
            )


def log_access(event: Event) -> None:
    """The access log, a sink of the event stream: one JSON line per request."""
    if isinstance(event, RequestServed) and access_log.isEnabledFor(logging.INFO):
        access_log.info(
            access_line(
                event.request_id, event.method, event.path, event.status, event.seconds * 1000
            )
        )


# The access log's JSON object, filled in by string formatting: a json.dumps of a dict per
# request cost more than the rest of the middleware. The request id needs no escaping (ours is
# hex, a client's must match _CLIENT_REQUEST_ID); method and path are escaped like json.dumps
# with ensure_ascii=False would.
_ACCESS_LINE = '{"request_id": "%s", "method": %s, "path": %s, "status": %d, "latency_ms": %r}'
_json_string = json.encoder.encode_basestring


def access_line(request_id: str, method: str, path: str, status: int, latency_ms: float) -> str:
    """One access-log line: the same JSON object (and text) `json.dumps` would write."""
    return _ACCESS_LINE % (
        request_id,
        _json_string(method),
        _json_string(path),
        status,
        round(latency_ms, 2),
    )


def deadline_response(request_id: str, seconds: float) -> JSONResponse:
    log.warning("request %s: no answer within %g s", request_id, seconds)
    return JSONResponse(
        {"detail": f"no answer within {seconds:g} s; retry shortly (request id {request_id})"},
        status_code=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


def _log_late_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a request that passed its deadline failed later", exc_info=task.exception())


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _CLIENT_REQUEST_ID.match(text) else None
    return None
