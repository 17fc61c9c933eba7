"""The composition root: the store, the embedder and the file→vector engine, built once from
`Settings`, in one place.

The CLI, the app's lifespan, the evaluation and the benchmarks all get their objects here;
nothing else opens a store or loads a model from settings. Tests pass their own openers.

- The store opens on first use (thread-safe); an app opens it at start-up.
- The model loads on first use: at most once per process, whatever the number of callers.
- `engine_for(stored_spec)` embeds like a stored catalogue (its excerpt and window) or says why
  it cannot (another model or layer is loaded).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from soundalike.api.settings import Settings
from soundalike.core.errors import FeatureOff, StoreError, StoreUnavailable
from soundalike.core.events import NO_EVENTS, EventStream
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.search.closing import Closing
from soundalike.search.store import Store, open_store

if TYPE_CHECKING:
    from soundalike.ingest.embed import MertEmbedder
    from soundalike.ingest.library import Library
    from soundalike.ingest.model import LoadedMert
    from soundalike.mixes.media_server import MediaServer
    from soundalike.mixes.schedule import MixesSchedule

log = logging.getLogger("soundalike.api")

# Opens the store for the settings; its upkeep reports to the event stream given.
StoreOpener = Callable[[Settings, EventStream], Store]
EmbedderLoader = Callable[[Settings, int], "MertEmbedder"]


# A long ingest waits out an ordinary Qdrant restart; an HTTP request fails fast instead (the
# store's default retry budget) and the client retries.
INGEST_RETRY_SECONDS = 300.0


def open_store_for(settings: Settings, events: EventStream = NO_EVENTS) -> Store:
    """The store the settings name: a Qdrant server when `qdrant_url` is set, else Edge;
    its upkeep reports to `events`."""
    return open_store(settings.store_config(), events=events)


def open_patient_store_for(settings: Settings, events: EventStream = NO_EVENTS) -> Store:
    """The same store, retrying a Qdrant server that stops answering for minutes (ingest)."""
    return open_store(settings.store_config(), retry_seconds=INGEST_RETRY_SECONDS, events=events)


def load_embedder_for(settings: Settings, layer: int) -> MertEmbedder:
    """The settings' model (hub id or local directory), truncated to `layer`, on the settings'
    device with their batch size: the one place an `Embedder` (ingest/engine.py) is built from
    settings; the flow gets it inside a VectorEngine and never knows the device."""
    from soundalike.ingest.embed import MertEmbedder

    loaded = load_model_for(settings, settings.model, settings.revision, layer)
    # Unset: sized to the device for the settings' window (ingest/autosize.py).
    return MertEmbedder(
        loaded, batch_size=settings.batch_size, window_seconds=settings.window_seconds
    )


def load_model_for(
    settings: Settings, model: str, revision: str | None, layer: int, precision: str | None = None
) -> LoadedMert:
    """A MERT checkpoint on the settings' device, in the settings' precision unless `precision`
    is given (the evaluation loads other models, and other precisions, this way)."""
    from soundalike.ingest.model import load_mert

    return load_mert(
        model,
        revision=revision,
        layer=layer,
        device=settings.device,
        precision=precision or settings.precision,
    )


def decoding_for(settings: Settings) -> Decoding:
    """How files are decoded for the settings (excerpt, window, minimum duration, silence)."""
    return Decoding(
        excerpt=ExcerptPolicy.parse(settings.excerpt),
        window_seconds=settings.window_seconds,
        min_duration_seconds=settings.min_duration_seconds,
        silence_rms=settings.silence_rms,
    )


class Services(Closing):
    """What one process works with, built from one `Settings`. Close it when done."""

    def __init__(
        self,
        settings: Settings,
        *,
        store_opener: StoreOpener = open_store_for,
        embedder_loader: EmbedderLoader = load_embedder_for,
        media_server_options: dict[str, Any] | None = None,
    ) -> None:
        """`media_server_options`: SubsonicClient keywords for the media server (tests: a
        transport, fewer retries)."""
        self.settings = settings
        self._media_server_options = dict(media_server_options or {})
        # The process's one event stream: components built here emit to it; progress bars,
        # the access log, the library's status and /metrics subscribe (core/events.py).
        self.events = EventStream()
        self.decoding = decoding_for(settings)
        self._store_opener = store_opener
        self._embedder_loader = embedder_loader
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._embedder: MertEmbedder | None = None
        self._embedder_lock = threading.Lock()
        self._memory_loader: threading.Thread | None = None
        self._closing = threading.Event()

    # --- the store -----------------------------------------------------------------------

    def opened_store(self) -> Store | None:
        """The store when it is open already (never blocks); None before the first open."""
        return self._store

    def store(self) -> Store:
        """The store, opened on first call. A server that cannot be reached is retried on the
        next call; a data dir owned by another process raises StoreLocked."""
        store = self._store
        if store is not None:
            return store
        with self._store_lock:
            if self._store is None:
                try:
                    opened = self._store_opener(self.settings, self.events)
                except StoreError:
                    raise
                except Exception as error:  # a refused connection, DNS, ...: say unavailable
                    log.warning("store cannot be opened: %s", error)
                    raise StoreUnavailable(
                        "the store cannot be opened; check SOUNDALIKE_QDRANT_URL or the data dir"
                    ) from error
                try:
                    warm_up(opened)
                except BaseException:
                    opened.close()
                    raise
                self._store = opened
            return self._store

    def open_store_now(self) -> None:
        """Opens the store at start-up when it can be reached; a server that is down yet is
        retried per request (readiness says 503 meanwhile), a locked data dir stops the start."""
        try:
            store = self.store()
        except StoreUnavailable as error:
            log.warning("store not reachable at start-up, will retry per request: %s", error)
            return
        if self.settings.artists_in_memory and not store.is_shared:
            # In the background: requests are answered from the store until it is read.
            self._memory_loader = threading.Thread(
                target=self._load_in_memory, args=(store,), name="soundalike-artists-in-memory"
            )
            self._memory_loader.start()

    def wait_until_in_memory(self, timeout: float | None = None) -> None:
        """Blocks until the start-up read of the artists into memory is over (if one runs)."""
        if self._memory_loader is not None:
            self._memory_loader.join(timeout)

    def _load_in_memory(self, store: Store) -> None:
        started = time.monotonic()
        try:
            if store.load_in_memory(self._closing):
                log.info(
                    "artists in memory: %d, read in %.1f s",
                    store.count_artists(),
                    time.monotonic() - started,
                )
        except Exception:  # the store keeps answering from disk; say why once
            if not self._closing.is_set():
                log.exception("reading the artists into memory failed; answering from the store")

    # --- the model -----------------------------------------------------------------------

    @property
    def embedder_loaded(self) -> bool:
        return self._embedder is not None

    def embedder(self, layer: int | None = None) -> MertEmbedder:
        """The model, loaded on first call with `layer` (default: the settings' layer)."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    wanted = self.settings.layer if layer is None else layer
                    self._embedder = self._embedder_loader(self.settings, wanted)
        return self._embedder

    def engine(self) -> VectorEngine:
        """Files → vectors with the settings' model, layer, excerpt and window (ingest, embed)."""
        return VectorEngine(self.embedder(), self.decoding)

    def engine_for(self, stored: EmbeddingSpec) -> VectorEngine:
        """Files → vectors exactly like the stored catalogue's (uploads), or SpecMismatch."""
        return VectorEngine(self.embedder(stored.layer), self.decoding).for_spec(stored)

    def load_model(
        self, model: str, revision: str | None, layer: int, precision: str | None = None
    ) -> LoadedMert:
        """Any checkpoint on the settings' device (the evaluation's layer sweeps), in the
        settings' precision unless `precision` is given (`--compare precision`)."""
        return load_model_for(self.settings, model, revision, layer, precision)

    # --- the listener's media server (mixes and playlists) ---------------------------------

    def media_server(self, url: str | None = None) -> MediaServer:
        """The Subsonic server at `url` (default: the settings' `mixes_url`) with the settings'
        credentials, as for `soundalike ingest subsonic+http://...`. The caller closes it."""
        from soundalike.mixes.media_server import MediaServer

        target = url if url is not None else self.settings.mixes_url
        if target is None:
            raise FeatureOff(
                "this server writes no playlists to a media server: set SOUNDALIKE_MIXES_URL "
                "to subsonic+http(s)://USER@HOST:PORT (and SOUNDALIKE_SUBSONIC_PASSWORD)"
            )
        password, api_key = self.settings.subsonic_password, self.settings.subsonic_api_key
        return MediaServer(
            target,
            password=password.get_secret_value() if password is not None else None,
            api_key=api_key.get_secret_value() if api_key is not None else None,
            **self._media_server_options,
        )

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self._closing.set()
        if self._memory_loader is not None:
            self._memory_loader.join()
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


def warm_up(store: Store) -> None:
    """Opens both collections and builds the artist-name index once, before requests share the
    store: the first `list_artists` otherwise pays for the index inside a request."""
    if store.spec() is not None:
        store.count_tracks()
        store.count_artists()
    store.artist_names()


def library_for(services: Services) -> Library:
    """The live library the settings describe (`state: off` when they name no folders); the
    app's lifespan starts and closes it."""
    from soundalike.ingest.library import Library

    config = services.settings.library_config()
    return Library(config, store=services.store, engine=services.engine, events=services.events)


def mixes_schedule_for(services: Services) -> MixesSchedule | None:
    """The mixes refresh the settings describe (None without `mixes_url`); the app's lifespan
    starts and closes it. The last run noted in the store sets when the next one is due."""
    from soundalike.ingest.sources.subsonic_client import ServerAddress
    from soundalike.mixes.media_server import owner_of
    from soundalike.mixes.run import refresh_mixes
    from soundalike.mixes.schedule import MixesSchedule

    settings = services.settings
    if settings.mixes_url is None:
        return None
    address = ServerAddress.parse(settings.mixes_url)
    options = settings.mix_options()
    last_run = None
    try:
        noted = services.store().media_server_record(owner_of(address)).get("last_mixes_run")
        last_run = noted if isinstance(noted, dict) else None
    except StoreError as error:  # a store not reachable yet: the schedule runs at start
        log.warning("the last mixes run cannot be read from the store: %s", error)
    return MixesSchedule(
        lambda trigger: refresh_mixes(services.media_server, services.store, options, trigger),
        server=address.display,
        every_s=settings.mixes_every,
        after_tracks=settings.mixes_after_tracks,
        last_run=last_run,
        events=services.events,
    )


def note_server_owner(services: Services) -> None:
    """An embedded store served over HTTP records the server's pid and URL in its data dir, so
    `soundalike ingest` refused the dir can name the server and hand it the folder instead."""
    import os

    settings = services.settings
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    # A server store has no data dir: it notes nothing.
    services.store().note_owner({"pid": os.getpid(), "url": f"http://{host}:{settings.port}"})
