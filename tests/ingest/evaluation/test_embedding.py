"""Re-embedding for the evaluation: chunks, and every hidden state from one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.evaluation.embedding import (
    HiddenStateEmbedder,
    chunk_window,
    model_layer_count,
)
from soundalike.ingest.model import load_mert


def test_chunks_cover_the_window_with_equal_lengths() -> None:
    chunks = chunk_window(np.arange(12), 5)
    assert [c.tolist() for c in chunks] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [7, 8, 9, 10, 11],
    ]
    assert [c.tolist() for c in chunk_window(np.arange(10), 5)] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
    ]
    assert [c.tolist() for c in chunk_window(np.arange(4), 5)] == [[0, 1, 2, 3]]


def test_every_hidden_state_matches_a_model_loaded_to_that_depth(
    tiny_mert_dir: Path, tiny_embedder: MertEmbedder
) -> None:
    assert model_layer_count(str(tiny_mert_dir), None) == 12
    rng = np.random.default_rng(0)
    windows = [rng.standard_normal(24000).astype(np.float32) for _ in range(3)]
    sweep = HiddenStateEmbedder(tiny_embedder.loaded, [3, 11], batch_size=2)
    vectors = sweep.embed_layers(windows)
    np.testing.assert_allclose(vectors[11], tiny_embedder.embed_windows(windows), atol=1e-4)
    shallow = MertEmbedder(load_mert(str(tiny_mert_dir), layer=3, device="cpu"), batch_size=2)
    np.testing.assert_allclose(vectors[3], shallow.embed_windows(windows), atol=1e-4)


def test_layers_deeper_than_the_loaded_model_are_refused(tiny_embedder: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"layers \[12\] exceed the 11"):
        HiddenStateEmbedder(tiny_embedder.loaded, [12])
