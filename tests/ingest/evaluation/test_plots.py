"""The 2-D projection behind map.png and the heatmap's artist order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundalike.ingest.evaluation.metrics import evaluate_vectors
from soundalike.ingest.evaluation.plots import display_order, pca_2d


def test_pca_2d_finds_the_line_points_lie_on() -> None:
    t = np.linspace(-1, 1, 7)[:, None]
    points = np.hstack([t, 2 * t, -t]) + 5.0
    (projected, extra), shares = pca_2d(points, np.array([[5.0, 5.0, 5.0]]))
    assert shares == pytest.approx([1.0, 0.0], abs=1e-12)
    # Along the unit direction (1, 2, -1) / sqrt(6), with its largest loading positive.
    np.testing.assert_allclose(projected[:, 0], t[:, 0] * math.sqrt(6), atol=1e-9)
    np.testing.assert_allclose(extra, [[0.0, 0.0]], atol=1e-9)


def test_heatmap_puts_similar_artists_next_to_each_other() -> None:
    # Centroids at 0° (A), 100° (B) and 10° (C): A and C belong together, B at one end.
    angles = [-5, 5, 95, 105, 5, 15]
    vectors = np.array([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    evaluation = evaluate_vectors(vectors, ["A", "A", "B", "B", "C", "C"])
    order = [evaluation.artists[i] for i in display_order(evaluation)]
    assert order.index("B") in (0, 2)
