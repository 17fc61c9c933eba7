"""Catalogue ingest, `soundalike ingest`'s entry: the one flow (ingest/flow.py) with the
summary, report and progress sinks (ingest/sinks.py) listening, and the stages
(ingest/stages.py) the CLI, the tests and the benchmarks import from here.
"""

from __future__ import annotations

from pathlib import Path

from soundalike.core.events import NO_EVENTS, EventStream, IngestOrigin
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.flow import IngestOptions, decode_embed_write, run
from soundalike.ingest.sinks import IngestSummary, listening
from soundalike.ingest.sources import CatalogueSource
from soundalike.ingest.stages import (
    Failure,
    PendingTrack,
    Shard,
    Writer,
    decode,
    discover,
    embed_batch,
    identify,
    retire_missing,
    retire_superseded,
    split_stored,
    stale_artists,
    to_track,
)
from soundalike.search.store import Store

__all__ = [
    "Failure",
    "IngestOptions",
    "IngestSummary",
    "PendingTrack",
    "Shard",
    "Writer",
    "decode",
    "decode_embed_write",
    "discover",
    "embed_batch",
    "identify",
    "ingest",
    "retire_missing",
    "retire_superseded",
    "split_stored",
    "stale_artists",
    "to_track",
]


def ingest(
    source: CatalogueSource,
    *,
    store: Store,
    engine: VectorEngine,
    options: IngestOptions,
    events: EventStream = NO_EVENTS,
    origin: IngestOrigin = "cli",
    report_path: Path | None = None,
    progress: bool = False,
) -> IngestSummary:
    """Ingest a catalogue source into the store; the summary is built from the run's events
    (which `events`' other sinks hear too). Bad files are reported, never fatal."""
    # Code run on its own passes no stream: the sinks then listen to one of the run's own.
    stream = EventStream() if events is NO_EVENTS else events
    with listening(stream, origin=origin, report_path=report_path, progress=progress) as sink:
        outcome = run(
            source, store=store, engine=lambda: engine, options=options, events=stream,
            origin=origin,
        )  # fmt: skip
    summary = sink.summary
    summary.artists_updated = outcome.artists_updated
    summary.seconds = outcome.seconds
    return summary
