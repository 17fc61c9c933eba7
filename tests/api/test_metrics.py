"""`GET /metrics`: Prometheus' text format behind the API key, fed by the event stream; the
Grafana dashboard in deploy/ asks only for metrics the server exports."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from soundalike.api.main import create_app
from soundalike.api.metrics import Metrics
from soundalike.api.settings import Settings
from soundalike.core.events import (
    EventStream,
    MixesRefreshed,
    RequestServed,
    StageTimed,
    TrackFailed,
    TrackStored,
    UpkeepDone,
    UploadRejected,
)
from soundalike.ingest.devtools.synth import synth_track, write_audio

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "soundalike.json"
KEY = "metrics-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
RATE = 24_000
ARTISTS = ("Ana Ruiz", "Bo Lind", "Cleo Park")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def exported_names(text: str) -> set[str]:
    """Metric names a query may use: each family's name and its samples' names."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def library_client(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> Callable[..., AbstractContextManager[TestClient]]:
    """An app whose live library is a folder of 12 generated tracks by 3 artists."""
    root = tmp_path / "music"
    for artist_seed, artist in enumerate(ARTISTS):
        for track in range(4):
            audio = synth_track(artist_seed=artist_seed, track_seed=track, seconds=4.0,
                                sample_rate=RATE, channels=1)  # fmt: skip
            path = root / artist / f"{track}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_audio(path, audio, RATE)

    @contextmanager
    def make(**overrides: Any) -> Iterator[TestClient]:
        values: dict[str, Any] = {"library": [root], "library_debounce_seconds": 0.3,
                                  "workers": 1, "api_key": KEY}  # fmt: skip
        values.update(overrides)
        app = create_app(make_settings(tmp_path / "data", **values))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return make


def scanned(client: TestClient, tracks: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/library", headers=AUTH).json()
        done = state["state"] in ("watching", "idle") and state["ingested"] >= tracks
        if done and state["queued"] == 0:
            return
        assert time.monotonic() < deadline, f"the library scan did not finish: {state}"
        time.sleep(0.2)


def test_metrics_count_a_library_scan_and_artists_like_x_requests(
    library_client: Callable[..., AbstractContextManager[TestClient]],
) -> None:
    with library_client() as client:
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer " + "w" * 30}).status_code
            == 401
        )
        scanned(client, 12)
        client.app.state.services.wait_until_in_memory()  # type: ignore[attr-defined]
        for request in range(20):
            artist = ARTISTS[request % len(ARTISTS)]
            query = "" if request % 2 else "?limit=2"  # the fast path, and the route
            answer = client.get(f"/artists/{artist}/similar{query}", headers=AUTH)
            assert answer.status_code == 200, answer.text
        assert client.get("/artists/Nobody At All/similar", headers=AUTH).status_code == 404
        assert client.get("/no/such/route", headers=AUTH).status_code == 404
        response = client.get("/metrics", headers=AUTH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert value(found, "soundalike_ingest_tracks_total", outcome="ingested") == 12
    assert value(found, "soundalike_tracks") == 12
    assert value(found, "soundalike_artists") == len(ARTISTS)
    similar = "/artists/{artist}/similar"
    assert value(found, "soundalike_http_requests_total", route=similar, method="GET",
                 status="200") >= 20  # fmt: skip
    assert value(found, "soundalike_http_requests_total", route=similar, method="GET",
                 status="404") == 1  # fmt: skip
    assert value(found, "soundalike_http_request_duration_seconds_count", route=similar) >= 21
    # The route template, never the raw path: no artist name is a label value.
    assert not any("Ana Ruiz" in str(labels) for _, labels in found)
    assert value(found, "soundalike_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1  # fmt: skip
    # The refused scrapes are counted under their route too.
    assert value(found, "soundalike_http_requests_total", route="/metrics", method="GET",
                 status="401") == 2  # fmt: skip
    assert value(found, "soundalike_ingest_windows_total") >= 12
    for stage in ("decode", "embed", "write"):
        assert value(found, "soundalike_ingest_stage_seconds_total", stage=stage) > 0, stage
    assert value(found, "soundalike_upkeep_artists_total", kind="centroids") >= len(ARTISTS)
    assert value(found, "soundalike_neighbour_lists_valid") == 1
    assert value(found, "soundalike_neighbour_lists_exact") == 1
    assert value(found, "soundalike_library_files_seen") == 12
    assert value(found, "soundalike_library_queued") == 0
    assert value(found, "soundalike_library_state", state="watching") == 1
    assert value(found, "soundalike_upload_queue_depth") == 0


def test_metrics_are_open_without_a_configured_key(make_client: Any) -> None:
    with make_client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "soundalike_tracks") == 12  # the shared test catalogue
    assert value(found, "soundalike_library_state", state="off") == 1


def test_the_metrics_sink_counts_every_kind_of_event() -> None:
    metrics = Metrics(lambda: None)
    stream = EventStream(metrics)
    stream.emit(TrackStored("a.flac", "t1", "Ana"))
    stream.emit(TrackStored("b.flac", "t2", "Ana", outcome="skipped"))
    stream.emit(TrackFailed("c.flac", "no audio stream", reason_class="undecodable"))
    stream.emit(StageTimed("embed", 0.5, windows=3))
    stream.emit(StageTimed("decode", 0.25))
    stream.emit(UpkeepDone("neighbour_lists", artists=7, seconds=0.125))
    stream.emit(UploadRejected())
    stream.emit(UploadRejected())
    stream.emit(MixesRefreshed("schedule", ok=True, mixes=3, seconds=1.5))
    stream.emit(MixesRefreshed("request", ok=False, mixes=0, seconds=0.5))
    stream.emit(RequestServed("POST", "/search/audio", "/search/audio", 503, 0.01, "r1"))
    found = samples(metrics.exposition().decode())
    assert value(found, "soundalike_ingest_tracks_total", outcome="ingested") == 1
    assert value(found, "soundalike_ingest_tracks_total", outcome="skipped") == 1
    assert value(found, "soundalike_ingest_tracks_total", outcome="failed") == 1
    assert value(found, "soundalike_ingest_failures_total", reason="undecodable") == 1
    assert value(found, "soundalike_ingest_windows_total") == 3
    assert value(found, "soundalike_ingest_stage_seconds_total", stage="embed") == 0.5
    assert value(found, "soundalike_ingest_stage_seconds_total", stage="decode") == 0.25
    assert value(found, "soundalike_upkeep_seconds_total", kind="neighbour_lists") == 0.125
    assert value(found, "soundalike_upkeep_artists_total", kind="neighbour_lists") == 7
    assert value(found, "soundalike_upload_rejections_total") == 2
    assert value(found, "soundalike_mixes_refreshes_total", outcome="ok") == 1
    assert value(found, "soundalike_mixes_refreshes_total", outcome="failed") == 1
    assert value(found, "soundalike_http_requests_total", route="/search/audio", method="POST",
                 status="503") == 1  # fmt: skip
    # A 10 ms answer lands in the `le="0.01"` bucket (Prometheus buckets hold values <= le).
    duration = "soundalike_http_request_duration_seconds"
    assert value(found, f"{duration}_bucket", route="/search/audio", le="0.005") == 0
    assert value(found, f"{duration}_bucket", route="/search/audio", le="0.01") == 1
    assert value(found, f"{duration}_bucket", route="/search/audio", le="+Inf") == 1
    assert value(found, f"{duration}_count", route="/search/audio") == 1
    assert value(found, f"{duration}_sum", route="/search/audio") == 0.01
    # No store open: no catalogue gauges rather than zeros that would read as "empty".
    assert ("soundalike_tracks", ()) not in found


def dashboard_metric_names() -> set[str]:
    """Every metric name the dashboard's PromQL expressions use."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [
        target["expr"] for panel in document["panels"] for target in panel.get("targets", [])
    ]
    assert expressions, "the dashboard has no queries"
    return {name for expr in expressions for name in re.findall(r"\bsoundalike_[a-z_]+", expr)}


def test_the_grafana_dashboard_queries_only_exported_metrics(
    library_client: Callable[..., AbstractContextManager[TestClient]],
) -> None:
    with library_client() as client:
        scanned(client, 12)
        client.get(f"/artists/{ARTISTS[0]}/similar", headers=AUTH)
        exposition = client.get("/metrics", headers=AUTH).text
    exported = exported_names(exposition)
    used = dashboard_metric_names()
    assert used - exported == set(), "the dashboard asks for metrics the server does not export"
    # And it shows what an operator looks at first.
    for essential in ("soundalike_http_requests_total", "soundalike_ingest_tracks_total",
                      "soundalike_tracks", "soundalike_artists"):  # fmt: skip
        assert essential in used
