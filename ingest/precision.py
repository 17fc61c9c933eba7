"""Which floating-point precision the model computes in: `auto`, `fp32` or `bf16`.

`auto` is bf16 where the hardware computes it natively (CUDA; a CPU with AVX512_BF16 or AMX,
as torch's own CPU capability checks report) and fp32 elsewhere: bf16 emulated on an AVX2-only
CPU is ~40x slower than fp32 (docs/model.md). `bf16` asked explicitly on a CPU without native
bf16 is refused with an error that says so, rather than silently running 40x slower or silently
running fp32 while the catalogue records bf16.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from soundalike.core.errors import UnsupportedModelConfig

Precision = Literal["auto", "fp32", "bf16"]
ComputePrecision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEFAULT_PRECISION: Precision = "auto"
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


def cpu_bf16_features() -> list[str]:
    """The native bf16 features torch finds on this CPU: 'avx512_bf16', 'amx_tile' (empty when
    neither, or when this torch build cannot tell)."""
    checks = (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_tile", "_is_amx_tile_supported"))
    found = []
    for name, check in checks:
        probe = getattr(torch.cpu, check, None)
        try:
            if probe is not None and probe():
                found.append(name)
        except RuntimeError:
            continue
    return found


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512_BF16 or AMX) and oneDNN can use it."""
    if not cpu_bf16_features():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (RuntimeError, AttributeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> ComputePrecision:
    """`auto`/`fp32`/`bf16` on `device` → the precision the model will compute in.

    Raises UnsupportedModelConfig for an unknown name, and for `bf16` on a CPU without native
    bf16 (it would run ~40x slower than fp32)."""
    if precision not in PRECISIONS:
        raise UnsupportedModelConfig(
            f"precision {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if precision == "fp32":
        return "fp32"
    if device.type == "cuda":
        return "bf16"
    native = device.type == "cpu" and cpu_has_native_bf16()
    if precision == "auto":
        return "bf16" if native else "fp32"
    if not native:
        raise UnsupportedModelConfig(
            f"precision 'bf16' was asked for on {device.type}, which has no native bf16 "
            "(no AVX512_BF16 or AMX on this CPU): emulated bf16 runs ~40x slower than fp32. "
            "Use --precision auto (fp32 here) or fp32."
        )
    return "bf16"
