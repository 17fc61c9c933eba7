"""The HTTP benchmark at a tiny size: both servers answer every route, nothing fails, and the
markdown section is appended to --record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soundalike.api.benchmarks.http import bench_track_ids, fill_store, main
from soundalike.search.store import open_store

pytestmark = pytest.mark.slow


def test_a_tiny_run_serves_both_backends_without_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "bench.md"
    argv = ["--artists", "300", "--tracks", "50", "--requests", "80", "--local-requests", "40"]
    argv += ["--backends", "edge,local", "--record", str(record), "--start-timeout", "120"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    document = json.loads(out[-1])
    assert [run["backend"] for run in document["backends"]] == ["edge", "local"]
    for run in document["backends"]:
        routes = {r["route"]: r for r in run["routes"]}
        assert len(routes) == 5
        for route in routes.values():
            assert route["failures"] == 0, route
        similar = routes["GET /artists/{artist}/similar"]
        assert similar["requests"] == {"edge": 80, "local": 40}[run["backend"]]
        assert 0 < similar["p50_ms"] <= similar["p99_ms"]
    recorded = record.read_text()
    assert recorded.startswith("\n## HTTP search")
    assert "| edge | `GET /artists/{artist}/similar` | 80 | 0 |" in recorded
    assert "\n".join(out[:-1]).strip() == recorded.strip()


def test_a_reused_store_gives_the_track_ids_it_was_filled_with(tmp_path: Path) -> None:
    with open_store(data_dir=tmp_path / "edge") as store:
        written = fill_store(store, artists=30, tracks=12)
    assert bench_track_ids(12) == written
