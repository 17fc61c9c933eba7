"""Playback: `GET /tracks/{track_id}/audio` streams a stored track to a browser.

Only catalogue audio is ever served: the id is resolved by the store, and the file is the path
the store recorded at ingest, never anything taken from the request. Byte ranges are honoured
(206 + Content-Range; 416 when none of the asked range exists), so a browser can seek.

A file in a format browsers play (MP3, Ogg Vorbis/Opus, FLAC, PCM WAV, AAC in MP4, WebM) is sent
as it is; anything else (AIFF, WMA, ALAC, APE, ...) is decoded with PyAV and sent as MP3, kept
in a small in-memory cache so that range requests over it do not re-encode. `?excerpt=true`
sends exactly the samples that were embedded: the catalogue's excerpt policy applied to the
file, decoded like ingest decodes it (mono, the model's sample rate), as 16-bit WAV.

Tracks listed from a Subsonic server are proxied from that server's `stream` endpoint when the
Subsonic source is installed (ingest/sources/subsonic.py).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import threading
import wave
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import av
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse

from soundalike.api.deps import SettingsDep, StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import ErrorBody
from soundalike.api.settings import Settings
from soundalike.core.errors import AudioError, NotFound
from soundalike.core.types import Track
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.search.queries import require_track

log = logging.getLogger("soundalike.api")

router = APIRouter(prefix="/tracks", tags=["audio"])

CHUNK_BYTES = 64 * 1024
# Converted or excerpted audio kept for range requests: a few tracks' worth.
CACHE_MAX_BYTES = 96 * 1024 * 1024
CACHE_MAX_ENTRIES = 16
# A converted track is encoded at this rate (MP3 keeps the source rate when MP3 allows it).
MP3_BITRATE = 192_000
MP3_RATES = (48_000, 44_100, 32_000, 24_000, 22_050, 16_000)

# Containers and codecs browsers play natively, and the Content-Type to send them with.
PLAYABLE: dict[str, tuple[frozenset[str], str]] = {
    "mp3": (frozenset({"mp3"}), "audio/mpeg"),
    "ogg": (frozenset({"vorbis", "opus", "flac"}), "audio/ogg"),
    "flac": (frozenset({"flac"}), "audio/flac"),
    "wav": (frozenset({"pcm_s16le", "pcm_s24le", "pcm_u8", "pcm_f32le"}), "audio/wav"),
    "mov,mp4,m4a,3gp,3g2,mj2": (frozenset({"aac", "mp3"}), "audio/mp4"),
    "matroska,webm": (frozenset({"opus", "vorbis"}), "audio/webm"),
}
AUDIO_TYPES = ("audio/mpeg", "audio/ogg", "audio/flac", "audio/wav", "audio/mp4", "audio/webm")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class AudioUnavailable(NotFound):
    """The track is stored, but its audio cannot be read any more (moved, deleted, damaged)."""


def _audio_content() -> dict[str, Any]:
    return {kind: {"schema": {"type": "string", "format": "binary"}} for kind in AUDIO_TYPES}


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole track (`Accept-Ranges: bytes`).", "content": _audio_content()},
    206: {
        "description": "The byte range asked for with `Range: bytes=a-b` (`Content-Range`).",
        "content": _audio_content(),
    },
    416: {
        "description": "No byte of the asked range exists (`Content-Range: bytes */size`).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {"detail": {"type": "string"}},
                }
            }
        },
    },
}

TrackId = Annotated[UUID, PathParam(description="A track id, as listed by /artists/{artist}.")]


@router.get(
    "/{track_id}/audio",
    summary="The track's audio, for a player (byte ranges honoured)",
    description=(
        "Streams the stored track. Send `Range: bytes=a-b` to get part of it (206); a format "
        "browsers do not play (AIFF, WMA, ALAC, ...) is converted to MP3. `excerpt=true` gives "
        "exactly what was embedded (the catalogue's excerpt policy, mono, the model's sample "
        "rate) as WAV."
    ),
    response_class=Response,
    responses={**AUDIO_RESPONSES, **error_responses(401, 404, 422, 503, not_found=ErrorBody)},
)
def track_audio(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    track_id: TrackId,
    excerpt: Annotated[
        bool, Query(description="Only the embedded excerpt, as WAV (mono, model rate).")
    ] = False,
) -> Response:
    track = require_track(store, str(track_id))
    range_header = request.headers.get("range")
    if excerpt:
        spec = store.spec()
        if spec is None:  # the track was just read from the store, so this is a race
            raise AudioUnavailable("the catalogue's embedding spec is gone")
        policy = ExcerptPolicy.parse(spec.excerpt)
        if _from_a_server(track):  # a Subsonic track: its whole file, then the excerpt
            key: tuple[Any, ...] = (
                "excerpt",
                track.track_id,
                track.content_hash,
                spec.excerpt,
                spec.window_seconds,
            )
            content = _cached(
                key,
                lambda: _excerpt_of_download(
                    _upstream(track, settings, None), policy, spec.sample_rate, spec.window_seconds
                ),
            )
        else:
            path = _local_file(track)
            key = (
                "excerpt",
                track.track_id,
                _file_identity(path),
                spec.excerpt,
                spec.window_seconds,
            )
            content = _cached(
                key, lambda: _excerpt_wav(path, policy, spec.sample_rate, spec.window_seconds)
            )
        return _bytes_response(content, "audio/wav", range_header)
    upstream = _upstream(track, settings, range_header)
    if upstream is not None:
        return _proxied(upstream)
    path = _local_file(track)
    content_type = _playable_type(path)
    if content_type is not None:
        return _file_response(path, content_type, range_header)
    content = _cached(("mp3", track.track_id, _file_identity(path)), lambda: _to_mp3(path))
    return _bytes_response(content, "audio/mpeg", range_header)


# --- where the audio is ---------------------------------------------------------------------


def _local_file(track: Track) -> Path:
    if not track.path:
        raise AudioUnavailable(f"track '{track.track_id}' has no audio file on this server")
    path = Path(track.path)
    if not path.is_file():
        raise AudioUnavailable(
            f"the audio of track '{track.track_id}' is no longer where it was ingested from"
        )
    return path


def _file_identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _from_a_server(track: Track) -> bool:
    """Whether the track was listed by a Subsonic server (its audio lives there)."""
    try:
        from soundalike.ingest.sources.subsonic import parse_location
    except ImportError:  # the Subsonic source is not part of this installation
        return False
    return parse_location(track.path) is not None


def _upstream(track: Track, settings: Settings, range_header: str | None) -> Any | None:
    """The track's audio from the Subsonic server it came from (an UpstreamAudio, to be closed);
    None for any other track."""
    try:
        from soundalike.ingest.sources.subsonic import stream_for_track
    except ImportError:  # the Subsonic source is not part of this installation
        return None
    password = getattr(settings, "subsonic_password", None)
    api_key = getattr(settings, "subsonic_api_key", None)
    return stream_for_track(
        track,
        password.get_secret_value() if password is not None else None,
        api_key.get_secret_value() if api_key is not None else None,
        range_header,
    )


def _proxied(upstream: Any) -> Response:
    """The server's answer passed on: status, the headers that matter, the body as it comes."""
    passed = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges")
    headers = {k: v for k, v in upstream.headers.items() if k in passed}

    def chunks() -> Iterator[bytes]:
        try:
            yield from upstream.chunks
        finally:
            upstream.close()

    return StreamingResponse(
        chunks(),
        status_code=upstream.status,
        headers=headers,
        media_type=headers.get("Content-Type", "application/octet-stream"),
    )


def _excerpt_of_download(
    upstream: Any, policy: ExcerptPolicy, sample_rate: int, window_seconds: float
) -> bytes:
    """The excerpt of a file fetched whole from its server (into a temporary file, removed)."""
    if upstream is None:
        raise AudioUnavailable("the track's server did not send its audio")
    try:
        with tempfile.NamedTemporaryFile(prefix="soundalike-excerpt-") as local:
            for chunk in upstream.chunks:
                local.write(chunk)
            local.flush()
            return _excerpt_wav(Path(local.name), policy, sample_rate, window_seconds)
    finally:
        upstream.close()


# --- formats --------------------------------------------------------------------------------

_probe_cache: OrderedDict[tuple[str, int, int], str | None] = OrderedDict()
_probe_lock = threading.Lock()


def _playable_type(path: Path) -> str | None:
    """The Content-Type to send the file as when browsers play it as it is; None otherwise."""
    key = (str(path), *_file_identity(path))
    with _probe_lock:
        if key in _probe_cache:
            _probe_cache.move_to_end(key)
            return _probe_cache[key]
    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise AudioUnavailable(f"'{path.name}' has no audio stream")
            codec = streams[0].codec_context.codec.canonical_name  # "mp3", not "mp3float"
            container_format = container.format.name
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        log.warning("cannot probe %s: %s", path, error)
        raise AudioUnavailable("the track's audio file cannot be read") from error
    codecs, content_type = PLAYABLE.get(container_format, (frozenset(), ""))
    found = content_type if codec in codecs else None
    with _probe_lock:
        _probe_cache[key] = found
        while len(_probe_cache) > 1024:
            _probe_cache.popitem(last=False)
    return found


def _to_mp3(path: Path) -> bytes:
    """The whole file as MP3 (stereo or mono as the source, at a rate MP3 allows)."""
    out = io.BytesIO()
    try:
        with av.open(str(path)) as source, av.open(out, "w", format="mp3") as target:
            stream_in = source.streams.audio[0]
            channels = min(stream_in.codec_context.channels or 2, 2)
            rate = _mp3_rate(stream_in.codec_context.sample_rate or 44_100)
            stream_out = target.add_stream("libmp3lame", rate=rate)
            stream_out.bit_rate = MP3_BITRATE
            stream_out.layout = "stereo" if channels == 2 else "mono"
            resampler = av.AudioResampler(
                format=stream_out.codec_context.format, layout=stream_out.layout, rate=rate
            )
            for frame in source.decode(stream_in):
                frame.pts = None
                for converted in resampler.resample(frame):
                    target.mux(stream_out.encode(converted))
            for converted in resampler.resample(None):
                target.mux(stream_out.encode(converted))
            target.mux(stream_out.encode(None))
    except (av.FFmpegError, OSError, IndexError) as error:
        log.warning("cannot convert %s: %s", path, error)
        raise AudioUnavailable("the track's audio file cannot be converted for playback") from error
    return out.getvalue()


def _mp3_rate(rate: int) -> int:
    return min(MP3_RATES, key=lambda allowed: (abs(allowed - rate), -allowed))


def _excerpt_wav(
    path: Path, policy: ExcerptPolicy, sample_rate: int, window_seconds: float
) -> bytes:
    """The embedded window(s), back to back, as mono 16-bit WAV at the model's rate."""
    try:
        decoded = decode_excerpt(
            path,
            policy=policy,
            sample_rate=sample_rate,
            window_seconds=window_seconds,
            min_duration_seconds=0.0,
            silence_rms=0.0,
        )
    except AudioError as error:
        raise AudioUnavailable(f"the track's excerpt cannot be decoded: {error.detail}") from error
    samples = np.concatenate(decoded.windows) if decoded.windows else np.zeros(0, np.float32)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


# --- the bytes cache ------------------------------------------------------------------------

_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(key: tuple[Any, ...], make: Callable[[], bytes]) -> bytes:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    content = make()  # outside the lock: converting a track takes a while
    with _cache_lock:
        _cache[key] = content
        _cache.move_to_end(key)
        while len(_cache) > 1 and (
            len(_cache) > CACHE_MAX_ENTRIES or sum(map(len, _cache.values())) > CACHE_MAX_BYTES
        ):
            _cache.popitem(last=False)
    return content


# --- byte ranges ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """A syntactically valid range of which no byte exists."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range a `Range` header asks for, or None to send the whole body (no header,
    another unit, bad syntax or several ranges: RFC 9110 lets a server ignore those). Raises
    Unsatisfiable when the range starts past the end (or asks for a zero-length suffix)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def _unsatisfiable(size: int) -> Response:
    return JSONResponse(
        {"detail": f"the range asked for is outside the audio ({size} bytes)"},
        status_code=416,
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def _bytes_response(content: bytes, content_type: str, range_header: str | None) -> Response:
    size = len(content)
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, no-cache"}
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        return _unsatisfiable(size)
    if wanted is None:
        return Response(content, media_type=content_type, headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    return Response(
        content[wanted.start : wanted.end + 1],
        status_code=206,
        media_type=content_type,
        headers=headers,
    )


def _file_response(path: Path, content_type: str, range_header: str | None) -> Response:
    size, mtime_ns = _file_identity(path)
    etag = f'"{size:x}-{mtime_ns:x}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, no-cache"}
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        return _unsatisfiable(size)
    status = 200
    if wanted is None:
        wanted = ByteRange(0, size - 1)
    else:
        status = 206
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    headers["Content-Length"] = str(max(wanted.length, 0))
    try:
        handle = path.open("rb")  # opened now: a file gone by then is a 404, not a broken body
    except OSError as error:
        raise AudioUnavailable("the track's audio file cannot be read") from error

    def body() -> Iterator[bytes]:
        with handle:
            handle.seek(wanted.start)
            left = wanted.length
            while left > 0:
                chunk = handle.read(min(CHUNK_BYTES, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    return StreamingResponse(body(), status_code=status, media_type=content_type, headers=headers)
