"""Load MERT natively as a `transformers.HubertModel`, truncated to the chosen layer.

MERT's published code needs `trust_remote_code=True`; with its released config the forward pass is
exactly HubertModel's (docs/model.md), so soundalike maps config.json onto a HubertConfig itself,
loads the tensors strictly, and refuses any config it cannot represent exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from soundalike.core.errors import CheckpointMismatch, ModelUnavailable, UnsupportedModelConfig
from soundalike.ingest.cpu_fast_path import optimize_for_cpu
from soundalike.ingest.defaults import DEFAULT_LAYER, DEFAULT_MODEL
from soundalike.ingest.precision import DTYPES, ComputePrecision, resolve_precision

ACCEPTED_MODEL_TYPES = ("mert_model", "hubert")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# MERT config switches whose non-default values change the forward pass in ways HubertModel does
# not compute. field -> (predicate that is True when the value is unsupported, why).
UNSUPPORTED_CONFIG_VALUES: dict[str, tuple[Any, str]] = {
    "feature_extractor_cqt": (
        lambda v: bool(v),
        "CQT features concatenated to the conv features are not part of HubertModel",
    ),
    "deepnorm": (
        lambda v: bool(v),
        "DeepNorm scales residuals by (2N)^0.25, HubertModel adds them unscaled",
    ),
    "attention_relax": (
        lambda v: v is not None and float(v) > 0,
        "relaxed attention rescales attention logits, HubertModel uses plain softmax",
    ),
    "do_stable_layer_norm": (
        lambda v: bool(v),
        "pre-LN encoders put the LayerNorm after the last layer, so hidden_states[L] would not "
        "equal a truncated model's output",
    ),
    "conv_pos_batch_norm": (
        lambda v: bool(v),
        "a BatchNorm positional embedding is not in MERT's layout",
    ),
    "use_weighted_layer_sum": (
        lambda v: bool(v),
        "a weighted sum of layers is a classification head, not the base model",
    ),
    "add_adapter": (lambda v: bool(v), "adapter layers are not part of HubertModel"),
    "adapter_attn_dim": (lambda v: v is not None, "attention adapters are not part of HubertModel"),
}

# Fields of config.json that shape HubertModel; everything else (dropouts, CTC, tokenizer) is
# irrelevant for inference in eval mode.
ARCHITECTURE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "feat_extract_norm",
    "feat_extract_activation",
    "conv_dim",
    "conv_stride",
    "conv_kernel",
    "conv_bias",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "feat_proj_layer_norm",
    "mask_time_prob",
    "mask_feature_prob",
)


@dataclass
class LoadedMert:
    """A MERT encoder truncated to `layer` transformer layers, ready for inference. `dtype` is
    the compute dtype `precision` resolved to (ingest/precision.py)."""

    module: nn.Module
    model_id: str
    revision: str | None
    layer: int
    sample_rate: int
    do_normalize: bool
    hidden_size: int
    device: torch.device
    dtype: torch.dtype
    total_layers: int = 12
    precision: ComputePrecision = "fp32"
    # True when the CPU fast path computes in `dtype` itself (no autocast needed).
    fast_path: bool = False

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The context a forward pass runs in: bf16 autocast on CUDA, and on a CPU module that
        is not the fast path (which computes in bf16 itself); nothing in fp32."""
        if self.dtype == torch.float32 or (self.device.type == "cpu" and self.fast_path):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def resolve_device(device: str) -> torch.device:
    """'auto' → cuda when available, else cpu; anything else as torch understands it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise UnsupportedModelConfig(f"device {device!r} is not a torch device: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {device!r} requested but CUDA is not available here")
    return resolved


def hubert_config_from_mert(config: dict[str, Any], *, source: str) -> Any:
    """Map a MERT (or HuBERT) config.json onto a HubertConfig, refusing what it cannot represent."""
    from transformers import HubertConfig
    from transformers.activations import ACT2FN

    model_type = config.get("model_type")
    if model_type not in ACCEPTED_MODEL_TYPES:
        raise UnsupportedModelConfig(
            f"{source}: config.json model_type={model_type!r} is not supported "
            f"(accepted: {', '.join(ACCEPTED_MODEL_TYPES)})"
        )
    for field, (is_unsupported, why) in UNSUPPORTED_CONFIG_VALUES.items():
        if field in config and is_unsupported(config[field]):
            raise UnsupportedModelConfig(
                f"{source}: config.json {field}={config[field]!r} is not supported: {why}"
            )
    if config.get("feat_extract_norm", "group") not in ("group", "layer"):
        raise UnsupportedModelConfig(
            f"{source}: config.json feat_extract_norm={config['feat_extract_norm']!r} is not "
            "supported (accepted: 'group', 'layer')"
        )
    for field in ("hidden_act", "feat_extract_activation"):
        if field in config and config[field] not in ACT2FN:
            raise UnsupportedModelConfig(
                f"{source}: config.json {field}={config[field]!r} is not a known activation"
            )

    fields = {name: config[name] for name in ARCHITECTURE_FIELDS if name in config}
    conv_lists = [len(fields.get(k, (0,) * 7)) for k in ("conv_dim", "conv_stride", "conv_kernel")]
    num_conv = config.get("num_feat_extract_layers", conv_lists[0])
    if len(set(conv_lists)) != 1 or num_conv != conv_lists[0]:
        raise UnsupportedModelConfig(
            f"{source}: config.json conv_dim/conv_stride/conv_kernel/num_feat_extract_layers "
            f"disagree in length ({conv_lists}, {num_conv})"
        )
    hidden = int(fields.get("hidden_size", 768))
    heads = int(fields.get("num_attention_heads", 12))
    groups = int(fields.get("num_conv_pos_embedding_groups", 16))
    if hidden % heads or hidden % groups:
        raise UnsupportedModelConfig(
            f"{source}: config.json hidden_size={hidden} is not divisible by "
            f"num_attention_heads={heads} and num_conv_pos_embedding_groups={groups}"
        )
    hubert_config = HubertConfig(
        **fields,
        hidden_dropout=0.0,
        activation_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
    )
    hubert_config._attn_implementation = "sdpa"
    return hubert_config


# --- finding the files -----------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _hub_cache_dir() -> str:
    """The hub cache as the environment names it now (huggingface_hub reads it only at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(hf_home, "hub")


def _hub_files(repo_id: str, revision: str | None) -> tuple[Path, Path, Path, str | None]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = _env_flag("HF_HUB_OFFLINE")
    cache_dir = _hub_cache_dir()
    what_to_do = (
        "run once with network access so the weights are cached, or pass a local directory "
        "holding config.json, preprocessor_config.json and the weights"
    )

    def download(filename: str) -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=offline,
            )
        )

    try:
        config_path = download("config.json")
        preprocessor_path = download("preprocessor_config.json")
        weights_path: Path | None = None
        for filename in WEIGHT_FILES:
            try:
                weights_path = download(filename)
                break
            except EntryNotFoundError:
                continue
        if weights_path is None:
            raise ModelUnavailable(
                f"model {repo_id!r}: the repository has none of {', '.join(WEIGHT_FILES)}"
            )
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ModelUnavailable(
            f"model {repo_id!r} was not found on the Hugging Face hub (or needs access); "
            f"check the name, or pass a local directory ({type(exc).__name__})"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelUnavailable(f"model {repo_id!r} has no revision {revision!r}") from exc
    except LocalEntryNotFoundError as exc:
        state = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached"
        raise ModelUnavailable(
            f"model {repo_id!r} is not in the local cache ({cache_dir}) and {state}: {what_to_do}"
        ) from exc
    except (EntryNotFoundError, OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"model {repo_id!r} could not be fetched: {exc}; {what_to_do}"
        ) from exc

    snapshot = config_path.parent
    resolved = snapshot.name if snapshot.parent.name == "snapshots" else revision
    return config_path, preprocessor_path, weights_path, resolved


def _local_files(directory: Path) -> tuple[Path, Path, Path]:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelUnavailable(f"{directory}: no config.json in this model directory")
    for filename in WEIGHT_FILES:
        if (directory / filename).is_file():
            return config_path, directory / "preprocessor_config.json", directory / filename
    raise ModelUnavailable(f"{directory}: none of {', '.join(WEIGHT_FILES)} in this directory")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UnsupportedModelConfig(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UnsupportedModelConfig(f"{path}: expected a JSON object")
    return data


# --- the weights -----------------------------------------------------------------------------


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many different types
        raise CheckpointMismatch(f"{path}: cannot read the weights: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatch(f"{path}: expected a flat mapping of tensor names to tensors")
    return state


def _weight_norm_names(model: nn.Module) -> dict[str, str]:
    """MERT's weight_g/weight_v names → the names this torch/transformers gives them."""
    keys = set(model.state_dict())
    prefix = "encoder.pos_conv_embed.conv."
    if prefix + "parametrizations.weight.original0" in keys:
        return {
            prefix + "weight_g": prefix + "parametrizations.weight.original0",
            prefix + "weight_v": prefix + "parametrizations.weight.original1",
        }
    return {}


def _describe(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _checked_state_dict(
    state: dict[str, torch.Tensor], hubert_config: Any, source: str
) -> dict[str, torch.Tensor]:
    """Rename to this transformers' names and compare against the full model, tensor by tensor."""
    from transformers import HubertModel

    with torch.device("meta"):
        full = HubertModel(hubert_config)
    renames = _weight_norm_names(full)
    state = {renames.get(name, name): tensor for name, tensor in state.items()}
    expected = {name: tuple(t.shape) for name, t in full.state_dict().items()}

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{name} {tuple(state[name].shape)} != {expected[name]}"
        for name in set(expected) & set(state)
        if tuple(state[name].shape) != expected[name]
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_describe(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches: {_describe(wrong_shape)}")
    if problems:
        raise CheckpointMismatch(
            f"{source}: the checkpoint does not match its config.json ({'; '.join(problems)})"
        )
    return state


def _truncated_state_dict(state: dict[str, torch.Tensor], layer: int) -> dict[str, torch.Tensor]:
    kept = {}
    for name, tensor in state.items():
        if name.startswith("encoder.layers.") and int(name.split(".")[2]) >= layer:
            continue
        kept[name] = tensor
    return kept


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's files are: a local directory, or the hub cache (revision resolved)."""

    model_id: str
    revision: str | None
    config: Path
    preprocessor: Path
    weights: Path


def model_files(model: str, revision: str | None = None) -> ModelFiles:
    """Find (downloading when allowed) config.json, preprocessor_config.json and the weights."""
    local = Path(model).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelUnavailable(f"{local}: expected a model directory, found a file")
        config_path, preprocessor_path, weights_path = _local_files(local)
        resolved_dir = str(local.resolve())
        return ModelFiles(resolved_dir, revision, config_path, preprocessor_path, weights_path)
    config_path, preprocessor_path, weights_path, resolved = _hub_files(model, revision)
    return ModelFiles(model, resolved, config_path, preprocessor_path, weights_path)


def load_mert(
    model: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    layer: int = DEFAULT_LAYER,
    device: str = "auto",
    optimize: bool = True,
    precision: str | None = None,
) -> LoadedMert:
    """Load MERT (a local directory or a hub id) truncated to `layer` transformer layers.

    `optimize` swaps modules for faster ones on CPU (ingest/cpu_fast_path.py); off, the module
    is a plain HubertModel. `precision` ('auto', 'fp32', 'bf16': ingest/precision.py) picks the
    compute dtype; an explicit 'bf16' on a CPU without native bf16 is refused. None (the
    default here) is what load_mert always did: bf16 on CUDA, exact fp32 elsewhere; the
    application's default (`SOUNDALIKE_PRECISION`) is 'auto'.
    """
    from transformers import HubertModel

    target = resolve_device(device)
    if precision is None:
        precision = "bf16" if target.type == "cuda" else "fp32"
    compute = resolve_precision(precision, target)
    files = model_files(model, revision)
    config_path, preprocessor_path, weights_path = files.config, files.preprocessor, files.weights
    model_id, resolved_revision = files.model_id, files.revision
    config = _read_json(config_path)
    preprocessor = _read_json(preprocessor_path) if preprocessor_path.is_file() else {}
    hubert_config = hubert_config_from_mert(config, source=str(config_path))
    total_layers = hubert_config.num_hidden_layers
    if not isinstance(layer, int) or not 0 <= layer <= total_layers:
        raise UnsupportedModelConfig(
            f"layer={layer!r} is out of range: this model has hidden states 0..{total_layers}"
        )

    state = _checked_state_dict(_read_state_dict(weights_path), hubert_config, str(weights_path))
    hubert_config.num_hidden_layers = layer
    with torch.device("meta"):
        module = HubertModel(hubert_config)
    # assign=True puts the checkpoint's tensors in place of the meta ones; strict catches leftovers.
    module.load_state_dict(_truncated_state_dict(state, layer), strict=True, assign=True)
    # Only the module may hold the tensors now, so the fast path's swaps free the originals.
    del state
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)

    dtype = DTYPES[compute]
    # Called through nn.Module's type: transformers' stub for PreTrainedModel.to loses the
    # bound self (the call still runs PreTrainedModel.to).
    as_module: nn.Module = module
    as_module.to(target)
    fast_path = optimize and target.type == "cpu"
    if fast_path:
        optimize_for_cpu(module, dtype)

    sample_rate = int(preprocessor.get("sampling_rate", config.get("sample_rate", 24000)))
    if config.get("sample_rate") and int(config["sample_rate"]) != sample_rate:
        raise UnsupportedModelConfig(
            f"{preprocessor_path}: sampling_rate={sample_rate} disagrees with config.json "
            f"sample_rate={config['sample_rate']}"
        )
    return LoadedMert(
        module=module,
        model_id=model_id,
        revision=resolved_revision,
        layer=layer,
        sample_rate=sample_rate,
        do_normalize=bool(preprocessor.get("do_normalize", True)),
        hidden_size=int(hubert_config.hidden_size),
        device=target,
        dtype=dtype,
        total_layers=total_layers,
        precision=compute,
        fast_path=fast_path,
    )
