"""One event stream: what happens in a soundalike process, told once, heard by every sink.

Ingest (CLI, live library, music servers), store upkeep (centroids, neighbour lists), uploads
and HTTP requests *emit* small immutable events; progress bars, the ingest summary, the
library's status document and its server-sent events, the JSON access log and the Prometheus
metrics are *sinks* that subscribe to the stream. A producer never knows who listens, so a new
sink (a metric, a log line) is an addition, not a change to the code that does the work.

One `EventStream` per process, built by the composition root (`api/services.py`) and handed to
the components that emit; `NO_EVENTS` is the silent default for code run on its own (tests,
scripts). Sinks are called on the emitting thread, synchronously: they must be cheap and
thread-safe. A sink that raises is logged and skipped; the work that emitted goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger("soundalike.events")

# Why a track could not be ingested, as a small closed set (a metric label must not carry free
# text): the reason itself travels beside it.
FailureClass = Literal[
    "listing",  # the source could not list it (unreadable folder entry, bad manifest row)
    "metadata",  # no usable artist name
    "unreadable",  # the file could not be read, or changed while it was being ingested
    "undecodable",  # no audio stream, a broken or unsupported codec, a decoder crash or hang
    "too_short",  # shorter than the minimum duration
    "silent",  # every window below the silence threshold
    "embedding",  # the model failed on it (a non-finite vector)
    "other",
]
Stage = Literal["decode", "embed", "write"]
UpkeepKind = Literal["centroids", "neighbour_lists"]
IngestOrigin = Literal["cli", "library", "server"]


@dataclass(frozen=True, slots=True)
class TracksPlanned:
    """`count` more tracks will be decoded and embedded (a progress bar's total grows by it)."""

    count: int
    origin: IngestOrigin = "cli"


@dataclass(frozen=True, slots=True)
class TrackStored:
    """A listed track is durable in the store: `ingested` (embedded now, or given a stored
    vector) or `skipped` (already stored as it is)."""

    location: str
    track_id: str
    artist: str
    outcome: Literal["ingested", "skipped"] = "ingested"
    origin: IngestOrigin = "cli"


@dataclass(frozen=True, slots=True)
class TrackFailed:
    """A listed file could not become a track; the run goes on."""

    location: str
    reason: str
    reason_class: FailureClass = "other"
    track_id: str | None = None
    artist: str | None = None
    origin: IngestOrigin = "cli"


@dataclass(frozen=True, slots=True)
class StageTimed:
    """Seconds one ingest stage spent on a batch (decode: waiting for decoded audio)."""

    stage: Stage
    seconds: float
    windows: int = 0
    origin: IngestOrigin = "cli"


@dataclass(frozen=True, slots=True)
class UpkeepProgress:
    """Store upkeep advanced: `done` of `total` artists."""

    kind: UpkeepKind
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class UpkeepDone:
    """Store upkeep finished: `artists` recomputed in `seconds`."""

    kind: UpkeepKind
    artists: int
    seconds: float


@dataclass(frozen=True, slots=True)
class LibraryChanged:
    """The live library's status document changed (state, queue, counts, last error)."""

    state: str


@dataclass(frozen=True, slots=True)
class MixesRefreshed:
    """The served mixes were refreshed on the media server (`ok`), or the refresh failed."""

    trigger: str
    ok: bool
    mixes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class UploadRejected:
    """An upload was refused with 503 + Retry-After: every worker and queue slot was taken."""


@dataclass(frozen=True, slots=True)
class RequestServed:
    """One HTTP request answered. `route` is the path template (`/artists/{artist}/similar`),
    never the raw path, or `None` when no route matched."""

    method: str
    route: str | None
    path: str
    status: int
    seconds: float
    request_id: str
    client: str | None = None


Event = (
    TracksPlanned
    | TrackStored
    | TrackFailed
    | StageTimed
    | UpkeepProgress
    | UpkeepDone
    | LibraryChanged
    | MixesRefreshed
    | UploadRejected
    | RequestServed
)


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


class EventStream:
    """Fans each event out to the subscribed sinks, in subscription order."""

    def __init__(self, *sinks: Sink) -> None:
        self._sinks: tuple[Sink, ...] = sinks
        self._lock = threading.Lock()

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        """Adds a sink; returns the call that removes it again."""
        with self._lock:
            self._sinks = (*self._sinks, sink)

        def unsubscribe() -> None:
            with self._lock:
                self._sinks = tuple(s for s in self._sinks if s is not sink)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for sink in self._sinks:  # a tuple swapped whole: no lock on the hot path
            try:
                sink(event)
            except Exception:  # a sink never stops the work that emitted
                log.exception("event sink %r failed on %r", sink, event)

    @property
    def has_sinks(self) -> bool:
        return bool(self._sinks)


class _Silent(EventStream):
    """The stream of code run on its own: emits to nobody, and cannot be subscribed to (a sink
    added to a shared default would hear every unrelated run in the process)."""

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        raise TypeError("NO_EVENTS is silent; build an EventStream to listen")


NO_EVENTS: EventStream = _Silent()
