"""`open_store`: the backend a `StoreConfig` names (Qdrant Edge in-process, a Qdrant server,
or qdrant-client `:memory:`), behind a `Store`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from soundalike.core.errors import InvalidRequest
from soundalike.core.events import NO_EVENTS, EventStream
from soundalike.search.backend import Backend
from soundalike.search.store.config import DEFAULT_RETRY_SECONDS, StoreConfig
from soundalike.search.store.store import Store


def open_store(
    config: StoreConfig | None = None,
    *,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
    events: EventStream = NO_EVENTS,
    **fields: Any,
) -> Store:
    """Opens the store `config` names (see `StoreConfig`). `fields`: StoreConfig fields that
    replace the config's (`open_store(data_dir=path)`, `open_store(in_memory=True)`: the
    short form of tests and scripts). `retry_seconds`: server only, how long to keep retrying
    a server that does not answer (connection errors, 429, 5xx) before StoreUnavailable.
    `events`: the process's event stream, which store upkeep reports to."""
    config = dataclasses.replace(config or StoreConfig(), **fields)
    if config.url is not None and config.in_memory:
        raise InvalidRequest("give either a Qdrant url or in_memory=True, not both")
    if retry_seconds < 0:
        raise InvalidRequest(f"retry_seconds must be >= 0, got {retry_seconds}")
    backend: Backend
    if config.url is not None or config.in_memory:
        from soundalike.search.server_store import ServerBackend

        if config.url is None:
            backend = ServerBackend.in_memory()
        else:
            backend = ServerBackend.connect(
                config.url,
                api_key=config.api_key,
                timeout=config.timeout,
                shard_number=config.shard_number,
                replication_factor=config.replication_factor,
                retry_seconds=retry_seconds,
            )
    else:
        from soundalike.search.edge_store import EdgeBackend

        backend = EdgeBackend(
            Path(config.data_dir) if config.data_dir is not None else Path("soundalike-data"),
            lock_name=f"{config.collection_prefix}soundalike.lock",
        )
    return Store(backend, config, events=events)
