"""How well vectors separate artists: pure metrics over (tracks x dim) arrays and artist labels.

Nothing here reads audio, runs a model or touches the store. All similarities are cosines of
unit vectors, and every centroid (an artist's, a k-means cluster's, a left-out artist's) is
`soundalike.search.centroids.artist_centroid`, the definition the store uses. Definitions:

- artist matrix: cosine of artist centroids; the span is max minus min over distinct pairs, the
  spread is the std of the off-diagonal values.
- leave-one-out (LOO) identification: each track against every artist centroid, its own artist's
  centroid recomputed without it. An artist with one track cannot be left out (no centroid would
  remain): its track is not a query, but its centroid stays a candidate for every other track.
- precision@k: each track ranks all other tracks; k is min(k, same-artist tracks left), so perfect
  retrieval scores 1.0 whatever an artist's size. Tracks with no same-artist track are not queries.
- MAP: mean over those queries of average precision of same-artist tracks in the full ranking.
- separation ratio: mean within-artist track-pair cosine over mean between-artist cosine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.search.centroids import artist_centroid

DEFAULT_K = 5
# Below this a mean or sum vector has no usable direction.
_TINY = 1e-12

ArtistScoring = Literal["best-pair", "mean-best"]


# --- basics ---------------------------------------------------------------------------------


def unit_rows(vectors: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """The rows scaled to unit length (float64). Refuses NaN, infinities and zero rows."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidRequest(f"expected an (n, d) array of vectors, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InvalidRequest("vectors contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms < _TINY).any():
        raise InvalidRequest(f"{int((norms < _TINY).sum())} vector(s) have zero length")
    return matrix / norms


def artist_order(labels: Sequence[str]) -> list[str]:
    """Distinct labels in order of first appearance."""
    return list(dict.fromkeys(labels))


def _label_index(labels: Sequence[str], order: Sequence[str]) -> np.ndarray:
    position = {label: i for i, label in enumerate(order)}
    return np.array([position[label] for label in labels], dtype=np.int64)


def centroid_or_none(units: np.ndarray) -> np.ndarray | None:
    """`artist_centroid` of unit rows as float64, or None when the rows cancel out and leave
    no direction (which artist_centroid refuses)."""
    if units.shape[0] == 0 or np.linalg.norm(units.mean(axis=0)) < _TINY:
        return None
    return artist_centroid(units).astype(np.float64)


def centroids_of(vectors: np.ndarray, labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(artists in first-appearance order, their unit centroids), one `artist_centroid` each."""
    units = unit_rows(vectors)
    if len(labels) != units.shape[0]:
        raise InvalidRequest(f"{units.shape[0]} vectors but {len(labels)} labels")
    order = artist_order(labels)
    index = _label_index(labels, order)
    centroids = np.empty((len(order), units.shape[1]))
    for position, artist in enumerate(order):
        centroid = centroid_or_none(units[index == position])
        if centroid is None:
            raise InvalidRequest(f"the tracks of {artist!r} cancel out: no centroid direction")
        centroids[position] = centroid
    return order, centroids


def cosine_matrix(rows: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """Cosine of every row against every column vector (rows against themselves by default)."""
    left = unit_rows(rows)
    right = left if columns is None else unit_rows(columns)
    return np.clip(left @ right.T, -1.0, 1.0)


def centre(vectors: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Unit rows minus the mean unit row (or `mean`), re-normalised: removes the direction every
    vector shares (anisotropy), which crowds raw cosines into a narrow band."""
    units = unit_rows(vectors)
    shift = units.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    centred = units - shift
    if (np.linalg.norm(centred, axis=1) < 1e-9).any():
        raise InvalidRequest("a vector equals the catalogue mean; centring leaves it no direction")
    return unit_rows(centred)


# --- the artist matrix ----------------------------------------------------------------------


@dataclass
class ArtistPair:
    artist: str
    other: str
    score: float


@dataclass
class MatrixSummary:
    """Off-diagonal statistics of an artist-by-artist similarity matrix."""

    pairs: int
    span: float
    mean: float
    std: float
    minimum: float
    maximum: float
    most_similar: ArtistPair
    least_similar: ArtistPair


def summarise_matrix(matrix: np.ndarray, names: Sequence[str]) -> MatrixSummary:
    """Span, mean, spread and extreme pairs over the distinct pairs (i < j) of `matrix`."""
    values = np.asarray(matrix, dtype=np.float64)
    n = len(names)
    if values.shape != (n, n):
        raise InvalidRequest(f"matrix shape {values.shape} does not match {n} artist names")
    if n < 2:
        raise InvalidRequest("an artist matrix needs at least two artists to have pairs")
    upper_i, upper_j = np.triu_indices(n, k=1)
    scores = values[upper_i, upper_j]
    high, low = int(np.argmax(scores)), int(np.argmin(scores))
    return MatrixSummary(
        pairs=len(scores),
        span=float(scores.max() - scores.min()),
        mean=float(scores.mean()),
        std=float(scores.std()),
        minimum=float(scores.min()),
        maximum=float(scores.max()),
        most_similar=ArtistPair(names[upper_i[high]], names[upper_j[high]], float(scores[high])),
        least_similar=ArtistPair(names[upper_i[low]], names[upper_j[low]], float(scores[low])),
    )


# --- identification -------------------------------------------------------------------------


@dataclass
class Identification:
    """Track -> artist identification against artist models.

    `accuracy` is top-1 over the queries; `hit_at_k` whether the true artist is among the k best
    (k = min(k, artists - 1), so it never counts every artist); `mrr` the mean reciprocal rank.
    None when no track can be a query.
    """

    accuracy: float | None
    correct: int
    queries: int
    excluded_single_track: int
    hit_at_k: float | None
    k: int
    mrr: float | None


def _identification(ranks: list[int], excluded: int, artists: int, k: int) -> Identification:
    k_eff = max(1, min(k, artists - 1))
    if not ranks:
        return Identification(None, 0, 0, excluded, None, k_eff, None)
    rank_array = np.asarray(ranks)
    correct = int((rank_array == 1).sum())
    return Identification(
        accuracy=correct / len(ranks),
        correct=correct,
        queries=len(ranks),
        excluded_single_track=excluded,
        hit_at_k=float((rank_array <= k_eff).mean()),
        k=k_eff,
        mrr=float((1.0 / rank_array).mean()),
    )


def _rank_of(scores: np.ndarray, true_index: int) -> int:
    """1-based rank of the true artist; a tie counts against it (pessimistic)."""
    return int((scores >= scores[true_index]).sum())


def _with_centroids(
    vectors: np.ndarray, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit rows, artist centroids, each row's position in the centroids)."""
    units = unit_rows(vectors)
    order, centroids = centroids_of(units, labels)
    return units, centroids, _label_index(labels, order)


def leave_one_out_identification(
    vectors: np.ndarray, labels: Sequence[str], *, k: int = DEFAULT_K
) -> Identification:
    """Nearest-centroid artist identification, each track left out of its own centroid."""
    units, full_centroids, index = _with_centroids(vectors, labels)
    ranks: list[int] = []
    excluded = 0
    for i, own in enumerate(index):
        mine = index == own
        if mine.sum() < 2:
            excluded += 1
            continue
        mine[i] = False
        scores = full_centroids @ units[i]
        without_query = centroid_or_none(units[mine])
        # Tracks that cancel out leave no direction: the track cannot match its own artist.
        scores[own] = -np.inf if without_query is None else without_query @ units[i]
        ranks.append(_rank_of(scores, int(own)))
    return _identification(ranks, excluded, len(full_centroids), k)


def in_sample_identification(
    vectors: np.ndarray, labels: Sequence[str], *, k: int = DEFAULT_K
) -> Identification:
    """The naive version: centroids include the query track (optimistic; shown for contrast)."""
    units, centroids, index = _with_centroids(vectors, labels)
    scores = units @ centroids.T
    ranks = [_rank_of(scores[i], int(own)) for i, own in enumerate(index)]
    return _identification(ranks, 0, len(centroids), k)


# --- track retrieval ------------------------------------------------------------------------


@dataclass
class Retrieval:
    """Same-artist track retrieval: each track queries all the other tracks."""

    precision_at_k: float | None
    k: int
    mean_average_precision: float | None
    queries: int


def track_retrieval(vectors: np.ndarray, labels: Sequence[str], *, k: int = DEFAULT_K) -> Retrieval:
    """precision@min(k, same-artist tracks) and MAP of same-artist neighbours."""
    if k < 1:
        raise InvalidRequest(f"k must be >= 1, got {k}")
    units = unit_rows(vectors)
    index = _label_index(labels, artist_order(labels))
    similarities = units @ units.T
    n = units.shape[0]
    precisions: list[float] = []
    average_precisions: list[float] = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i], dtype=np.int64)
        relevant = index[others] == index[i]
        total_relevant = int(relevant.sum())
        if total_relevant == 0:
            continue
        # Stable sort on -similarity: ties keep catalogue order, reproducibly.
        ranked = relevant[np.argsort(-similarities[i, others], kind="stable")]
        k_eff = min(k, total_relevant)
        precisions.append(float(ranked[:k_eff].sum()) / k_eff)
        hits = np.cumsum(ranked)
        positions = np.flatnonzero(ranked) + 1
        average_precisions.append(float((hits[positions - 1] / positions).mean()))
    if not precisions:
        return Retrieval(None, k, None, 0)
    return Retrieval(
        precision_at_k=float(np.mean(precisions)),
        k=k,
        mean_average_precision=float(np.mean(average_precisions)),
        queries=len(precisions),
    )


@dataclass
class Separation:
    """Mean cosine of same-artist track pairs vs different-artist pairs."""

    within_mean: float | None
    between_mean: float | None
    ratio: float | None  # within / between; None when between <= 0 (a ratio would mislead)
    gap: float | None  # within - between


def separation(vectors: np.ndarray, labels: Sequence[str]) -> Separation:
    units = unit_rows(vectors)
    index = _label_index(labels, artist_order(labels))
    similarities = units @ units.T
    upper_i, upper_j = np.triu_indices(units.shape[0], k=1)
    same = index[upper_i] == index[upper_j]
    pair_scores = similarities[upper_i, upper_j]
    within = float(pair_scores[same].mean()) if same.any() else None
    between = float(pair_scores[~same].mean()) if (~same).any() else None
    ratio = within / between if within is not None and between is not None and between > 0 else None
    gap = within - between if within is not None and between is not None else None
    return Separation(within, between, ratio, gap)


# --- several centroids per artist -----------------------------------------------------------


def spherical_kmeans(
    vectors: np.ndarray, clusters: int, *, seed: int = 0, iterations: int = 50
) -> np.ndarray:
    """Unit cluster centres of unit vectors by cosine (k-means++ start, deterministic in seed).

    With no more vectors than clusters, each vector is its own centre.
    """
    units = unit_rows(vectors)
    if clusters < 1:
        raise InvalidRequest(f"clusters must be >= 1, got {clusters}")
    if units.shape[0] <= clusters:
        return units.copy()
    rng = np.random.default_rng(seed)
    centres = [units[int(rng.integers(units.shape[0]))]]
    while len(centres) < clusters:
        distance = 1.0 - np.max(units @ np.array(centres).T, axis=1)
        distance = np.clip(distance, 0.0, None)
        if distance.sum() <= _TINY:
            break  # every vector sits on a centre already
        centres.append(units[int(rng.choice(units.shape[0], p=distance / distance.sum()))])
    centre_matrix = np.array(centres)
    assignment = np.full(units.shape[0], -1)
    for _ in range(iterations):
        new_assignment = np.argmax(units @ centre_matrix.T, axis=1)
        if np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for c in range(centre_matrix.shape[0]):
            # An emptied or cancelled-out cluster keeps its previous centre.
            centroid = centroid_or_none(units[assignment == c])
            if centroid is not None:
                centre_matrix[c] = centroid
    return centre_matrix


def clusters_for(track_count: int, max_clusters: int) -> int:
    """Centroids for an artist of `track_count` tracks: up to `max_clusters`, and at least two
    tracks per centroid on average (a one-track centroid is just that track)."""
    return max(1, min(max_clusters, track_count // 2))


def artist_models(
    vectors: np.ndarray, labels: Sequence[str], *, max_clusters: int = 3, seed: int = 0
) -> tuple[list[str], list[np.ndarray]]:
    """(artists, each artist's unit centroids from k-means on its tracks)."""
    units = unit_rows(vectors)
    order = artist_order(labels)
    index = _label_index(labels, order)
    models = []
    for a in range(len(order)):
        members = units[index == a]
        clusters = clusters_for(len(members), max_clusters)
        models.append(spherical_kmeans(members, clusters, seed=seed))
    return order, models


def model_similarity(
    models: Sequence[np.ndarray], scoring: ArtistScoring = "best-pair"
) -> np.ndarray:
    """Artist-by-artist score between multi-centroid models.

    best-pair: the closest pair of centroids. mean-best: each centroid's best match on the other
    side, averaged, and symmetrised. The diagonal is 1.
    """
    if scoring not in ("best-pair", "mean-best"):
        raise InvalidRequest(f"unknown scoring {scoring!r}; use 'best-pair' or 'mean-best'")
    n = len(models)
    matrix = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            pair = models[i] @ models[j].T
            if scoring == "best-pair":
                score = float(pair.max())
            else:
                score = 0.5 * (float(pair.max(axis=1).mean()) + float(pair.max(axis=0).mean()))
            matrix[i, j] = matrix[j, i] = min(1.0, score)
    return matrix


def leave_one_out_multi_centroid(
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    max_clusters: int = 3,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> Identification:
    """LOO identification when each artist is several centroids: a track scores against an
    artist by its closest centroid; its own artist's centroids are re-clustered without it."""
    units = unit_rows(vectors)
    order, models = artist_models(units, labels, max_clusters=max_clusters, seed=seed)
    index = _label_index(labels, order)
    ranks: list[int] = []
    excluded = 0
    for i, own in enumerate(index):
        members = np.flatnonzero(index == own)
        if len(members) < 2:
            excluded += 1
            continue
        rest = units[members[members != i]]
        # As many centroids as the artist has with all its tracks, so leaving one out does not
        # also change the shape of its model.
        own_model = spherical_kmeans(rest, clusters_for(len(members), max_clusters), seed=seed)
        scores = np.array([float(np.max(model @ units[i])) for model in models])
        scores[own] = float(np.max(own_model @ units[i]))
        ranks.append(_rank_of(scores, int(own)))
    return _identification(ranks, excluded, len(order), k)


# --- all of it for one set of vectors -------------------------------------------------------


@dataclass
class VectorEvaluation:
    """Every figure for one set of track vectors (one layer, one mode)."""

    artists: list[str]
    track_counts: list[int]
    matrix: np.ndarray
    summary: MatrixSummary
    identification: Identification
    in_sample: Identification
    retrieval: Retrieval
    separation: Separation

    def to_dict(self, *, with_matrix: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {
            "artists": len(self.artists),
            "tracks": int(sum(self.track_counts)),
            **rounded(asdict(self.summary)),
            "loo_accuracy": round_or_none(self.identification.accuracy),
            "loo": rounded(asdict(self.identification)),
            "in_sample_accuracy": round_or_none(self.in_sample.accuracy),
            "precision_at_k": round_or_none(self.retrieval.precision_at_k),
            "k": self.retrieval.k,
            "map": round_or_none(self.retrieval.mean_average_precision),
            "retrieval_queries": self.retrieval.queries,
            "within_artist_mean": round_or_none(self.separation.within_mean),
            "between_artist_mean": round_or_none(self.separation.between_mean),
            "separation_ratio": round_or_none(self.separation.ratio),
            "separation_gap": round_or_none(self.separation.gap),
        }
        if with_matrix:
            result["matrix"] = {
                "artists": list(self.artists),
                "values": [[round_or_none(v) for v in row] for row in self.matrix.tolist()],
            }
        return result


def evaluate_vectors(
    vectors: np.ndarray, labels: Sequence[str], *, k: int = DEFAULT_K
) -> VectorEvaluation:
    """Artist matrix, LOO identification, track retrieval and separation of one vector set."""
    units = unit_rows(vectors)
    order, centroids = centroids_of(units, labels)
    if len(order) < 2:
        raise InvalidRequest("evaluation needs at least two artists")
    matrix = cosine_matrix(centroids)
    np.fill_diagonal(matrix, 1.0)
    counts = [int(c) for c in np.bincount(_label_index(labels, order), minlength=len(order))]
    return VectorEvaluation(
        artists=order,
        track_counts=counts,
        matrix=matrix,
        summary=summarise_matrix(matrix, order),
        identification=leave_one_out_identification(units, labels, k=k),
        in_sample=in_sample_identification(units, labels, k=k),
        retrieval=track_retrieval(units, labels, k=k),
        separation=separation(units, labels),
    )


def best_layer(results: Mapping[int, VectorEvaluation]) -> int:
    """The layer with the best LOO accuracy; ties go to the larger span, then the lower layer."""
    if not results:
        raise InvalidRequest("no layers to choose from")

    def key(layer: int) -> tuple[float, float, int]:
        evaluation = results[layer]
        accuracy = evaluation.identification.accuracy
        return (-1.0 if accuracy is None else accuracy, evaluation.summary.span, -layer)

    return max(results, key=key)


def relative_change(new: float, old: float) -> float | None:
    """(new - old) / |old|, e.g. 0.280 vs 0.163 -> +0.72; None when old is 0."""
    return None if abs(old) < _TINY else (new - old) / abs(old)


# --- rounding for the report ----------------------------------------------------------------


def round_or_none(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def rounded(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every float (nested dicts included) rounded to 6 digits."""
    result: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, float):
            result[name] = round_or_none(value)
        elif isinstance(value, dict):
            result[name] = rounded(value)
        else:
            result[name] = value
    return result
