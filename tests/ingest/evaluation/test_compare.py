"""The --compare sections on vectors whose spans and accuracies are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from soundalike.ingest.evaluation.compare import artist_model_comparison, chunked_comparison
from soundalike.ingest.evaluation.metrics import evaluate_vectors

LABELS = ["A", "A", "B", "B", "C", "C"]


def twice(*rows: list[float]) -> np.ndarray:
    """Each artist's two tracks are the same vector: its centroid is that vector."""
    return np.array([row for row in rows for _ in range(2)], dtype=float)


def test_chunked_span_change_on_known_spans() -> None:
    # Full: A x, B y, C -x. Pair cosines 0, -1, 0: span 1.
    full = twice([1, 0, 0], [0, 1, 0], [-1, 0, 0])
    # Chunked: A x, B y, C at 60° from x towards z. Pair cosines 0, 0.5, 0: span 0.5.
    chunked = twice([1, 0, 0], [0, 1, 0], [0.5, 0, np.sqrt(0.75)])
    per_layer = {11: evaluate_vectors(full, LABELS)}

    section = chunked_comparison(per_layer, {11: chunked}, LABELS, 11, 5, 10.0, 3.0)

    assert section["full_span"] == pytest.approx(1.0, abs=1e-6)
    assert section["chunked_span"] == pytest.approx(0.5, abs=1e-6)
    # (1 - 0.5) / 0.5: the full window spreads artists twice as far.
    assert section["span_change_full_vs_chunked"] == pytest.approx(1.0, abs=1e-5)
    # Identical tracks per artist: every track finds its own artist either way.
    assert section["full_loo_accuracy"] == section["chunked_loo_accuracy"] == 1.0
    assert (section["chunk_seconds"], section["chunks_per_track"], section["layer"]) == (
        10.0,
        3.0,
        11,
    )
    assert list(section["layers"]) == ["11"]


def test_artist_model_section_on_an_artist_with_two_styles(
    two_styles: tuple[np.ndarray, list[str]],
) -> None:
    vectors, labels = two_styles
    single = evaluate_vectors(vectors, labels)

    section = artist_model_comparison(vectors, labels, single, 5, 0)

    assert section["single"]["loo"]["accuracy"] == pytest.approx(0.4)
    assert section["multi"]["loo"]["accuracy"] == 1.0
    # Up to 3 centroids, at least two tracks each: 6 tracks -> 3, 4 tracks -> 2.
    assert section["centroids_per_artist"] == {"A": 3, "B": 2}
    assert section["single"]["span"] == 0.0  # two artists: one pair, nothing to span
