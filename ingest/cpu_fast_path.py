"""The CPU fast path: numerically equivalent module swaps, done once at load time (parity is
tested against a plain HubertModel).

Why they pay off on CPU: torch's fp32 matmul goes to MKL, which on the AMD EPYC we measured
reached ~200 GFLOP/s on the transformer's GEMMs, while oneDNN (bundled with torch) with the
weight pre-packed in its own layout reached ~400. The conv feature extractor becomes GEMMs over
a channels-last window view (one big matmul per layer instead of a direct convolution), Q/K/V
become one GEMM, and the weight-normed positional conv weight is computed once.

In bf16 (`optimize_for_cpu(module, torch.bfloat16)`, for CPUs with native bf16) the linears
(fused QKV, output, FFN, feature projection), the conv feature extractor (oneDNN's own bf16
convolutions: faster there than the GEMM formulation) and the positional conv run in bf16 and
the hidden states stay bf16 between them; the normalisation statistics (the conv
extractor's GroupNorm/LayerNorm, every LayerNorm) are computed in fp32, SDPA runs in fp32 (torch's
bf16 CPU kernel was no faster on the machine measured), and the caller pools and L2-normalises
in fp32 (ingest/embed.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn


def _onednn_linear_available(dtype: torch.dtype = torch.float32) -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        probe = torch.ones(2, 3, dtype=dtype)
        weight = torch.ones(4, 3, dtype=dtype)
        out = torch.ops.mkldnn._linear_pointwise(
            probe, weight.to_mkldnn(), torch.zeros(4, dtype=dtype), "none", [], ""
        )
    except (RuntimeError, AttributeError):
        return False
    return bool(torch.allclose(out.float(), torch.full((2, 4), 3.0)))


class OneDnnLinear(nn.Module):
    """y = x Wᵀ + b with W kept in oneDNN's layout; inputs and outputs are ordinary tensors."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        self.dtype = dtype
        self.packed_weight = weight.detach().to(dtype).contiguous().to_mkldnn()
        # A copy, not a view: the checkpoint's tensors may share one memory-mapped file.
        self.bias = None if bias is None else bias.detach().to(dtype).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(self.dtype)
        out = torch.ops.mkldnn._linear_pointwise(
            rows, self.packed_weight, self.bias, "none", [], ""
        )
        return out.reshape(*x.shape[:-1], self.out_features)


class _CastingInput(nn.Module):
    """A module whose input is cast to `dtype` first (the bf16 feature extractor; the fallback
    linears' counterpart of OneDnnLinear's own cast)."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.inner(x.to(self.dtype)))


class FusedSelfAttention(nn.Module):
    """HubertAttention (self-attention, SDPA) with Q, K and V computed by one GEMM."""

    # `attention` is transformers' HubertAttention, typed Any: its parts are attributes set at
    # runtime, which nn.Module's stubs see only as `Tensor | Module`.
    def __init__(self, attention: Any, make_linear: Any) -> None:
        super().__init__()
        self.num_heads = int(attention.num_heads)
        self.head_dim = int(attention.head_dim)
        self.scaling = float(attention.scaling)
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        weight = torch.cat([p.weight for p in projections])
        bias = torch.cat([p.bias for p in projections])
        self.qkv_proj = make_linear(weight, bias)
        self.out_proj = make_linear(attention.out_proj.weight, attention.out_proj.bias)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> tuple[torch.Tensor, None]:
        batch, frames, _width = hidden_states.shape
        # SDPA itself runs in fp32: torch's CPU flash attention was no faster in bf16 than in
        # fp32 on an AVX512_BF16 EPYC without AMX (0.101 vs 0.100 s per layer for a 30 s
        # window, docs/benchmarks.md), so the more exact one; the casts are cheap.
        qkv = self.qkv_proj(hidden_states).float()
        qkv = qkv.view(batch, frames, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=self.scaling
        )
        attended = attended.transpose(1, 2).reshape(batch, frames, self.num_heads * self.head_dim)
        return self.out_proj(attended), None


class GemmFeatureEncoder(nn.Module):
    """The strided conv feature extractor as GEMMs over windows of a channels-last signal.

    With the signal stored time-major (frames, channels), the receptive field of output frame t
    is one contiguous run of kernel*channels floats starting at t*stride*channels, so each conv
    layer is a matrix product of that (overlapping) window view with the reshaped kernel.
    Returns (batch, channels, frames) like HubertFeatureEncoder, as a transposed view. fp32
    only: in bf16 oneDNN's own convolutions were faster (see `optimize_for_cpu`).
    """

    # Work goes block by block so that only one block of windows is materialised at a time (not
    # the whole unfolded signal); sized in bytes, so small models issue few ops.
    BLOCK_BYTES = 32 * 2**20
    MIN_BLOCK_ROWS = 1024

    # `encoder` is transformers' HubertFeatureEncoder, typed Any for the same reason as
    # FusedSelfAttention's `attention`.
    def __init__(self, encoder: Any, make_linear: Any) -> None:
        super().__init__()
        self.kernels: list[int] = []
        self.strides: list[int] = []
        self.out_channels: list[int] = []
        self.projections = nn.ModuleList()
        self.norm_kinds: list[str] = []
        self.norms = nn.ModuleList()
        self.activations = nn.ModuleList()
        for conv_layer in encoder.conv_layers:
            conv: nn.Conv1d = conv_layer.conv
            out_channels, in_channels, kernel = conv.weight.shape
            # (out, in, k) → (out, k*in) to match the window's [k][in] memory order.
            weight = conv.weight.detach().permute(0, 2, 1)
            weight = weight.reshape(out_channels, kernel * in_channels)
            self.kernels.append(int(kernel))
            self.strides.append(int(conv.stride[0]))
            self.out_channels.append(int(out_channels))
            self.projections.append(make_linear(weight, conv.bias))
            norm = getattr(conv_layer, "layer_norm", None)
            if isinstance(norm, nn.GroupNorm):
                self.norm_kinds.append("group")
            elif isinstance(norm, nn.LayerNorm):
                self.norm_kinds.append("layer")
            else:
                self.norm_kinds.append("none")
            self.norms.append(norm if norm is not None else nn.Identity())
            self.activations.append(conv_layer.activation)

    def _block_rows(self, floats_per_row: int) -> int:
        return max(self.MIN_BLOCK_ROWS, self.BLOCK_BYTES // (4 * floats_per_row))  # fp32

    def _conv(
        self,
        signal: torch.Tensor,
        index: int,
        epilogue: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        kernel, stride = self.kernels[index], self.strides[index]
        frames_in, channels = signal.shape
        frames_out = (frames_in - kernel) // stride + 1
        if frames_out < 1:
            raise ValueError(f"input of {frames_in} frames is shorter than the conv kernel")
        windows = signal.as_strided((frames_out, kernel * channels), (stride * channels, 1))
        output = signal.new_empty((frames_out, self.out_channels[index]))
        projection = self.projections[index]
        rows = self._block_rows(kernel * channels)
        for start in range(0, frames_out, rows):
            block = windows[start : start + rows]
            result = projection(block if block.is_contiguous() else block.contiguous())
            output[start : start + rows] = epilogue(result) if epilogue else result

        return output

    def _group_norm_activation(self, signal: torch.Tensor, index: int) -> torch.Tensor:
        """GroupNorm with one group per channel (each channel over time), then the activation.

        Two-pass mean/variance like GroupNorm's; column reductions run block by block because
        torch's strided var_mean over the time axis of a channels-last tensor is slow.
        """
        # Only group-norm layers come here (see norm_kinds).
        norm, activation = cast(nn.GroupNorm, self.norms[index]), self.activations[index]
        frames, channels = signal.shape
        rows = self._block_rows(channels)
        mean = signal.sum(0) / frames
        squares = torch.zeros_like(mean)
        for block in signal.split(rows):
            squares += (block - mean).square_().sum(0)
        scale = norm.weight * torch.rsqrt(squares / frames + norm.eps)
        shift = norm.bias - mean * scale
        for block in signal.split(rows):
            block.copy_(activation(block.mul(scale).add_(shift)))
        return signal

    def _one(self, waveform: torch.Tensor) -> torch.Tensor:
        signal = waveform.reshape(-1, 1).contiguous()
        for index, kind in enumerate(self.norm_kinds):
            norm, activation = self.norms[index], self.activations[index]
            if kind == "group":
                signal = self._group_norm_activation(self._conv(signal, index, None), index)
            elif kind == "layer":

                def norm_then_activation(
                    block: torch.Tensor, norm: nn.Module = norm, activation: nn.Module = activation
                ) -> torch.Tensor:
                    return activation(norm(block))

                signal = self._conv(signal, index, norm_then_activation)
            else:
                signal = self._conv(signal, index, activation)
        return signal

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        features = torch.stack([self._one(waveform) for waveform in input_values])
        return features.transpose(1, 2)


def optimize_for_cpu(module: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Swap HubertModel's hot modules for faster ones (in place): numerically equivalent in
    fp32; in bf16 (`dtype`), the GEMMs, the positional conv and attention compute in bf16 and
    the normalisation statistics in fp32 (see the module's docstring)."""
    from torch.nn.utils import parametrize

    # HubertModel's submodules are attributes set at runtime, which nn.Module's stubs type as
    # `Tensor | Module`; the model is walked untyped.
    hubert: Any = module

    if _onednn_linear_available(dtype):

        def make_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
            return OneDnnLinear(weight, bias, dtype)

    else:  # keep the math, lose only the speed

        def make_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            linear.weight.data = weight.detach().to(dtype).contiguous()
            if bias is not None:
                linear.bias.data = bias.detach().to(dtype).contiguous()
            linear.requires_grad_(False)
            return linear if dtype == torch.float32 else _CastingInput(linear, dtype)

    if dtype == torch.float32:
        hubert.feature_extractor = GemmFeatureEncoder(hubert.feature_extractor, make_linear)
    else:
        # In bf16 oneDNN's direct convolution beat the GEMM formulation (1.0 s vs 1.4 s for a
        # 30 s window on the EPYC measured): the convs keep their modules with bf16 weights;
        # the norms keep fp32 weights and, given bf16 input, compute their statistics in fp32.
        for conv_layer in hubert.feature_extractor.conv_layers:
            conv_layer.conv.to(dtype)
        hubert.feature_extractor = _CastingInput(hubert.feature_extractor, dtype)
    projection = hubert.feature_projection
    projection.projection = make_linear(projection.projection.weight, projection.projection.bias)
    conv = hubert.encoder.pos_conv_embed.conv
    if parametrize.is_parametrized(conv):
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
        conv.weight.requires_grad_(False)
    # The positional conv computes in the hidden states' dtype (LayerNorms keep fp32 weights:
    # given bf16 input they compute their statistics in fp32 and return bf16).
    conv.to(dtype)
    for layer in hubert.encoder.layers:
        layer.attention = FusedSelfAttention(layer.attention, make_linear)
        feed_forward = layer.feed_forward
        for name in ("intermediate_dense", "output_dense"):
            linear = getattr(feed_forward, name)
            setattr(feed_forward, name, make_linear(linear.weight, linear.bias))
    # safetensors maps the whole file and the checkpoint's tensors are views of it: owning copies
    # of the few tensors left in place let the mapping, and the swapped-out originals, go.
    for parameter in module.parameters():
        parameter.data = parameter.data.clone()
    return module
