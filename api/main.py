"""The FastAPI application: `create_app(settings)` assembles lifespan, routers, middleware and
error handlers. Routes live in api/routes/, injected objects in api/deps.py."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from soundalike.api.auth import KeyCheck, KeyCheckMiddleware
from soundalike.api.errors import (
    REQUEST_ID_HEADER,
    RequestContextMiddleware,
    install_error_handlers,
    log_access,
)
from soundalike.api.metrics import Metrics
from soundalike.api.routes import (
    artists,
    audio,
    audiomuse,
    health,
    library,
    mixes,
    pages,
    playlists,
    radio,
    search,
    similarity,
    tracks,
)
from soundalike.api.routes import map as catalogue_map
from soundalike.api.routes import metrics as metrics_route
from soundalike.api.services import (
    Services,
    library_for,
    mixes_schedule_for,
    note_server_owner,
)
from soundalike.api.settings import Settings
from soundalike.api.uploads import UploadEmbedder
from soundalike.core.errors import SoundalikeError

log = logging.getLogger("soundalike.api")

DESCRIPTION = (
    "Which artists sound like X? Answers from the audio itself (MERT embeddings in Qdrant).\n\n"
    'Every error is `{"detail": "..."}`; an unknown artist adds `suggestions`. When the server '
    "has an API key, every route but /healthz and /readyz needs `Authorization: Bearer <key>`."
)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The API. Reads the environment (`Settings()`) only when neither settings nor services
    are given. Services passed in belong to the caller; services the app builds, its lifespan
    opens and closes."""
    if services is None:
        services = Services(settings if settings is not None else Settings())
        owned = True
    else:
        owned = False
    settings = services.settings
    _configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running: Services = app.state.services
        await run_in_threadpool(running.open_store_now)
        if settings.load_model == "startup":
            await run_in_threadpool(_load_model_now, running)
        await run_in_threadpool(_note_owner, running)
        # The library scans in the background: the server answers at once.
        await run_in_threadpool(app.state.library.start)
        mixes = app.state.mixes = await run_in_threadpool(mixes_schedule_for, running)
        if mixes is not None:
            http_sinks.append(running.events.subscribe(mixes))
            mixes.start()
        try:
            yield
        finally:
            for unsubscribe in http_sinks:
                unsubscribe()
            if mixes is not None:
                await run_in_threadpool(mixes.close)  # a refresh under way finishes first
            await run_in_threadpool(app.state.library.close)  # stops after the current file
            await run_in_threadpool(app.state.upload_embedder.close)  # the decoder processes
            if owned:
                await run_in_threadpool(running.close)

    app = FastAPI(
        title="soundalike",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    uploads = app.state.upload_embedder = UploadEmbedder(services, settings.upload_limits())
    app.state.library = library_for(services)
    # Built by the lifespan (it reads the last run from the store); None: no mixes.
    app.state.mixes = None
    metrics = app.state.metrics = Metrics(
        services.opened_store, app.state.library, lambda: uploads.admitted
    )
    # The HTTP sinks of the process's event stream, for this app's lifetime.
    http_sinks = [services.events.subscribe(log_access), services.events.subscribe(metrics)]

    install_error_handlers(app)
    # Every route needs the key (when one is set) but those of the routers opened here.
    keys = app.state.key_check = KeyCheck(settings.api_key)
    keys.open(app, health.router)
    keys.open(app, pages.router)
    keys.open(app, audiomuse.open_router)
    keys.open_paths(app, app.openapi_url, app.docs_url, app.redoc_url,
                    app.swagger_ui_oauth2_redirect_url)  # fmt: skip
    for module in (artists, tracks, audio, search, similarity, catalogue_map, radio, library,
                   mixes, playlists):  # fmt: skip
        keys.include(app, module.router)
    keys.include(app, metrics_route.router)
    # AudioMuse-AI's contract (media-server plugins): its own error shape, same API key.
    keys.include(app, audiomuse.router)
    keys.refuse_under(audiomuse.PREFIX + "/", audiomuse.error_response)
    _document_column_filters(app, settings.filterable_columns)
    audiomuse.document_errors(app)
    keys.seal(app)

    # Innermost: the key check, CORS, the request id, the access log and the deadline wrap it
    # as they wrap the routes.
    app.add_middleware(artists.SimilarLookupFastPath, services=services)
    if keys.enabled:  # without a key nothing is checked: no layer on every request
        app.add_middleware(KeyCheckMiddleware, check=keys)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
    # Added last, so outermost: every response (CORS preflights, 500s) gets an id and a log line.
    app.add_middleware(
        RequestContextMiddleware,
        events=services.events,
        request_timeout_seconds=settings.request_timeout_seconds,
    )
    return app


def _document_column_filters(app: FastAPI, columns: list[str]) -> None:
    """`filter=` takes `column:value` on this server's filterable columns only: the schema says
    so with a pattern naming them, and leaves the parameter out when there are none."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        names = "|".join(_regex_literal(column) for column in columns)
        for item in document.get("paths", {}).values():
            for operation in item.values():
                parameters = operation.get("parameters", [])
                for parameter in list(parameters):
                    if parameter.get("in") != "query" or parameter.get("name") != "filter":
                        continue
                    if not columns:
                        parameters.remove(parameter)
                        continue
                    schema = parameter["schema"]
                    for variant in schema.get("anyOf", [schema]):
                        if variant.get("type") == "array":
                            variant["items"] = {
                                "type": "string",
                                "pattern": f"^(?:{names}):[\\s\\S]+$",
                            }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _regex_literal(text: str) -> str:
    """`text` as an ECMA-262 regex literal (JSON Schema patterns)."""
    return "".join("\\" + ch if ch in "\\^$.|?*+()[]{}/-" else ch for ch in text)


def _note_owner(services: Services) -> None:
    """Names this server in its embedded data dir (see `note_server_owner`); never fatal."""
    if services.settings.qdrant_url is not None:
        return
    try:
        note_server_owner(services)
    except SoundalikeError as error:
        log.warning("cannot record the server in the data dir: %s", error)


def _load_model_now(services: Services) -> None:
    """`load_model=startup`: load with the stored collection's layer when there is one."""
    stored = services.store().spec()
    services.embedder(stored.layer if stored is not None else None)
    log.info("model loaded at start-up")


def _configure_logging(settings: Settings) -> None:
    """Gives soundalike's loggers a stderr handler unless the host application configured some."""
    root = logging.getLogger("soundalike")
    root.setLevel(settings.log_level.upper())
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
