"""The embedder: parity with an independent HubertModel computation, batching, no padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.devtools.checkpoint import write_mert_checkpoint
from soundalike.ingest.embed import MertEmbedder, load_embedder

PARITY_TOLERANCE = 1e-3  # L2 distance between unit vectors
# bf16 autocast on CUDA vs fp32 on CPU: a chosen bound, not yet measured (no GPU was lent).
BF16_TOLERANCE = 0.05


def _random_audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = int(seconds * 24000)
    tone = np.sin(np.arange(samples) * 2 * np.pi * rng.uniform(100, 900) / 24000)
    return (0.2 * rng.standard_normal(samples) + 0.5 * tone + 0.1).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _reference_vector(directory: Path, audio: np.ndarray, layer: int) -> np.ndarray:
    """Independently of soundalike's loader: transformers' own from_pretrained and processor."""
    import json

    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = json.loads((directory / "config.json").read_text())
    known = HubertConfig().to_dict()
    skip = {"model_type", "architectures", "transformers_version", "torch_dtype"}
    hubert_config = HubertConfig(
        **{k: v for k, v in config.items() if k in known and k not in skip}
    )
    model = HubertModel.from_pretrained(str(directory), config=hubert_config).eval()
    processor = Wav2Vec2FeatureExtractor.from_pretrained(str(directory))
    inputs = processor(audio, sampling_rate=24000, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(inputs["input_values"], output_hidden_states=True).hidden_states
    assert len(hidden) == 13
    return _unit(hidden[layer][0].mean(dim=0).numpy())


@pytest.mark.parametrize("layer", [0, 3, 11, 12])
def test_vector_matches_independent_hubert_computation(tiny_mert_dir: Path, layer: int) -> None:
    audio = _random_audio(7.0, seed=layer)
    embedder = load_embedder(str(tiny_mert_dir), layer=layer, device="cpu", batch_size=2)
    ours = embedder.embed_track([audio])
    reference = _reference_vector(tiny_mert_dir, audio, layer)
    assert np.linalg.norm(ours - reference) < PARITY_TOLERANCE


def test_layer_norm_feature_extractor_with_bias_matches_reference(
    tiny_mert_overrides: dict, tmp_path: Path
) -> None:
    directory = write_mert_checkpoint(
        tmp_path / "layer-norm",
        config_overrides={**tiny_mert_overrides, "feat_extract_norm": "layer", "conv_bias": True},
        seed=5,
    )
    audio = _random_audio(5.0, seed=9)
    ours = load_embedder(str(directory), layer=6, device="cpu").embed_track([audio])
    assert np.linalg.norm(ours - _reference_vector(directory, audio, 6)) < PARITY_TOLERANCE


def test_embed_windows_returns_unnormalised_vectors_in_order(tiny_embedder: MertEmbedder) -> None:
    windows = [_random_audio(5.0, seed=s) for s in range(3)]
    vectors = tiny_embedder.embed_windows(windows)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    for window, vector in zip(windows, vectors, strict=True):
        np.testing.assert_allclose(tiny_embedder.embed_windows([window])[0], vector, atol=1e-5)


def test_batching_equal_lengths_gives_the_same_vectors(tiny_embedder: MertEmbedder) -> None:
    windows = [_random_audio(6.0, seed=20 + s) for s in range(5)]  # batches of 4 then 1
    together = tiny_embedder.embed_windows(windows)
    alone = np.stack([tiny_embedder.embed_windows([w])[0] for w in windows])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)


def test_shorter_window_is_not_padded_among_longer_ones(tiny_embedder: MertEmbedder) -> None:
    short = _random_audio(7.0, seed=40)
    longs = [_random_audio(30.0, seed=41), _random_audio(30.0, seed=42)]
    mixed = tiny_embedder.embed_windows([longs[0], short, longs[1]])
    np.testing.assert_allclose(mixed[1], tiny_embedder.embed_windows([short])[0], atol=1e-5)
    # Padding the short window with zeros would change its vector: the test above can fail.
    padded = np.concatenate([short, np.zeros(24000, np.float32)])
    assert not np.allclose(tiny_embedder.embed_windows([padded])[0], mixed[1], atol=1e-3)


def test_normalisation_makes_the_vector_gain_invariant(tiny_embedder: MertEmbedder) -> None:
    audio = _random_audio(5.0, seed=50)
    quiet, loud = tiny_embedder.embed_windows([0.01 * audio, 3.0 * audio])
    np.testing.assert_allclose(quiet, loud, rtol=1e-3, atol=1e-4)


def test_embed_track_is_the_normalised_mean_of_windows(tiny_embedder: MertEmbedder) -> None:
    windows = [_random_audio(5.0, seed=60 + s) for s in range(3)]
    track = tiny_embedder.embed_track(windows)
    assert track.dtype == np.float32
    assert abs(np.linalg.norm(track) - 1.0) < 1e-5
    expected = _unit(tiny_embedder.embed_windows(windows).mean(axis=0))
    np.testing.assert_allclose(track, expected, atol=1e-6)


def test_embed_tracks_matches_embedding_each_track_alone(tiny_embedder: MertEmbedder) -> None:
    tracks = [
        [_random_audio(5.0, seed=80), _random_audio(5.0, seed=81)],
        [_random_audio(4.0, seed=82)],
        [_random_audio(5.0, seed=83)],
    ]
    together = tiny_embedder.embed_tracks(tracks)
    assert together.shape == (3, 32) and together.dtype == np.float32
    alone = np.stack([tiny_embedder.embed_track(windows) for windows in tracks])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    with pytest.raises(InvalidRequest, match="at least one window"):
        tiny_embedder.embed_tracks([[_random_audio(1.0, seed=84)], []])


def test_window_too_short_for_the_conv_stack_is_refused(tiny_embedder: MertEmbedder) -> None:
    from soundalike.core.errors import AudioTooShort

    with pytest.raises(AudioTooShort, match="at least 400"):
        tiny_embedder.embed_windows([np.ones(100, np.float32)])


def test_spec_describes_the_vectors(tiny_embedder: MertEmbedder, tiny_mert_dir: Path) -> None:
    spec = tiny_embedder.build_spec("windows:3", 30.0)
    # As `soundalike embed --json` and the stored collection show it.
    assert spec.to_dict() == {
        "model": str(tiny_mert_dir.resolve()),
        "revision": None,
        "layer": 11,
        "window_seconds": 30.0,
        "excerpt": "windows:3",
        "pooling": "mean",
        "sample_rate": 24000,
        "dim": 32,
    }


@pytest.mark.gpu
def test_cuda_bf16_vector_is_close_to_cpu_fp32(tiny_mert_dir: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    audio = [_random_audio(30.0, seed=70 + s) for s in range(3)]
    cpu = load_embedder(str(tiny_mert_dir), layer=11, device="cpu")
    gpu = load_embedder(str(tiny_mert_dir), layer=11, device="cuda", batch_size=3)
    assert gpu.loaded.dtype == torch.bfloat16
    cpu_vectors = np.stack([_unit(v) for v in cpu.embed_windows(audio)])
    gpu_vectors = np.stack([_unit(v) for v in gpu.embed_windows(audio)])
    assert np.linalg.norm(cpu_vectors - gpu_vectors, axis=1).max() < BF16_TOLERANCE
