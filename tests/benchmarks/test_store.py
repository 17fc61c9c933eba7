"""The store benchmark at a tiny size: what it wrote is what it counts, and exact search finds
the true neighbours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.store import clustered_centroids, main


def _document(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_tiny_run_reports_both_backends_with_what_it_wrote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--tracks", "500", "--artists", "500", "--queries", "30"]
    argv += ["--local-tracks", "40", "--local-artists", "40", "--local-queries", "10"]
    assert main(argv) == 0
    document = _document(capsys)
    assert document["command"] == "python -m benchmarks.store " + " ".join(argv)
    assert document["dim"] == 768 and document["machine"]["cores"] >= 1
    edge, local = document["results"]
    assert (edge["backend"], local["backend"]) == ("edge", "qdrant-client local (path)")
    assert edge["count_after_reopen"] == {"tracks": 500, "artists": 500}
    assert local["count_after_reopen"] == {"tracks": 40, "artists": 40}
    assert edge["search_artists"]["queries"] == 30 and local["search_artists"]["queries"] == 10
    assert edge["list_artists"]["total"] == 500
    assert 0 < edge["search_artists"]["p50_ms"] <= edge["search_artists"]["p99_ms"]


def test_recall_rows_cover_every_setting_and_exact_search_finds_the_true_top_10(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--recall", "--artists", "300", "--queries", "20", "--ef", "16"]) == 0
    (result,) = _document(capsys)["results"]
    rows = result["rows"]
    assert [(r["queries"], r["min_tracks"], r["search"]) for r in rows] == [
        (kind, min_tracks, search)
        for kind in ("stored", "fresh")
        for min_tracks in (1, 3)
        for search in ("default", "ef 16", "exact")
    ]
    assert {r["recall_at_10"] for r in rows if r["search"] == "exact"} == {1.0}


def test_clustered_centroids_are_unit_rows_crowded_like_mert_centroids() -> None:
    rows = clustered_centroids(np.random.default_rng(0), 400, clusters=20)
    assert rows.shape == (400, 768)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    cosines = rows @ rows.T
    off_diagonal = cosines[~np.eye(400, dtype=bool)]
    # The shared direction carries 0.6 of every row's squared weight: no two rows are far apart.
    assert off_diagonal.min() > 0.3 and 0.5 < float(np.median(off_diagonal)) < 0.8
