"""The defaults of what is embedded, defined once. Settings, the CLI, the pipeline, the
evaluation and the benchmarks all read them from here (importing this module is cheap: no
torch, no FFmpeg)."""

from __future__ import annotations

DEFAULT_MODEL = "m-a-p/MERT-v1-95M"
# Layer 11 separated artists best in the reference experiments (docs/model.md).
DEFAULT_LAYER = 11
DEFAULT_EXCERPT = "centre"
# One 30 s window through the transformer in one pass: never chunked (docs/model.md).
DEFAULT_WINDOW_SECONDS = 30.0
DEFAULT_MIN_DURATION_SECONDS = 3.0
DEFAULT_SILENCE_RMS = 1e-3
# Windows of equal length per forward pass off CUDA (settings' SOUNDALIKE_BATCH_SIZE unset,
# MertEmbedder). One: a 30 s window's GEMMs (2,249 rows) already fill the CPU, and batches of 4
# were 5-6 % slower per window in fp32 and bf16 and doubled bf16's peak memory
# (docs/benchmarks.md, 2026-12-05).
DEFAULT_BATCH_SIZE = 1
# Decoding processes during ingest (settings' SOUNDALIKE_WORKERS, the flow, the library).
DEFAULT_WORKERS = 2
