"""The catalogue map: every artist centroid projected to 2-D, for a browser to draw.

The projection is PCA (the two leading principal axes of the centred unit centroids):
- it is computed in seconds at 100k artists on 2 cores: the 768x768 covariance of (at most)
  a fixed sample of 20,000 centroids, built in blocks, its two leading eigenvectors by subspace
  iteration, then one matrix product places every artist (docs/benchmarks.md, `python -m
  benchmarks.map`);
- it is deterministic and stable: the same catalogue gives the same map, and adding a few
  artists barely moves the others (t-SNE and UMAP reshuffle the whole map on every run, cost
  minutes at 100k artists on this hardware, and would pull in numba or scikit-learn);
- distances on the map are a faithful linear shadow of the cosine geometry: artists far apart
  on the map are far apart in sound (the converse need not hold; the "artists like X" lists
  stay the authority on neighbours).
Coordinates are scaled into -1..1 on the wider axis, with the aspect ratio kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from soundalike.search.store import Store

PROJECTION_NAME = "pca"
# Rows folded into the covariance at once: bounds the centred copy to ~6 MB at dim 768.
BLOCK_ROWS = 2048
# Subspace iteration for the two leading axes: extra vectors speed convergence.
SPARE_AXES = 6
# Centroids the axes are computed from, at most (a fixed sample of larger catalogues).
SAMPLE_ROWS = 20_000
MAX_ITERATIONS = 300


@dataclass(frozen=True)
class MapPoint:
    artist: str
    artist_key: str
    x: float
    y: float
    track_count: int
    genre: str | None


@dataclass(frozen=True)
class CatalogueMap:
    points: list[MapPoint]
    projection: str
    # The catalogue version the map was computed for (None: a store that never had one).
    version: str | None


def catalogue_map(store: Store) -> CatalogueMap:
    """Every stored artist with its 2-D position (one scroll of the artists' centroids)."""
    version = store.catalogue_version()
    names: list[str] = []
    keys: list[str] = []
    counts: list[int] = []
    genres: list[str | None] = []
    # One float32 row per artist as it is read: Python float lists of 100k centroids would
    # take gigabytes.
    vectors: list[np.ndarray] = []
    for artist in store.scan_artists():
        if artist.centroid is None:
            continue
        keys.append(artist.artist_key)
        names.append(artist.name or artist.artist_key)
        counts.append(artist.track_count)
        genres.append(_main_genre(artist.genres))
        vectors.append(np.asarray(artist.centroid, dtype=np.float32))
    if not vectors:
        return CatalogueMap(points=[], projection=PROJECTION_NAME, version=version)
    matrix = np.stack(vectors)
    del vectors
    xy = project(matrix)
    points = [
        MapPoint(name, key, float(x), float(y), count, genre)
        for name, key, (x, y), count, genre in zip(
            names, keys, xy.tolist(), counts, genres, strict=True
        )
    ]
    points.sort(key=lambda p: p.artist_key)
    return CatalogueMap(points=points, projection=PROJECTION_NAME, version=version)


def project(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) PCA coordinates of `vectors` (n, dim), scaled into -1..1, deterministic signs."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float64)
    mean = vectors.mean(axis=0, dtype=np.float64)
    dim = vectors.shape[1]
    covariance = np.zeros((dim, dim), dtype=np.float64)
    mean32 = mean.astype(np.float32)
    # The axes come from a fixed sample of a large catalogue: the leading axes of 20,000
    # centroids are those of all of them to within a fraction of a degree, at a fraction of
    # the cost; every artist is then projected on them.
    sample = vectors
    if n > SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(n, size=SAMPLE_ROWS, replace=False))
        sample = vectors[rows]
    for block in _blocks(sample):
        # float32 products (twice as fast), summed in float64: ample for two leading axes.
        centred = block.astype(np.float32, copy=False) - mean32
        covariance += centred.T @ centred
    axes = _leading_axes(covariance, 2)
    # An eigenvector's sign is arbitrary: fix it so the largest loading is positive, and the
    # same catalogue always gives the same picture.
    for column in range(axes.shape[1]):
        if axes[np.argmax(np.abs(axes[:, column])), column] < 0:
            axes[:, column] = -axes[:, column]
    xy = np.empty((n, 2), dtype=np.float64)
    for start in range(0, n, BLOCK_ROWS):
        xy[start : start + BLOCK_ROWS] = (vectors[start : start + BLOCK_ROWS] - mean32) @ axes
    xy -= (xy.max(axis=0) + xy.min(axis=0)) / 2
    extent = float(np.abs(xy).max())
    return xy / extent if extent > 0 else xy


def _leading_axes(covariance: np.ndarray, count: int) -> np.ndarray:
    """The `count` leading eigenvectors of a symmetric matrix, as columns, by subspace
    iteration with a few spare vectors (a full eigendecomposition of 768x768 costs 0.2-4 s on a
    busy 2-core machine; this costs milliseconds). Deterministic: a fixed starting basis."""
    dim = covariance.shape[0]
    if dim <= 64:
        values, vectors = np.linalg.eigh(covariance)
        axes = vectors[:, np.argsort(values)[::-1][:count]]
        return np.pad(axes, ((0, 0), (0, count - axes.shape[1])))
    width = min(dim, count + SPARE_AXES)
    basis, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, width)))
    previous = None
    for _ in range(MAX_ITERATIONS):
        basis, _ = np.linalg.qr(covariance @ basis)
        # Rayleigh-Ritz: the best axes inside the current subspace, in order.
        values, rotation = np.linalg.eigh(basis.T @ covariance @ basis)
        basis = basis @ rotation[:, np.argsort(values)[::-1]]
        leading = basis[:, :count]
        if previous is not None and np.abs(np.abs(np.sum(leading * previous, 0)) - 1).max() < 1e-9:
            break
        previous = leading
    return basis[:, :count].copy()


def _blocks(vectors: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, vectors.shape[0], BLOCK_ROWS):
        yield vectors[start : start + BLOCK_ROWS]


def _main_genre(genres: object) -> str | None:
    """The artist's first genre (the store keeps them sorted), or None."""
    if isinstance(genres, list) and genres:
        return str(genres[0])
    return None
