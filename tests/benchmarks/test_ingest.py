"""The ingest benchmark: the store's cost from known timings, and a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.ingest import main, store_cost


def test_store_cost_from_known_timings() -> None:
    assert store_cost(50.0, 51.0, 1000) == {"store_overhead_pct": 2.0, "store_ms_per_track": 1.0}
    # Within noise the full ingest can be the faster of the two: the cost comes out negative.
    assert store_cost(6.0, 5.85, 100) == {"store_overhead_pct": -2.5, "store_ms_per_track": -1.5}


@pytest.mark.slow
def test_a_tiny_run_times_both_modes_on_every_track(
    tiny_mert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--tracks", "4", "--seconds", "3", "--model", str(tiny_mert_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    document = json.loads(out[-1])
    row = document["results"]["4"]
    assert row["engine"]["tracks"] == 4 and row["ingest"]["tracks"] == 4
    assert row["engine"]["peak_rss_mb"] > 0 and row["ingest"]["peak_rss_mb"] > 0
    assert out[0].startswith("| tracks | engine only | full ingest |")
    assert out[2].startswith("| 4 | ")
