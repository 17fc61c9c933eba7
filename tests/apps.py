"""Helpers shared by the API and browser tests: settings that the environment cannot leak
into, a catalogue ingested through the public path, and an app behind a real uvicorn on a free
loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from soundalike.api.settings import Settings
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources import source_for
from soundalike.search.store import open_store


def app_settings(data_dir: Path, model_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app over `data_dir` with the tiny model: explicit values, so the
    environment cannot leak in; `overrides` replace any of them."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "model": str(model_dir),
        "device": "cpu",
        "api_key": None,
        "cors_origins": [],
        "max_upload_mb": 50.0,
        "embed_concurrency": 1,
        "embed_queue": 4,
        "load_model": "lazy",
        "qdrant_url": None,
        "collection_prefix": "",
    }
    values.update(overrides)
    return Settings(**values)


def ingest_into(
    data_dir: Path,
    source: Path,
    embedder: Any,
    *,
    expected: int,
    decoding: Decoding | None = None,
    **options: Any,
) -> Path:
    """Ingest `source` (a folder or a manifest) into a new Edge store in `data_dir` with one
    worker, check that `expected` tracks went in, and close the store again."""
    with open_store(data_dir=data_dir) as store:
        summary = ingest(
            source_for(source),
            store=store,
            engine=VectorEngine(embedder, decoding or Decoding()),
            options=IngestOptions(workers=1, **options),
        )
    assert summary.ingested == expected, summary.to_dict()
    return data_dir


@contextmanager
def serving(app: FastAPI) -> Iterator[tuple[str, int]]:
    """The app behind a real uvicorn on a free loopback port, in a thread of this process, for
    as long as the `with` lasts; gives (host, port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield listener.getsockname()
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
