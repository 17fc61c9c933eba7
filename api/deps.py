"""What routes receive by injection: settings, the store, the audio embedder, the API-key check.

The objects live on `app.state` (created once by `create_app`, opened in the lifespan); routes ask
for them through the `Annotated` aliases below, and tests replace them with
`app.dependency_overrides[get_store] = ...`.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import numpy as np
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from soundalike.api.errors import NothingIngested, Unauthorized
from soundalike.api.settings import Settings
from soundalike.search.errors import CapacityExhausted, SpecMismatch, StoreError, StoreUnavailable
from soundalike.search.store import Store, open_store
from soundalike.search.types import EmbeddingSpec

if TYPE_CHECKING:
    from soundalike.ingest.embed import MertEmbedder

log = logging.getLogger("soundalike.api")

# Seconds a client is told to wait when every embedding worker and queue slot is taken.
RETRY_AFTER_SECONDS = 5


def open_store_for(settings: Settings) -> Store:
    return open_store(**settings.store_options())


class StoreHolder:
    """The app's one store, opened at start-up or, if the server was down then, on first use."""

    def __init__(self, settings: Settings, opener: Callable[[Settings], Store] = open_store_for):
        self._settings = settings
        self._opener = opener
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                store = self._opener(self._settings)
                try:
                    warm_up(store)
                except BaseException:
                    store.close()
                    raise
                self._store = store
            return self._store

    def open(self) -> None:
        """Opens now; a store that cannot be reached yet is retried on the next request (the
        app still starts, /readyz says 503), a locked data dir stops the start."""
        try:
            self.get()
        except StoreUnavailable as error:
            log.warning("store not reachable at start-up, will retry per request: %s", error)

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


def warm_up(store: Store) -> None:
    """Touches both collections and the artist-name index once, single-threaded.

    The Edge backend opens its shards lazily without a lock; two request threads opening the
    same shard at once would collide on its WAL lock, so nothing may be opened lazily later.
    """
    if store.spec() is not None:
        store.count_tracks()
        store.count_artists()
    store.artist_names()


class AudioEmbedder:
    """Turns an uploaded file into a query vector with the stored collection's spec.

    The model loads once (at start-up or on the first upload). Embedding runs in worker
    threads, at most `embed_concurrency` at a time with at most `embed_queue` waiting; past that
    a request gets CapacityExhausted (503 + Retry-After) at once instead of queueing forever.
    """

    def __init__(
        self, settings: Settings, loader: Callable[[Settings, int], MertEmbedder] | None = None
    ) -> None:
        self._settings = settings
        self._loader = loader or _load_embedder
        self._embedder: MertEmbedder | None = None
        self._load_lock = threading.Lock()
        self._workers = anyio.CapacityLimiter(settings.embed_concurrency)
        self._admitted = 0  # running + waiting; only touched on the event loop thread
        self._capacity = settings.embed_concurrency + settings.embed_queue

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def load(self, layer: int | None = None) -> MertEmbedder:
        """The embedder, loaded on first call (thread-safe: one load however many callers)."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    self._embedder = self._loader(
                        self._settings, self._settings.layer if layer is None else layer
                    )
        return self._embedder

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
        from soundalike.ingest.audio import ExcerptPolicy, decode_excerpt

        embedder = self.load(stored.layer)
        served = embedder.build_spec(stored.excerpt, stored.window_seconds)
        differences = served.differences(stored)
        if differences:
            described = "; ".join(
                f"{name}: server {mine!r}, catalogue {theirs!r}"
                for name, (mine, theirs) in differences.items()
            )
            raise SpecMismatch(
                "this server's model does not embed like the stored catalogue "
                f"({described}); restart it with the catalogue's --model/--layer"
            )
        audio = decode_excerpt(
            path,
            policy=ExcerptPolicy.parse(stored.excerpt),
            sample_rate=embedder.sample_rate,
            window_seconds=stored.window_seconds,
            min_duration_seconds=self._settings.min_duration_seconds,
            silence_rms=self._settings.silence_rms,
        )
        return embedder.embed_track(audio.windows), audio.duration_seconds

    def admit(self) -> None:
        """Takes a worker-or-queue slot now, or refuses with 503 + Retry-After."""
        if self._admitted >= self._capacity:
            raise CapacityExhausted(
                f"all {self._settings.embed_concurrency} embedding workers are busy and "
                f"{self._settings.embed_queue} uploads are waiting; retry shortly",
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        self._admitted += 1

    def release(self) -> None:
        self._admitted -= 1

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """Runs blocking embedding work on a worker thread, within the pool's limits."""
        self.admit()
        try:
            return await anyio.to_thread.run_sync(work, *args, limiter=self._workers)
        finally:
            self.release()


def _load_embedder(settings: Settings, layer: int) -> MertEmbedder:
    from soundalike.ingest.embed import load_embedder

    return load_embedder(
        settings.model,
        revision=settings.revision,
        layer=layer,
        device=settings.device,
        batch_size=settings.batch_size,
    )


# --- dependencies ------------------------------------------------------------------------


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    try:
        return request.app.state.stores.get()
    except StoreError:
        raise
    except Exception as error:  # a server that refuses connections, DNS, ...
        raise StoreUnavailable(f"the store cannot be opened: {error}") from error


def get_audio_embedder(request: Request) -> AudioEmbedder:
    return request.app.state.audio_embedder


_bearer = HTTPBearer(
    auto_error=False,
    description="Only when the server sets SOUNDALIKE_API_KEY: `Authorization: Bearer <key>`.",
)


def require_api_key(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Open when no API key is configured; otherwise the exact key, compared in constant time.

    The comparison runs on the raw header bytes (a non-ASCII key is sent as its UTF-8 bytes),
    so no header decoding can make two different keys look alike."""
    expected = get_settings(request).api_key
    if expected is None:
        return
    raw = next(
        (value for name, value in request.scope["headers"] if name == b"authorization"), None
    )
    scheme, _, given = (raw or b"").strip().partition(b" ")
    matches = hmac.compare_digest(given.strip(), expected.get_secret_value().encode("utf-8"))
    if raw is None or scheme.lower() != b"bearer" or not matches:
        raise Unauthorized(
            "missing API key: send `Authorization: Bearer <key>`"
            if raw is None
            else "wrong API key"
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
EmbedderDep = Annotated[AudioEmbedder, Depends(get_audio_embedder)]
