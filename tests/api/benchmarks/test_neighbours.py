"""The neighbour lists benchmark's measurements too long to wait for at full size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soundalike.api.benchmarks.neighbours import main
from soundalike.search import neighbours


def _document(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_rebuild_rate_is_taken_from_part_of_the_products(
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = neighbours.SYMMETRIC_MIN_ROWS + 1000
    assert main(["--rate-at", str(n), "--rate-seconds", "0.01"]) == 0
    rate = _document(capsys)["rebuild_rate"]
    assert rate["artists"] == n
    assert 0 < rate["products_share_done"] < 1
    assert rate["products_s_computed"] >= rate["measured_s"] > 0
    assert rate["rebuild_s_computed"] >= rate["products_s_computed"]


def test_the_store_size_grows_with_the_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--size-at", "300", "--no-index", "--dir", str(tmp_path)]) == 0
    size = _document(capsys)["store_size"]
    assert size["artists"] == 300
    assert size["with_lists"]["allocated_mb"] > size["artists_only"]["allocated_mb"] > 0
    assert size["closed"]["allocated_mb"] > 0
    assert "index_s" not in size
