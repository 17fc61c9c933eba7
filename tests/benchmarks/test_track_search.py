"""The track search study at a tiny size: its ground truth, exclusions and rows are right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.track_search import main
from soundalike.search.store import DEFAULT_OVERSAMPLING


def test_a_tiny_study_finds_the_exact_top_10_in_both_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """600 tracks stay below Qdrant's indexing threshold, so every search scans all vectors:
    recall@10 must then be exactly 1, which checks the NumPy ground truth, the query's own
    track being left out, and the track ids the study computes."""
    argv = ["--tracks", "600", "--queries", "20", "--ef", "64", "--oversampling", "default,4"]
    argv += ["--seconds", "0", "--dir", str(tmp_path)]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (document["tracks"], document["artists"]) == (600, 60)
    assert set(document["stores"]) == {"float32", "int8"}
    for setting, quantized in (("float32", False), ("int8", True)):
        config = (tmp_path / setting / "tracks" / "edge_config.json").read_text(encoding="utf-8")
        assert ("int8" in config.lower()) is quantized, setting
    rows = document["in_process"]
    assert [(r["setting"], r["ef"], r["oversampling"]) for r in rows] == [
        ("float32", 64, None),
        ("int8", 64, DEFAULT_OVERSAMPLING),
        ("int8", 64, 4.0),
    ]
    for row in rows:
        for kind in ("tracks_like_y", "clip"):
            assert row[kind]["recall_at_10"] == 1.0, (row["setting"], kind)
            assert 0 < row[kind]["p50_ms"] <= row[kind]["p99_ms"]
        assert row["memory_after_queries_mb"]["VmRSS"] > 0
    assert "http" not in document

    # A second run reuses both stores instead of writing them again.
    assert main([*argv, "--reuse", "--settings", "int8"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["stores"]["int8"]["write_s"] is None
    assert [r["setting"] for r in again["in_process"]] == ["int8", "int8"]
