"""Fixtures shared by every test package: a tiny MERT-layout checkpoint and its embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# A real Subsonic server (Supysonic) for the ingest and API tests: tests/supysonic_server.py.
from supysonic_server import supysonic, supysonic_factory  # noqa: F401

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


@pytest.fixture(scope="session")
def tiny_mert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-layer random-weight checkpoint in MERT's released layout (safetensors)."""
    from soundalike.ingest.devtools.checkpoint import write_mert_checkpoint

    return write_mert_checkpoint(
        tmp_path_factory.mktemp("tiny-mert"), config_overrides=TINY_MERT_OVERRIDES, seed=0
    )


@pytest.fixture(scope="session")
def tiny_embedder(tiny_mert_dir: Path) -> Any:
    """The soundalike embedder on the tiny checkpoint: layer 11, CPU, batches of 4."""
    from soundalike.ingest.embed import load_embedder

    return load_embedder(str(tiny_mert_dir), layer=11, device="cpu", batch_size=4)


@pytest.fixture(scope="session")
def tiny_engine(tiny_embedder: Any) -> Any:
    """The tiny embedder with the default decoding (centre 30 s window)."""
    from soundalike.ingest.engine import Decoding, VectorEngine

    return VectorEngine(tiny_embedder, Decoding())


@pytest.fixture(scope="session")
def tiny_mert_overrides() -> dict[str, Any]:
    """The tiny architecture, for tests that write a variant of the tiny checkpoint."""
    return dict(TINY_MERT_OVERRIDES)
