"""Unset means auto: the batch size and the decoding processes sized to the hardware.

`SOUNDALIKE_BATCH_SIZE` unset: on CUDA (and ROCm, where torch.cuda is HIP) the windows per
forward that fit in the device's free memory; elsewhere DEFAULT_BATCH_SIZE. `SOUNDALIKE_WORKERS`
unset: with a GPU the host's cores (those the process may use: its affinity and its container's
CPU limit) decode (a GPU embeds faster than two processes decode);
on the CPU DEFAULT_WORKERS, since the model wants the cores itself. Importing this module is
cheap (no torch): torch is imported only to ask about a device.
"""

from __future__ import annotations

import math
import os
from typing import Any

from soundalike.ingest.defaults import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS

# Free device memory left to other work (the allocator's fragmentation, cuDNN workspaces,
# another process): the estimate below is a peak, so half of what is free is filled.
FREE_MEMORY_FRACTION = 0.5
# Settings' own ceiling for SOUNDALIKE_BATCH_SIZE: a bigger batch gains nothing once the GPU is
# saturated, and a flow batch of more windows only holds more decoded audio in host memory.
MAX_AUTO_BATCH_SIZE = 256
# Decoding processes with a GPU: every core but one for the flow's own thread (embedding
# hand-offs) and one for the writer thread and the store.
CORES_KEPT_FREE = 2
MAX_AUTO_WORKERS = 64
# cgroup v2: "QUOTA PERIOD" in microseconds, or "max PERIOD" without a CPU limit.
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
# MERT-v1-95M's shape, used when the module does not say (its config carries them).
CONV_CHANNELS = 512
ATTENTION_HEADS = 12
FIRST_CONV_STRIDE = 5
FRAME_SAMPLES = 320  # 75 frames a second at 24 kHz


def window_bytes(
    window_samples: int,
    *,
    hidden_size: int = 768,
    conv_channels: int = CONV_CHANNELS,
    attention_heads: int = ATTENTION_HEADS,
) -> int:
    """Peak device memory one window of `window_samples` costs in a forward pass (an upper
    estimate). The peak is the first conv layer (its fp32 group norm holds input, output and
    statistics of conv_channels x samples/5 values) or the attention scores (heads x frames²
    fp32 scores and their softmax), whichever is larger, plus the hidden states of the layers."""
    first_conv = conv_channels * (window_samples // FIRST_CONV_STRIDE) * 4 * 3
    frames = max(1, window_samples // FRAME_SAMPLES)
    attention = attention_heads * frames * frames * 4 * 2
    hidden = frames * hidden_size * 4 * 8
    return max(first_conv, attention) + hidden


def batch_size_for_memory(
    free_bytes: int, per_window_bytes: int, *, cap: int = MAX_AUTO_BATCH_SIZE
) -> int:
    """Windows per forward that fit in FREE_MEMORY_FRACTION of `free_bytes`: at least 1 (a
    window that does not fit fails like any other out-of-memory), at most `cap`."""
    fits = int(free_bytes * FREE_MEMORY_FRACTION) // max(1, per_window_bytes)
    return max(1, min(cap, fits))


def auto_batch_size(device: Any, module: Any, window_samples: int) -> int:
    """The batch size for `device` (a torch.device) when none is set: sized to the free memory
    of a CUDA device, DEFAULT_BATCH_SIZE elsewhere (CPU, MPS: untested there)."""
    if getattr(device, "type", None) != "cuda":
        return DEFAULT_BATCH_SIZE
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    config = getattr(module, "config", None)
    conv_dim = getattr(config, "conv_dim", None)
    per_window = window_bytes(
        window_samples,
        hidden_size=int(getattr(config, "hidden_size", 768)),
        conv_channels=int(conv_dim[0]) if conv_dim else CONV_CHANNELS,
        attention_heads=int(getattr(config, "num_attention_heads", ATTENTION_HEADS)),
    )
    return batch_size_for_memory(free, per_window)


def workers_for_host(gpu: bool, cpu_count: int | None = None) -> int:
    """Decoding processes: the host's cores (less CORES_KEPT_FREE) with a GPU, else
    DEFAULT_WORKERS."""
    if not gpu:
        return DEFAULT_WORKERS
    cores = cpu_count if cpu_count is not None else usable_cores()
    return max(DEFAULT_WORKERS, min(MAX_AUTO_WORKERS, cores - CORES_KEPT_FREE))


def usable_cores(cgroup_cpu_max: str = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: those it is pinned to, and no more than its cgroup's CPU
    quota (a container's CPU limit, e.g. a Kubernetes pod's), where `os.cpu_count()` would
    count every core of the node."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or DEFAULT_WORKERS
    try:
        with open(cgroup_cpu_max, encoding="ascii") as limit:
            quota, period = limit.read().split()[:2]
        if quota != "max" and int(period) > 0:
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit to read
        pass
    return cores


def device_has_gpu(device: str) -> bool:
    """Whether the `SOUNDALIKE_DEVICE` value runs the model on a GPU (CUDA/ROCm or MPS); `auto`
    asks torch (imported only then)."""
    if device.startswith(("cuda", "mps")):
        return True
    if device != "auto":
        return False
    import torch

    return bool(torch.cuda.is_available())


def auto_workers(workers: int | None, device: str) -> int:
    """`workers` when set, else sized to the host for `device`."""
    return workers if workers is not None else workers_for_host(device_has_gpu(device))
