"""What routes receive by injection: settings, the store, the upload embedder, the API-key check.

The objects come from the app's `Services` (the composition root, api/services.py), which the
lifespan opens and closes; routes ask for them through the `Annotated` aliases below, and tests
replace them with `app.dependency_overrides[get_store] = ...`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import Depends, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from soundalike.api.errors import NothingIngested, Unauthorized
from soundalike.api.services import Services
from soundalike.api.settings import Settings
from soundalike.core.errors import AudioError, CapacityExhausted
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.decode_pool import DecodeFunction, DecodePool, decode_job
from soundalike.ingest.library import Library
from soundalike.search.store import Store

log = logging.getLogger("soundalike.api")

# Seconds a client is told to wait when every embedding worker and queue slot is taken.
RETRY_AFTER_SECONDS = 5
# Limits on decoding one upload (untrusted input) in a decoder process. Wall time and CPU time
# stop a codec that loops; the address space stops one that allocates without end (PyAV and
# numpy alone take ~250 MB of it); the decoded-audio budget stops a small file that decodes to
# hours of samples (Matroska and files without a duration are decoded from their start).
UPLOAD_DECODE_TIMEOUT_SECONDS = 30.0
UPLOAD_DECODE_CPU_SECONDS = 20
UPLOAD_DECODE_MEMORY_MB = 1536
UPLOAD_MAX_DECODED_SECONDS = 3600.0


class UploadEmbedder:
    """Turns an uploaded file into a query vector with the stored collection's spec.

    An upload is admitted before its body is read (`admission`): at most `embed_concurrency`
    uploads are embedded and `embed_queue` more are received or waiting; past that a request
    gets CapacityExhausted (503 + Retry-After) at once, before it sends its body. Decoding runs
    in a pool of decoder processes (started on the first upload) with time, CPU, memory and
    decoded-audio limits, so a hostile file cannot take the server down; embedding runs in
    worker threads. Call `close` to stop the decoder processes.
    """

    def __init__(
        self,
        services: Services,
        *,
        decode: DecodeFunction = decode_job,
        decode_timeout_s: float = UPLOAD_DECODE_TIMEOUT_SECONDS,
        decode_cpu_s: int | None = UPLOAD_DECODE_CPU_SECONDS,
        decode_memory_mb: int | None = UPLOAD_DECODE_MEMORY_MB,
        max_decoded_seconds: float | None = UPLOAD_MAX_DECODED_SECONDS,
    ) -> None:
        self._services = services
        settings = services.settings
        self._workers = anyio.CapacityLimiter(settings.embed_concurrency)
        self._admitted = 0  # receiving + running + waiting; only touched on the event loop thread
        self._capacity = settings.embed_concurrency + settings.embed_queue
        self._describe_capacity = (
            f"all {settings.embed_concurrency} embedding workers are busy and "
            f"{settings.embed_queue} uploads are waiting; retry shortly"
        )
        self._pool_options: dict[str, Any] = {
            "decode": decode,
            "timeout_s": decode_timeout_s,
            "cpu_limit_s": decode_cpu_s,
            "memory_limit_mb": decode_memory_mb,
            "max_decoded_seconds": max_decoded_seconds,
        }
        self._pool: DecodePool | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    @property
    def admitted(self) -> int:
        """Uploads being received, embedded or waiting for a worker."""
        return self._admitted

    def decode_pool(self) -> DecodePool:
        """The decoder processes, started on first use (one per embedding worker)."""
        with self._pool_lock:
            if self._closed:
                raise CapacityExhausted(
                    "the server is shutting down; retry shortly",
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                )
            if self._pool is None:
                workers = self._services.settings.embed_concurrency
                self._pool = DecodePool(workers, max_in_flight=workers, **self._pool_options)
            return self._pool

    def close(self) -> None:
        """Stops the decoder processes; an upload decoding now gets an AudioError."""
        with self._pool_lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None:
            pool.close()

    def checked_spec(self, stored: EmbeddingSpec | None) -> EmbeddingSpec:
        """The spec uploads are embedded with: the stored collection's (refuses an empty one)."""
        if stored is None:
            raise NothingIngested(
                "nothing ingested yet: search by audio compares against stored tracks; "
                "run `soundalike ingest` first"
            )
        return stored

    def embed_file(self, path: Path, stored: EmbeddingSpec) -> tuple[np.ndarray, float]:
        """Decodes and embeds one file like the stored tracks were (blocking; runs in a worker).

        Returns the unit vector and the file's duration in seconds."""
        engine = self._services.engine_for(stored)
        audio = self.decode_pool().decode(path, engine.decoding, engine.sample_rate)
        if isinstance(audio, AudioError):
            raise audio
        return engine.embed([audio])[0], audio.duration_seconds

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Holds a worker-or-queue slot for a whole upload (receiving, decoding, embedding),
        or refuses with 503 + Retry-After at once. Enter it on the event loop thread."""
        self.admit()
        try:
            yield
        finally:
            self.release()

    def admit(self) -> None:
        """Takes a worker-or-queue slot now, or refuses with 503 + Retry-After."""
        if self._admitted >= self._capacity:
            raise CapacityExhausted(
                self._describe_capacity, retry_after_seconds=RETRY_AFTER_SECONDS
            )
        self._admitted += 1

    def release(self) -> None:
        self._admitted -= 1

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """Runs blocking embedding work on a worker thread, at most `embed_concurrency` at once.
        The caller holds an `admission`, which bounds how many wait here."""
        return await anyio.to_thread.run_sync(work, *args, limiter=self._workers)


# --- dependencies ------------------------------------------------------------------------


def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def get_store(request: Request) -> Store:
    # Async: a sync dependency costs every request a threadpool hop. Only opening the store
    # (once, or retried while a Qdrant server is down) blocks, and that goes to a thread.
    services = request.app.state.services
    store = services.opened_store()
    if store is not None:
        return store
    return await run_in_threadpool(services.store)


def get_library(request: Request) -> Library:
    return request.app.state.library


def get_upload_embedder(request: Request) -> UploadEmbedder:
    return request.app.state.upload_embedder


_bearer = HTTPBearer(
    auto_error=False,
    description="Only when the server sets SOUNDALIKE_API_KEY: `Authorization: Bearer <key>`.",
)


def _authorization(request: Request) -> bytes | None:
    return next(
        (value for name, value in request.scope["headers"] if name == b"authorization"), None
    )


def has_api_key(request: Request) -> bool:
    """True when no API key is configured or the request carries the exact key.

    The comparison runs in constant time on the raw header bytes (a non-ASCII key is sent as its
    UTF-8 bytes), so no header decoding can make two different keys look alike."""
    expected = get_settings(request).api_key
    if expected is None:
        return True
    scheme, _, given = (_authorization(request) or b"").strip().partition(b" ")
    matches = hmac.compare_digest(given.strip(), expected.get_secret_value().encode("utf-8"))
    return scheme.lower() == b"bearer" and matches


def require_api_key(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Open when no API key is configured; otherwise the exact key (401 otherwise)."""
    if not has_api_key(request):
        raise Unauthorized(
            "missing API key: send `Authorization: Bearer <key>`"
            if _authorization(request) is None
            else "wrong API key"
        )


class KeyFirstRoute(APIRoute):
    """The API key is checked before a JSON body is parsed: without the key a client gets 401
    whatever it sent, never a 400 or 422 about a body it may not send."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            require_api_key(request, None)
            return await handler(request)

        return answer


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
UploadEmbedderDep = Annotated[UploadEmbedder, Depends(get_upload_embedder)]
LibraryDep = Annotated[Library, Depends(get_library)]
