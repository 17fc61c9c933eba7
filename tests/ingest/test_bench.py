"""The benchmark reports both paths on the same clips, in the documented shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundalike.ingest.bench import run_bench, synthetic_clip


def test_synthetic_clips_are_deterministic_30s_music_like_signals() -> None:
    first, again, other = (
        synthetic_clip(1, 24000),
        synthetic_clip(1, 24000),
        synthetic_clip(2, 24000),
    )
    assert first.shape == (720000,) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert 0.05 < float(np.abs(first).max()) <= 0.3001


def test_run_bench_reports_both_paths_and_their_parity(tiny_mert_dir: Path) -> None:
    report = run_bench(
        model=str(tiny_mert_dir),
        random_weights=False,
        device="cpu",
        clips=1,
        batch_size=2,
        clip_seconds=3.0,
    )
    assert {"naive", "soundalike", "ratio", "device"} <= set(report)
    assert report["device"] == "cpu"
    for path in ("naive", "soundalike"):
        assert report[path]["clips_per_s"] > 0
        assert report[path]["peak_mem_mb"] > 0
    assert report["ratio"] == report["soundalike"]["clips_per_s"] / report["naive"]["clips_per_s"]
    assert report["parity_l2"] < 1e-3


def test_run_bench_on_a_directory_without_weights_fails_with_the_typed_error(
    tiny_mert_dir: Path, tmp_path: Path
) -> None:
    import shutil

    import pytest

    from soundalike.search.errors import ModelUnavailable

    directory = tmp_path / "no-weights"
    shutil.copytree(tiny_mert_dir, directory)
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="model.safetensors"):
        run_bench(model=str(directory), random_weights=False, device="cpu", clips=1, batch_size=1)
