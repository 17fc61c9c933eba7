"""Uploads embedded as queries: admission (a bounded worker pool and queue), decoding in
limited processes, embedding like the stored catalogue.

Built once per app from its `Services`; routes receive it through `UploadEmbedderDep`
(api/deps.py). A refused upload is told to the process's event stream (`UploadRejected`), which
/metrics counts; its queue depth is read at each scrape (`admitted`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from soundalike.api.errors import NothingIngested
from soundalike.api.services import Services
from soundalike.core.errors import AudioError, CapacityExhausted
from soundalike.core.events import UploadRejected
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.decode_pool import DecodeFunction, DecodePool, decode_job

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


@dataclass(frozen=True)
class UploadLimits:
    """The settings section of uploads (`Settings.upload_limits()`)."""

    concurrency: int = 1  # uploads embedded at once
    queue: int = 4  # more uploads allowed to wait for a worker
    max_bytes: int = 50 * 1024 * 1024
    read_seconds: float = 60.0  # the whole body must have arrived by then


class UploadEmbedder:
    """Turns an uploaded file into a query vector with the stored collection's spec.

    An upload is admitted before its body is read (`admission`): at most `limits.concurrency`
    uploads are embedded and `limits.queue` more are received or waiting; past that a request
    gets CapacityExhausted (503 + Retry-After) at once, before it sends its body. Decoding runs
    in a pool of decoder processes (started on the first upload) with time, CPU, memory and
    decoded-audio limits, so a hostile file cannot take the server down; embedding runs in
    worker threads. Call `close` to stop the decoder processes.
    """

    def __init__(
        self,
        services: Services,
        limits: UploadLimits,
        *,
        decode: DecodeFunction = decode_job,
        decode_timeout_s: float = UPLOAD_DECODE_TIMEOUT_SECONDS,
        decode_cpu_s: int | None = UPLOAD_DECODE_CPU_SECONDS,
        decode_memory_mb: int | None = UPLOAD_DECODE_MEMORY_MB,
        max_decoded_seconds: float | None = UPLOAD_MAX_DECODED_SECONDS,
    ) -> None:
        self._services = services
        self.limits = limits
        self._workers = anyio.CapacityLimiter(limits.concurrency)
        self._admitted = 0  # receiving + running + waiting; only touched on the event loop thread
        self._capacity = limits.concurrency + limits.queue
        self._describe_capacity = (
            f"all {limits.concurrency} embedding workers are busy and "
            f"{limits.queue} uploads are waiting; retry shortly"
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
                workers = self.limits.concurrency
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
            self._services.events.emit(UploadRejected())
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
