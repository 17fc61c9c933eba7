"""Artist centroids: the mean of an artist's unit track vectors, re-normalised."""

from __future__ import annotations

import numpy as np

from soundalike.core.errors import InvalidRequest


def artist_centroid(vectors: np.ndarray) -> np.ndarray:
    """Mean of the rows as unit vectors, scaled back to unit length (float32).

    InvalidRequest when the rows have no mean direction (none, non-finite, zero or opposite)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidRequest(f"expected an (n, d) array of vectors, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise InvalidRequest("an artist centroid needs at least one track vector, got none")
    if not np.isfinite(matrix).all():
        raise InvalidRequest("track vectors contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidRequest("a track vector has zero length and no direction")
    mean = (matrix / norms).mean(axis=0)
    length = np.linalg.norm(mean)
    # Opposite vectors cancel out; a zero mean has no direction to normalise to.
    if length < 1e-12:
        raise InvalidRequest("track vectors cancel out: their mean has zero length")
    return (mean / length).astype(np.float32)
