"""Fixtures shared by every test package: a tiny MERT-layout checkpoint and its embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# A real Subsonic server (Supysonic) for the ingest and API tests: tests/supysonic_server.py.
from supysonic_server import supysonic, supysonic_factory  # noqa: F401

from soundalike.ingest.devtools.checkpoint import TINY_MERT_OVERRIDES, write_mert_checkpoint


@pytest.fixture(scope="session")
def tiny_mert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-layer random-weight checkpoint in MERT's released layout (safetensors)."""
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
