"""MERT-v1-95M's on-disk layout: its released config and a writer of checkpoints in that layout.

The writer builds random weights of the same architecture and saves them the way the released
checkpoint names them (no "hubert." prefix, weight-norm tensors as `weight_g`/`weight_v`, an extra
`masked_spec_embed`). Tests use a tiny variant; `bench --random-weights` uses the full size, so the
loader is exercised on exactly the layout it meets in the wild without downloading anything.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from soundalike.core.errors import InvalidRequest

# The config.json published with m-a-p/MERT-v1-95M, field for field.
MERT_V1_95M_CONFIG: dict[str, Any] = {
    "_name_or_path": "m-a-p/MERT-v1-95M",
    "activation_dropout": 0.0,
    "apply_spec_augment": True,
    "architectures": ["MERTModel"],
    "attention_dropout": 0.1,
    "attention_relax": -1.0,
    "auto_map": {
        "AutoConfig": "configuration_MERT.MERTConfig",
        "AutoModel": "modeling_MERT.MERTModel",
    },
    "bos_token_id": 1,
    "classifier_proj_size": 256,
    "conv_bias": False,
    "conv_dim": [512, 512, 512, 512, 512, 512, 512],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False,
    "deepnorm": False,
    "do_stable_layer_norm": False,
    "eos_token_id": 2,
    "feat_extract_activation": "gelu",
    "feat_extract_dropout": 0.0,
    "feat_extract_norm": "group",
    "feat_proj_dropout": 0.1,
    "feat_proj_layer_norm": True,
    "feature_extractor_cqt": False,
    "feature_extractor_cqt_bins": 336,
    "final_dropout": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "layerdrop": 0.1,
    "mask_feature_length": 10,
    "mask_feature_prob": 0.0,
    "mask_time_length": 10,
    "mask_time_prob": 0.05,
    "model_type": "mert_model",
    "num_attention_heads": 12,
    "num_conv_pos_embedding_groups": 16,
    "num_conv_pos_embeddings": 128,
    "num_feat_extract_layers": 7,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "sample_rate": 24000,
    "tokenizer_class": "Wav2Vec2CTCTokenizer",
    "torch_dtype": "float32",
    "transformers_version": "4.25.1",
    "use_weighted_layer_sum": False,
    "vocab_size": 32,
}

# Same conv strides and kernels as MERT-v1-95M (so 75 frames per second holds), everything else
# tiny so that a 30 s window embeds in a few tens of milliseconds on a CPU.
TINY_MERT_OVERRIDES: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 12,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [32] * 7,
    "num_conv_pos_embedding_groups": 4,
}

# The preprocessor_config.json published with m-a-p/MERT-v1-95M.
MERT_PREPROCESSOR_CONFIG: dict[str, Any] = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0,
    "return_attention_mask": True,
    "sampling_rate": 24000,
}

# How recent torch names the weight-norm tensors of the positional conv, and how MERT names them.
PARAMETRIZED_TO_MERT_NAMES: dict[str, str] = {
    "encoder.pos_conv_embed.conv.parametrizations.weight.original0": (
        "encoder.pos_conv_embed.conv.weight_g"
    ),
    "encoder.pos_conv_embed.conv.parametrizations.weight.original1": (
        "encoder.pos_conv_embed.conv.weight_v"
    ),
}


def write_mert_checkpoint(
    directory: str | Path,
    *,
    config_overrides: dict[str, Any] | None = None,
    seed: int = 0,
    weights_format: Literal["safetensors", "bin"] = "safetensors",
) -> Path:
    """Write a random-weight checkpoint in MERT's exact layout; returns the directory."""
    import torch  # here, not at import: the config constants above are read without torch
    from transformers import HubertConfig, HubertModel

    from soundalike.ingest.model import hubert_config_from_mert

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(MERT_V1_95M_CONFIG)
    config.update(config_overrides or {})

    hubert_config: HubertConfig = hubert_config_from_mert(config, source=str(directory))
    torch.manual_seed(seed)
    model = HubertModel(hubert_config).eval()
    state = {
        PARAMETRIZED_TO_MERT_NAMES.get(name, name): tensor.detach().contiguous().clone()
        for name, tensor in model.state_dict().items()
    }

    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "preprocessor_config.json").write_text(
        json.dumps(MERT_PREPROCESSOR_CONFIG, indent=2) + "\n"
    )
    if weights_format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    elif weights_format == "bin":
        torch.save(state, directory / "pytorch_model.bin")
    else:
        raise InvalidRequest(
            f"weights_format must be 'safetensors' or 'bin', not {weights_format!r}"
        )
    return directory
