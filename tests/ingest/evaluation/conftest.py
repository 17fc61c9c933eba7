"""Hand-made unit vectors for the evaluation tests, and the catalogue the end-to-end runs use."""

from __future__ import annotations

import math

import numpy as np
import pytest


def _at(degrees: float) -> list[float]:
    radians = math.radians(degrees)
    return [math.cos(radians), math.sin(radians)]


@pytest.fixture
def muddled() -> np.ndarray:
    """Artists A, A, B, B on a circle at 0°, 10°, 90°, 40°: b2 sits closer to A than to b1.

    Worked by hand. Track retrieval, nearest other track first:
      a1 -> a2 (10°) first           P@1 = 1, AP = 1
      a2 -> a1 (10°) first           P@1 = 1, AP = 1
      b1 -> b2 (50°) before a2 (80°) P@1 = 1, AP = 1
      b2 -> a2 (30°), a1 (40°), b1 (50°): own artist third, P@1 = 0, AP = 1/3
    LOO: b2's own centroid without it is b1 (50° away) but A's centroid is at 5° (35° away):
    wrong. Everyone else is right: 3/4. In sample, B's centroid (65°) is 25° from b2: 4/4.
    """
    return np.array([_at(0), _at(10), _at(90), _at(40)])


@pytest.fixture
def apart() -> np.ndarray:
    """Artists A, A, B, B at 0°, 10°, 90°, 100°: every track is nearest its own artist, and
    b1 -> b2 before any A track, so LOO accuracy, P@1 and MAP are all exactly 1."""
    return np.array([_at(0), _at(10), _at(90), _at(100)])


@pytest.fixture
def two_labels() -> list[str]:
    return ["A", "A", "B", "B"]


@pytest.fixture
def two_styles() -> tuple[np.ndarray, list[str]]:
    """Artist A plays two styles (x and y axes, three tracks each); B's four tracks sit between
    them, lifted along z. One centroid puts A on the diagonal, right where B is, so every A
    track is taken for B (LOO 4/10); two or three centroids keep A's styles apart (10/10)."""
    rng = np.random.default_rng(0)
    a_tracks = [[1, 0, 0]] * 3 + [[0, 1, 0]] * 3
    b_tracks = [[1, 1, 0.5]] * 4
    vectors = np.array(a_tracks + b_tracks, dtype=float) + rng.normal(scale=0.02, size=(10, 3))
    return vectors, ["A"] * 6 + ["B"] * 4
