"""`--precision auto|fp32|bf16`: what auto picks, what an explicit bf16 does on a CPU without
native bf16, and how far bf16 vectors are from fp32 ones (the tiny random MERT checkpoint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundalike.core.errors import UnsupportedModelConfig
from soundalike.ingest import precision as precision_module
from soundalike.ingest.devtools.synth import synth_track
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.model import load_mert
from soundalike.ingest.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU like an AVX2-only one: torch's capability checks find no AVX512_BF16 nor AMX."""
    monkeypatch.setattr(precision_module, "cpu_bf16_features", lambda: [])


@pytest.fixture
def with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)


def clips(count: int = 4, seconds: float = 2.0) -> list[list[np.ndarray]]:
    return [
        [
            synth_track(
                artist_seed=i, track_seed=0, seconds=seconds, sample_rate=24000, channels=1
            )[0]
        ]
        for i in range(count)
    ]


def test_auto_is_fp32_on_a_cpu_without_native_bf16(
    tiny_mert_dir: Path, without_native_bf16: None
) -> None:
    loaded = load_mert(str(tiny_mert_dir), layer=2, device="cpu", precision="auto")
    assert (loaded.precision, loaded.dtype) == ("fp32", torch.float32)


def test_explicit_bf16_is_refused_on_a_cpu_without_native_bf16(
    tiny_mert_dir: Path, without_native_bf16: None
) -> None:
    with pytest.raises(UnsupportedModelConfig, match="no native bf16.*40x slower"):
        load_mert(str(tiny_mert_dir), layer=2, device="cpu", precision="bf16")


def test_auto_is_bf16_on_cuda_and_on_a_cpu_with_native_bf16(with_native_bf16: None) -> None:
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(UnsupportedModelConfig, match="not one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_the_capability_check_asks_torch() -> None:
    # Whatever this machine is, the answer agrees with torch's own checks.
    expected = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert bool(precision_module.cpu_bf16_features()) == expected


@pytest.mark.parametrize("optimize", [True, False], ids=["fast-path", "autocast"])
def test_bf16_unit_vectors_are_within_0_01_of_fp32(
    tiny_mert_dir: Path, with_native_bf16: None, optimize: bool
) -> None:
    tracks = clips()
    vectors = {}
    for precision in ("fp32", "bf16"):
        loaded = load_mert(
            str(tiny_mert_dir), layer=11, device="cpu", precision=precision, optimize=optimize
        )
        assert loaded.precision == precision
        vectors[precision] = MertEmbedder(loaded, batch_size=2).embed_tracks(tracks)
    distances = np.linalg.norm(vectors["bf16"] - vectors["fp32"], axis=1)
    assert np.isfinite(distances).all()
    assert 0 < distances.max() < 0.01  # bf16 really ran, and stayed close


def test_the_engine_says_which_precision_made_its_vectors(tiny_mert_dir: Path) -> None:
    loaded = load_mert(str(tiny_mert_dir), layer=2, device="cpu", precision="fp32")
    assert VectorEngine(MertEmbedder(loaded), Decoding()).precision == "fp32"


def test_load_mert_without_a_precision_keeps_exact_fp32_on_the_cpu(
    tiny_mert_dir: Path, with_native_bf16: None
) -> None:
    # The library default is what load_mert always did (bf16 only on CUDA); `auto` is the
    # application's default, handed in from the settings.
    loaded = load_mert(str(tiny_mert_dir), layer=2, device="cpu")
    assert (loaded.precision, loaded.dtype) == ("fp32", torch.float32)
