"""What routes receive by injection: settings, the store, the upload embedder, the library, the
mixes schedule, the API-key check, the metrics and the services (the media server).

The objects come from the app's `Services` (the composition root, api/services.py) and what
`create_app` built from it, which the lifespan opens and closes; routes ask for them through the
`Annotated` aliases below, and tests replace them with `app.dependency_overrides[get_store] = ...`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from soundalike.api.auth import KeyCheck
from soundalike.api.metrics import Metrics
from soundalike.api.services import Services
from soundalike.api.settings import Settings
from soundalike.api.uploads import UploadEmbedder
from soundalike.core.events import EventStream
from soundalike.ingest.library import Library
from soundalike.mixes.schedule import MixesSchedule
from soundalike.search.store import Store


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


def get_mixes(request: Request) -> MixesSchedule | None:
    return request.app.state.mixes


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_key_check(request: Request) -> KeyCheck:
    return request.app.state.key_check


def get_event_stream(request: Request) -> EventStream:
    return request.app.state.services.events


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
UploadEmbedderDep = Annotated[UploadEmbedder, Depends(get_upload_embedder)]
LibraryDep = Annotated[Library, Depends(get_library)]
KeyCheckDep = Annotated[KeyCheck, Depends(get_key_check)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EventStreamDep = Annotated[EventStream, Depends(get_event_stream)]
MixesDep = Annotated[MixesSchedule | None, Depends(get_mixes)]
ServicesDep = Annotated[Services, Depends(get_services)]
