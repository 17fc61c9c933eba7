"""The neighbour lists benchmark's measurements too long to wait for at full size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from patching import set_constants

from benchmarks.neighbours import main
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


@pytest.fixture
def torch_cpu_as_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The --device path run on torch's CPU, standing in for CUDA, on the symmetric build."""
    pytest.importorskip("torch")
    set_constants(
        monkeypatch,
        neighbours,
        products_device=lambda setting: "cpu",
        SYMMETRIC_MIN_ROWS=1,
        BLOCK_ROWS=64,
        SAMPLE_COLUMNS=128,
        THRESHOLD_COLUMNS=128,
        STRIP_COLUMNS=200,
        DEVICE_COLUMNS=2,
    )


def test_the_device_rebuild_is_checked_against_numpy(
    torch_cpu_as_device: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--artists", "700", "--changes", "3", "--device", "cuda"]) == 0
    document = _document(capsys)
    assert document["on_device"]["equals_numpy"] is True
    assert document["on_device"]["full_rebuild_s"] > 0
    assert document["numpy"]["full_rebuild_s"] > 0


def test_without_numpy_sampled_rows_are_checked_against_brute_force(
    torch_cpu_as_device: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--artists", "700", "--device", "cuda", "--no-numpy"]) == 0
    document = _document(capsys)
    assert "numpy" not in document
    assert document["on_device"]["sampled_rows_equal_brute_force"] is True
    assert document["on_device"]["sampled_rows"] == 500


def test_the_sampled_check_catches_a_wrong_list() -> None:
    import numpy as np

    from benchmarks.neighbours import sampled_rows_match
    from benchmarks.store import clustered_centroids

    matrix = clustered_centroids(np.random.default_rng(0), 300)
    table = neighbours.build(matrix, spare=neighbours.SPARE)
    rows = np.arange(0, 300, 7)
    assert sampled_rows_match(matrix, table, rows)
    table.neighbours[14, [0, 1]] = table.neighbours[14, [1, 0]]
    assert not sampled_rows_match(matrix, table, rows)


def test_no_numpy_needs_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--artists", "300", "--no-numpy"])
    error = capsys.readouterr().err
    assert "--no-numpy measures nothing without --device or --approximate" in error


def test_the_approximate_rebuild_reports_its_recall_against_numpy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neighbours, "CELL_ROWS", 100)
    assert main(["--artists", "800", "--changes", "2", "--approximate", "1,8"]) == 0
    few, every = _document(capsys)["approximate"]
    assert (few["probes"], few["cells"], few["rows_checked"]) == (1, 8, 800)
    # Probing every cell finds every true neighbour; one cell of eight does not.
    assert every["recall_at_k"] == 1.0
    assert 0 < few["recall_at_k"] < 1.0


def test_without_numpy_the_approximate_recall_is_sampled(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neighbours, "CELL_ROWS", 100)
    assert main(["--artists", "800", "--no-numpy", "--approximate", "8"]) == 0
    (every,) = _document(capsys)["approximate"]
    assert every["rows_checked"] == 500 and every["recall_at_k"] == 1.0
