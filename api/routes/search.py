"""Search by audio: an uploaded clip is embedded like the catalogue was and matched against it.

An upload takes its worker-or-queue slot before its body is read: when all are taken the client
gets 503 + Retry-After without sending the body, so concurrent uploads (temporary files, file
descriptors) are bounded. The body is streamed to a temporary file while its size is counted:
past `max_upload_mb` the request is refused at once (413), without reading the rest, and a
`Content-Length` over the limit is refused before anything is read. A body not received within
`SOUNDALIKE_UPLOAD_READ_SECONDS` is refused (422), so a slow client cannot hold a slot. The
temporary file is named without the client's suffix (FFmpeg identifies the content; a suffix
such as `.m3u8` would select a playlist demuxer) and is always removed. Decoding runs in a
separate process with limits (api/deps.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from soundalike.api.deps import StoreDep, UploadEmbedderDep
from soundalike.api.errors import UploadTooLarge, error_responses
from soundalike.api.schemas import ArtistScore, AudioMatches, TrackScore
from soundalike.core.errors import AudioError, InvalidRequest, UndecodableAudio
from soundalike.search.queries import MAX_LIMIT, like_vector
from soundalike.search.store import Store

router = APIRouter(prefix="/search", tags=["search"])

FILE_FIELD = "file"
# Room for the multipart framing and small form fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Seconds a client has to send the whole body of an upload (50 MB at ~7 Mbit/s).

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "An audio clip in any format FFmpeg reads "
                            "(at least a few seconds; only the excerpt the catalogue used is "
                            "embedded).",
                        }
                    },
                }
            }
        },
    }
}


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int = 0


@dataclass
class _FormState:
    """What the streaming multipart parser has seen so far."""

    limit: int
    destination: IO[bytes]
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    in_file_part: bool = False
    file_seen: bool = False
    filename: str = "upload"
    size: int = 0
    too_large: bool = False


def _multipart_parser(boundary: bytes, state: _FormState) -> MultipartParser:
    def on_part_begin() -> None:
        state.headers.clear()
        state.in_file_part = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.header_field.decode("latin-1").lower()] = bytes(state.header_value)
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD and not state.file_seen:
            state.in_file_part = state.file_seen = True
            raw = options.get(b"filename", b"upload").decode("utf-8", "replace")
            state.filename = os.path.basename(raw.replace("\\", "/")) or "upload"

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state.in_file_part or state.too_large:
            return
        state.size += end - start
        if state.size > state.limit:
            state.too_large = True  # checked after each chunk: stop reading there
            return
        state.destination.write(data[start:end])

    def on_part_end() -> None:
        state.in_file_part = False

    return MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"the upload is larger than the limit of {limit / 1048576:.3g} MB")


@contextlib.asynccontextmanager
async def received_upload(
    request: Request, limit: int, read_seconds: float
) -> AsyncIterator[ReceivedUpload]:
    """Streams the `file` part of a multipart request into a temporary file (removed on exit);
    InvalidRequest when the body has not arrived within `read_seconds`."""
    mime, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            f"send the clip as multipart/form-data with a `{FILE_FIELD}` field "
            f"(got Content-Type {mime.decode('latin-1') or 'none'!r})"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(limit)

    handle = tempfile.NamedTemporaryFile(prefix="soundalike-upload-", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        state = _FormState(limit=limit, destination=handle)
        parser = _multipart_parser(boundary, state)
        received = 0
        try:
            with anyio.fail_after(read_seconds):
                async for chunk in request.stream():
                    received += len(chunk)
                    # Small fields around the file are allowed; an endless body is not.
                    if received > limit + MULTIPART_OVERHEAD_BYTES:
                        raise _too_large(limit)
                    parser.write(chunk)
                    if state.too_large:
                        raise _too_large(limit)
            parser.finalize()
        except TimeoutError:
            raise InvalidRequest(
                f"the upload was not received within {read_seconds:g} s "
                f"({received} bytes arrived); send a shorter clip or use a faster connection"
            ) from None
        except MultipartParseError as error:
            raise InvalidRequest(f"malformed multipart body: {error}") from None
        except ClientDisconnect:
            raise InvalidRequest("the client disconnected during the upload") from None
        handle.close()
        if not state.file_seen:
            raise InvalidRequest(f"the form has no `{FILE_FIELD}` field")
        yield ReceivedUpload(path=path, filename=state.filename, size=state.size)
    finally:
        handle.close()
        path.unlink(missing_ok=True)


def _matches(store: Store, vector: np.ndarray, limit: int, max_per_artist: int) -> AudioMatches:
    found = like_vector(store, vector, limit=limit, max_per_artist=max_per_artist)
    return AudioMatches(
        tracks=[TrackScore.from_hit(h) for h in found.tracks],
        artists=[ArtistScore.from_hit(h) for h in found.artists],
    )


@router.post(
    "/audio",
    summary="Tracks and artists that sound like an uploaded clip",
    openapi_extra=UPLOAD_BODY,
    responses=error_responses(401, 409, 413, 415, 422, 503),
)
async def search_audio(
    request: Request,
    store: StoreDep,
    embedder: UploadEmbedderDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Results per list.")] = 10,
    max_per_artist: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="At most this many tracks per artist.")
    ] = 2,
) -> AudioMatches:
    # Admitted before the body is read: a full server answers 503 without receiving it.
    with embedder.admission():
        stored_spec = embedder.checked_spec(await run_in_threadpool(store.spec))
        limits = embedder.limits
        async with received_upload(request, limits.max_bytes, limits.read_seconds) as upload:
            if upload.size == 0:
                raise UndecodableAudio(upload.filename, "the file is empty")
            try:
                vector, _duration = await embedder.run(
                    embedder.embed_file, upload.path, stored_spec
                )
            except AudioError as error:
                # The decoder names the temporary file; the client knows its own file name.
                detail = error.detail.replace(str(upload.path), upload.filename)
                raise type(error)(upload.filename, detail) from None
    return await run_in_threadpool(_matches, store, vector, limit, max_per_artist)
