"""Loading MERT checkpoints natively: strict keys, refusals, the hub cache, truncation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from soundalike.core.errors import CheckpointMismatch, ModelUnavailable, UnsupportedModelConfig
from soundalike.ingest.devtools.checkpoint import MERT_V1_95M_CONFIG, write_mert_checkpoint
from soundalike.ingest.model import load_mert

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def _edit_weights(directory: Path, drop: str | None = None, add: str | None = None) -> None:
    state = load_file(str(directory / "model.safetensors"))
    if drop:
        del state[drop]
    if add:
        state[add] = torch.zeros(3)
    save_file(state, str(directory / "model.safetensors"))


def test_written_checkpoint_uses_merts_tensor_names(tiny_mert_dir: Path) -> None:
    names = set(load_file(str(tiny_mert_dir / "model.safetensors")))
    assert "encoder.pos_conv_embed.conv.weight_g" in names
    assert "encoder.pos_conv_embed.conv.weight_v" in names
    assert "masked_spec_embed" in names
    assert not any(name.startswith("hubert.") or "parametrizations" in name for name in names)
    config = json.loads((tiny_mert_dir / "config.json").read_text())
    assert config["model_type"] == "mert_model"
    assert config["conv_stride"] == MERT_V1_95M_CONFIG["conv_stride"]


def test_safetensors_and_bin_load_to_the_same_model(
    tiny_mert_dir: Path, tiny_mert_overrides: dict, tmp_path: Path
) -> None:
    bin_dir = write_mert_checkpoint(
        tmp_path / "bin", config_overrides=tiny_mert_overrides, seed=0, weights_format="bin"
    )
    assert (bin_dir / "pytorch_model.bin").is_file()
    from_safetensors = load_mert(str(tiny_mert_dir), layer=12, device="cpu")
    from_bin = load_mert(str(bin_dir), layer=12, device="cpu")
    audio = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 24000), np.float32))
    with torch.inference_mode():
        a = from_safetensors.module(audio).last_hidden_state
        b = from_bin.module(audio).last_hidden_state
    assert torch.allclose(a, b)


def test_loaded_module_is_frozen_truncated_and_described(tiny_mert_dir: Path) -> None:
    loaded = load_mert(str(tiny_mert_dir), layer=3, device="cpu")
    assert len(loaded.module.encoder.layers) == 3
    assert not loaded.module.training
    assert not any(p.requires_grad for p in loaded.module.parameters())
    assert (loaded.layer, loaded.sample_rate, loaded.hidden_size) == (3, 24000, 32)
    assert loaded.do_normalize is True
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    assert loaded.revision is None


def test_layer_zero_runs_no_transformer_layer(tiny_mert_dir: Path) -> None:
    loaded = load_mert(str(tiny_mert_dir), layer=0, device="cpu")
    assert len(loaded.module.encoder.layers) == 0
    with torch.inference_mode():
        out = loaded.module(torch.randn(1, 24000)).last_hidden_state
    assert out.shape == (1, 74, 32)


@pytest.mark.parametrize("layer", [-1, 13])
def test_layer_out_of_range_is_refused(tiny_mert_dir: Path, layer: int) -> None:
    with pytest.raises(UnsupportedModelConfig, match="out of range"):
        load_mert(str(tiny_mert_dir), layer=layer, device="cpu")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("feature_extractor_cqt", True),
        ("deepnorm", True),
        ("attention_relax", 32.0),
        ("do_stable_layer_norm", True),
        ("model_type", "wav2vec2"),
        ("feat_extract_norm", "batch"),
        ("conv_pos_batch_norm", True),
    ],
)
def test_unrepresentable_configs_are_refused_by_name(
    tiny_mert_dir: Path, tmp_path: Path, field: str, value: object
) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    _edit_config(directory, **{field: value})
    with pytest.raises(UnsupportedModelConfig, match=field) as error:
        load_mert(str(directory), device="cpu")
    assert repr(value) in str(error.value)


def test_missing_tensor_is_named(tiny_mert_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    _edit_weights(directory, drop="encoder.layers.11.attention.k_proj.weight")
    # Even when layer 11 would be dropped by truncation, the checkpoint must be complete.
    with pytest.raises(CheckpointMismatch, match=r"missing tensors: encoder\.layers\.11\.att"):
        load_mert(str(directory), layer=3, device="cpu")


def test_missing_weight_norm_tensor_is_named_as_loaded(tiny_mert_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    _edit_weights(directory, drop="encoder.pos_conv_embed.conv.weight_g")
    with pytest.raises(CheckpointMismatch, match="missing tensors: encoder.pos_conv_embed"):
        load_mert(str(directory), device="cpu")


def test_unexpected_tensor_is_named(tiny_mert_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    _edit_weights(directory, add="hubert.extra_head.weight")
    with pytest.raises(CheckpointMismatch, match=r"unexpected tensors: hubert\.extra_head\.weight"):
        load_mert(str(directory), device="cpu")


def test_shape_mismatch_is_named(tiny_mert_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    _edit_config(directory, intermediate_size=48)
    with pytest.raises(CheckpointMismatch, match="shape mismatches: .*intermediate_dense"):
        load_mert(str(directory), device="cpu")


def test_directory_without_weights_is_unavailable(tiny_mert_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_mert_dir, tmp_path / "ckpt")
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="model.safetensors"):
        load_mert(str(directory), device="cpu")


def test_offline_and_not_cached_is_unavailable_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelUnavailable, match="not in the local cache") as error:
        load_mert("m-a-p/MERT-v1-95M", device="cpu")
    assert "local directory" in str(error.value)
    assert "HF_HUB_OFFLINE" in str(error.value)


def test_cached_hub_model_loads_offline_with_its_revision(
    tiny_mert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--m-a-p--MERT-v1-95M"
    _copy(tiny_mert_dir, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    loaded = load_mert("m-a-p/MERT-v1-95M", layer=2, device="cpu")
    assert loaded.model_id == "m-a-p/MERT-v1-95M"
    assert loaded.revision == SNAPSHOT
    assert len(loaded.module.encoder.layers) == 2
