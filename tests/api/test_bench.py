"""The embedding benchmark: figures from known timings, and real parity on the tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.api.bench import (
    PathMeasurement,
    PathRun,
    format_report,
    run_bench,
    synthetic_clip,
)
from soundalike.core.errors import ModelUnavailable

# Four clips per path; seconds chosen so every figure is exact by hand.
FAKE_SECONDS = {"naive": 8.0, "sdpa_full": 5.0, "sdpa_truncated": 4.0, "soundalike": 2.5}
# Clip 2's vectors point 3:4 one way and 4:3 the other: unit vectors (0.6, 0.8) and (0.8, 0.6),
# L2 distance sqrt(0.2² + 0.2²).
PARITY_L2 = float(np.sqrt(0.08))


class FakePaths:
    """Known per-path timings and vectors, recording which paths were measured, in order."""

    def __init__(self) -> None:
        self.measured: list[str] = []

    def __call__(self, run: PathRun) -> PathMeasurement:
        self.measured.append(run.path)
        vectors = np.tile([[1.0, 0.0]], (run.clips, 1))
        vectors[2] = [3.0, 4.0] if run.path == "naive" else [8.0, 6.0]
        return PathMeasurement(FAKE_SECONDS[run.path], 1234.56, vectors)


def _bench_on(model_dir: Path, **choices: Any) -> dict[str, Any]:
    """run_bench on a checkpoint directory, on the CPU, with `choices` for the rest."""
    return run_bench(model=str(model_dir), random_weights=False, device="cpu", **choices)


def test_synthetic_clips_are_deterministic_mono_music_of_the_asked_length() -> None:
    first, again, other = (
        synthetic_clip(1, 24000, 3.0),
        synthetic_clip(1, 24000, 3.0),
        synthetic_clip(2, 24000, 3.0),
    )
    assert first.shape == (72000,) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert float(np.abs(first).max()) == pytest.approx(0.5, abs=1e-6)


def test_figures_and_ratio_come_from_the_measured_seconds(tiny_mert_dir: Path) -> None:
    fake = FakePaths()
    report = _bench_on(tiny_mert_dir, clips=4, batch_size=2, steps=True, measure=fake)
    assert fake.measured == ["naive", "sdpa_full", "sdpa_truncated", "soundalike"]
    assert report["naive"] == {"clips_per_s": 0.5, "seconds_per_clip": 2.0, "peak_mem_mb": 1234.6}
    assert report["soundalike"]["clips_per_s"] == 1.6
    assert report["soundalike"]["seconds_per_clip"] == 0.625
    assert report["ratio"] == pytest.approx(3.2)
    assert report["steps"]["sdpa_full"]["clips_per_s"] == 0.8
    assert report["steps"]["sdpa_truncated"]["clips_per_s"] == 1.0
    assert report["parity_l2"] == pytest.approx(PARITY_L2)
    assert report["device"] == "cpu" and report["clips"] == 4
    lines = format_report(report).splitlines()
    assert lines[0].split() == ["naive", "0.500", "clips/s", "peak", "1234.6", "MB"]
    assert lines[-1].split() == ["ratio", "3.20x", "on", "cpu"]


def test_without_the_naive_path_only_soundalike_is_measured(tiny_mert_dir: Path) -> None:
    fake = FakePaths()
    report = _bench_on(tiny_mert_dir, clips=4, batch_size=1, naive=False, measure=fake)
    assert fake.measured == ["soundalike"]
    assert "ratio" not in report and "naive" not in report
    assert report["soundalike"]["clips_per_s"] == 1.6


def test_the_naive_path_and_soundalike_embed_alike_on_the_tiny_model(
    tiny_mert_dir: Path,
) -> None:
    report = _bench_on(tiny_mert_dir, clips=1, batch_size=2, clip_seconds=3.0)
    assert report["parity_l2"] < 1e-3
    for path in ("naive", "soundalike"):
        assert report[path]["clips_per_s"] > 0
        assert report[path]["peak_mem_mb"] > 0


def test_a_directory_without_weights_fails_with_the_typed_error(
    tiny_mert_dir: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "no-weights"
    shutil.copytree(tiny_mert_dir, directory)
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="model.safetensors"):
        _bench_on(directory, clips=1, batch_size=1)


def test_a_bf16_run_also_times_the_fp32_fast_path_and_prints_the_ratio(
    tiny_mert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soundalike.ingest import precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    seconds = {"soundalike_fp32": 4.0, "soundalike": 2.0}
    asked: list[tuple[str, str]] = []

    def measure(run: PathRun) -> PathMeasurement:
        asked.append((run.path, run.precision))
        vectors = np.tile([[1.0, 0.0]], (run.clips, 1))
        vectors[1] = [3.0, 4.0] if run.path == "soundalike" else [4.0, 3.0]
        return PathMeasurement(seconds[run.path], 100.0, vectors)

    report = _bench_on(
        tiny_mert_dir, clips=2, batch_size=1, naive=False, precision="auto", measure=measure
    )
    # The path itself picks fp32 for soundalike_fp32; `precision` is what soundalike's path runs.
    assert asked == [("soundalike_fp32", "bf16"), ("soundalike", "bf16")]
    assert (report["precision"], report["compute_precision"]) == ("auto", "bf16")
    assert report["precision_ratio"] == pytest.approx(2.0)
    assert report["precision_l2_max"] == pytest.approx(PARITY_L2)
    assert report["precision_l2_mean"] == pytest.approx(PARITY_L2 / 2)
    last = format_report(report).splitlines()[-1]
    assert last.startswith("precision") and "auto (bf16) vs fp32: 2.00x" in last
    assert "cpu family" in last


def test_a_cpu_without_native_bf16_times_fp32_only_under_auto(
    tiny_mert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soundalike.ingest import precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_bf16_features", lambda: [])
    fake = FakePaths()
    report = _bench_on(
        tiny_mert_dir, clips=4, batch_size=1, naive=False, precision="auto", measure=fake
    )
    assert fake.measured == ["soundalike"] and report["compute_precision"] == "fp32"
    assert "precision_ratio" not in report
