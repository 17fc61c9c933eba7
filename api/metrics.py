"""Prometheus metrics: a sink of the process's event stream, plus gauges read at each scrape.

Counters and histograms follow the events (core/events.py): HTTP requests (by route template,
never the raw path, so a catalogue of a million artists is still one series), tracks ingested,
skipped and failed (failures also by reason class), windows embedded, seconds per ingest stage,
store upkeep, refused uploads. What is a current state — tracks and artists stored, whether the
neighbour lists are valid and exact, the library's state and queue, the upload queue — is read
when Prometheus scrapes, so it is never stale and costs nothing between scrapes.

Each app has its own registry (several apps in one process, as in tests, never collide).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from soundalike.core.events import (
    Event,
    FailureClass,
    MixesRefreshed,
    RequestServed,
    Stage,
    StageTimed,
    TrackFailed,
    TrackStored,
    UpkeepDone,
    UpkeepKind,
    UploadRejected,
)
from soundalike.ingest.library import Library
from soundalike.search.store import Store

log = logging.getLogger("soundalike.api")

# From a lookup served from memory (~0.2 ms) to an upload embedded on a CPU (seconds).
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# The label of a request no route matched (a 404, a refused key on an unknown path).
UNMATCHED_ROUTE = "unmatched"
LIBRARY_STATES = ("off", "idle", "watching", "scanning")

# Every counter, by its name after `soundalike_`: its documentation, its label names, and the
# values of its one label known up front. Those are exported from the start (at 0): a rate over
# a series that appears only at its first event misses that event, and dashboards show no gaps.
_COUNTERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "ingest_tracks": (
        "Tracks this process ingested, skipped (already stored) or failed.",
        ("outcome",),
        ("ingested", "skipped", "failed"),
    ),
    "ingest_failures": (
        "Tracks that could not be ingested, by reason class.",
        ("reason",),
        get_args(FailureClass),
    ),
    "ingest_windows": ("Audio windows embedded.", (), ()),
    "ingest_stage_seconds": (
        "Seconds spent per ingest stage (decode: waiting for decoded audio).",
        ("stage",),
        get_args(Stage),
    ),
    "upkeep_seconds": (
        "Seconds of store upkeep: artist centroids, neighbour lists.",
        ("kind",),
        get_args(UpkeepKind),
    ),
    "upkeep_artists": ("Artists recomputed by store upkeep.", ("kind",), get_args(UpkeepKind)),
    "mixes_refreshes": (
        "Refreshes of the served mixes on the media server, by outcome.",
        ("outcome",),
        ("ok", "failed"),
    ),
    "upload_rejections": (
        "Uploads refused with 503: every embedding worker and queue slot was taken.",
        (),
        (),
    ),
}


def _declare(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labels: tuple[str, ...],
    known: tuple[str, ...],
) -> Counter:
    counter = Counter(f"soundalike_{name}", documentation, labels, registry=registry)
    for value in known:
        counter.labels(value)
    return counter


class Metrics:
    """The app's metrics. Subscribe it to the event stream; `exposition()` is `/metrics`."""

    def __init__(
        self,
        opened_store: Callable[[], Store | None],
        library: Library | None = None,
        upload_queue_depth: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._counters = {name: _declare(registry, name, *spec) for name, spec in _COUNTERS.items()}
        self._requests = _RequestCounts()
        registry.register(self._requests)
        registry.register(_CurrentState(opened_store, library, upload_queue_depth))

    def __call__(self, event: Event) -> None:
        counters = self._counters
        if isinstance(event, RequestServed):
            self._requests.count(event)
        elif isinstance(event, TrackStored):
            counters["ingest_tracks"].labels(event.outcome).inc()
        elif isinstance(event, TrackFailed):
            counters["ingest_tracks"].labels("failed").inc()
            counters["ingest_failures"].labels(event.reason_class).inc()
        elif isinstance(event, StageTimed):
            counters["ingest_stage_seconds"].labels(event.stage).inc(event.seconds)
            if event.stage == "embed":
                counters["ingest_windows"].inc(event.windows)
        elif isinstance(event, UpkeepDone):
            counters["upkeep_seconds"].labels(event.kind).inc(event.seconds)
            counters["upkeep_artists"].labels(event.kind).inc(event.artists)
        elif isinstance(event, UploadRejected):
            counters["upload_rejections"].inc()
        elif isinstance(event, MixesRefreshed):
            counters["mixes_refreshes"].labels("ok" if event.ok else "failed").inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _RequestCounts(Collector):
    """`soundalike_http_requests_total` and `soundalike_http_request_duration_seconds`, kept
    in plain numbers and turned into metric families at scrape time.

    Requests are counted on the event loop's thread (the request middleware emits there), so
    the count is a dict update and a bisect, with none of the locks prometheus-client's own
    metric classes take per update: the artists-like-X lookup this sits beside costs ~60 us."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        # route -> [sum of seconds, then one count per bucket of HTTP_BUCKETS, then +Inf]
        self._durations: dict[str, list[float]] = {}

    def count(self, event: RequestServed) -> None:
        route = event.route or UNMATCHED_ROUTE
        key = (route, event.method, event.status)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        durations = self._durations.get(route)
        if durations is None:
            durations = self._durations[route] = [0.0] * (len(HTTP_BUCKETS) + 2)
        durations[0] += event.seconds
        durations[bisect_left(HTTP_BUCKETS, event.seconds) + 1] += 1

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "soundalike_http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in list(self._counts.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "soundalike_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template.",
            labels=["route"],
        )
        bounds = [*map(floatToGoString, HTTP_BUCKETS), "+Inf"]
        for route, figures in list(self._durations.items()):
            snapshot = list(figures)  # one copy: buckets and count agree within a scrape
            cumulative = list(accumulate(snapshot[1:]))
            durations.add_metric([route], list(zip(bounds, cumulative, strict=True)), snapshot[0])
        yield durations


class _CurrentState(Collector):
    """Gauges read at scrape time from the objects that hold the state."""

    def __init__(
        self,
        opened_store: Callable[[], Store | None],
        library: Library | None,
        upload_queue_depth: Callable[[], int] | None,
    ) -> None:
        self._opened_store = opened_store
        self._library = library
        self._upload_queue_depth = upload_queue_depth

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # the families are known only when collected (the store may be closed)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._store_state()
        yield from self._library_state()
        if self._upload_queue_depth is not None:
            yield _gauge(
                "soundalike_upload_queue_depth",
                "Uploads being received, embedded or waiting for a worker.",
                self._upload_queue_depth(),
            )

    def _store_state(self) -> Iterator[GaugeMetricFamily]:
        store = self._opened_store()  # never opens it: a scrape must not wait on a dead server
        if store is None:
            return
        try:
            tracks, artists = store.count_tracks(), store.count_artists()
            lists = store.neighbour_lists_state()
        except Exception as error:  # a store outage is readiness's news; the scrape goes on
            log.warning("metrics: the store did not answer: %s", error)
            return
        yield _gauge("soundalike_tracks", "Tracks stored.", tracks)
        yield _gauge("soundalike_artists", "Artists stored.", artists)
        yield _gauge(
            "soundalike_neighbour_lists_valid",
            "1 when the artists-like-X lists are current for the stored catalogue.",
            int(lists.valid),
        )
        yield _gauge(
            "soundalike_neighbour_lists_exact",
            "1 when the lists are exact (0: built approximately, or not valid).",
            int(lists.valid and lists.exact),
        )

    def _library_state(self) -> Iterator[GaugeMetricFamily]:
        if self._library is None:
            return
        status = self._library.status()
        state = GaugeMetricFamily(
            "soundalike_library_state", "The live library's state (1 for the current one).",
            labels=["state"],
        )  # fmt: skip
        for name in LIBRARY_STATES:
            state.add_metric([name], int(status.state == name))
        yield state
        yield _gauge("soundalike_library_queued", "Library files waiting to be ingested.",
                     status.queued)  # fmt: skip
        yield _gauge("soundalike_library_files_seen", "Audio files in the library folders.",
                     status.files_seen)  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
