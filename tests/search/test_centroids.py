"""Artist centroids."""

from __future__ import annotations

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.search.centroids import artist_centroid


def test_centroid_is_the_normalised_mean_of_unit_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    centroid = artist_centroid(vectors)
    mean = vectors.mean(axis=0)
    assert centroid.dtype == np.float32
    assert np.linalg.norm(centroid) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(centroid, mean / np.linalg.norm(mean), atol=1e-6)


def test_one_track_is_its_own_centroid() -> None:
    vector = np.array([[0.6, 0.8, 0.0]])
    assert np.allclose(artist_centroid(vector), [0.6, 0.8, 0.0])


def test_rows_count_as_unit_vectors_whatever_their_length() -> None:
    vectors = np.array([[10.0, 0.0], [0.0, 1.0]])
    assert np.allclose(artist_centroid(vectors), [2**-0.5, 2**-0.5], atol=1e-6)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.zeros((0, 4)), "at least one"),
        (np.ones(4), "shape"),
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), "cancel"),
        (np.array([[0.0, 0.0]]), "zero length"),
        (np.array([[np.nan, 1.0]]), "NaN"),
    ],
)
def test_vectors_without_a_centroid_are_refused(vectors: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        artist_centroid(vectors)
