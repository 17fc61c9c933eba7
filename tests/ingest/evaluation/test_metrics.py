"""Evaluation metrics on constructed vectors whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.evaluation.metrics import (
    best_layer,
    centre,
    centroids_of,
    evaluate_vectors,
    in_sample_identification,
    leave_one_out_identification,
    leave_one_out_multi_centroid,
    model_similarity,
    relative_change,
    separation,
    spherical_kmeans,
    summarise_matrix,
    track_retrieval,
    unit_rows,
)
from soundalike.search.centroids import artist_centroid


def at(degrees: float) -> list[float]:
    """A unit vector in the plane at `degrees`."""
    radians = math.radians(degrees)
    return [math.cos(radians), math.sin(radians)]


def cos_deg(degrees: float) -> float:
    return math.cos(math.radians(degrees))


def test_matrix_span_mean_spread_and_extreme_pairs() -> None:
    # Each artist's two tracks sit ±10° around its direction, so the centroids are exactly at
    # 0°, 60° and 90°: cosines A-B 0.5, A-C 0, B-C cos 30°.
    vectors = np.array([at(-10), at(10), at(50), at(70), at(80), at(100)])
    labels = ["A", "A", "B", "B", "C", "C"]
    evaluation = evaluate_vectors(vectors, labels)

    assert evaluation.artists == ["A", "B", "C"]
    assert evaluation.track_counts == [2, 2, 2]
    expected = np.array([[1, 0.5, 0], [0.5, 1, cos_deg(30)], [0, cos_deg(30), 1]])
    # Centroids are float32, as the store keeps them.
    np.testing.assert_allclose(evaluation.matrix, expected, atol=1e-6)
    summary = evaluation.summary
    assert summary.pairs == 3
    assert summary.span == pytest.approx(cos_deg(30), abs=1e-6)
    # Off-diagonal values 0.5, 0 and cos 30° = 0.866025: mean 0.455342; deviations 0.044658,
    # -0.455342, 0.410684 square to 0.377988 in all, so the population std is sqrt(0.125996).
    assert summary.mean == pytest.approx(0.455342, abs=1e-6)
    assert summary.std == pytest.approx(0.354961, abs=1e-6)
    assert (summary.most_similar.artist, summary.most_similar.other) == ("B", "C")
    assert summary.most_similar.score == pytest.approx(cos_deg(30), abs=1e-6)
    assert (summary.least_similar.artist, summary.least_similar.other) == ("A", "C")
    assert summary.least_similar.score == pytest.approx(0.0, abs=1e-6)


def test_centroids_are_the_store_centroids() -> None:
    vectors = np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0], [3.0, -1.0], [1.0, 2.0]])
    labels = ["x", "x", "y", "y", "x"]
    order, centroids = centroids_of(vectors, labels)
    assert order == ["x", "y"]
    np.testing.assert_allclose(centroids[0], artist_centroid(vectors[[0, 1, 4]]), atol=1e-7)
    np.testing.assert_allclose(centroids[1], artist_centroid(vectors[[2, 3]]), atol=1e-7)
    # Rows are made unit before averaging, so the longer vector does not dominate.
    _, pair = centroids_of(vectors[:3], ["x", "x", "y"])
    np.testing.assert_allclose(pair[0], [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-7)


def test_leave_one_out_is_perfect_when_artists_keep_apart(
    apart: np.ndarray, two_labels: list[str]
) -> None:
    loo = leave_one_out_identification(apart, two_labels)
    assert (loo.accuracy, loo.correct, loo.queries, loo.excluded_single_track) == (1.0, 4, 4, 0)
    assert loo.mrr == 1.0
    # Two artists: hit@k can only look at the one best, so k is cut to 1.
    assert (loo.k, loo.hit_at_k) == (1, 1.0)


def test_leave_one_out_differs_from_naive_in_sample_accuracy(
    muddled: np.ndarray, two_labels: list[str]
) -> None:
    loo = leave_one_out_identification(muddled, two_labels)
    naive = in_sample_identification(muddled, two_labels)
    assert (loo.accuracy, loo.correct, loo.queries) == (0.75, 3, 4)
    assert naive.accuracy == 1.0
    # b2 ranks its own artist second of two.
    assert loo.mrr == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_an_artist_whose_other_tracks_cancel_out_cannot_be_matched() -> None:
    # A's three tracks: 0°, 180° and 90° (centroid 90°); B's 120° and 130° (centroid 125°).
    # Leaving out the 90° track leaves two opposite vectors with no direction, so it cannot
    # match its own artist. Left out, 0° finds A without it at 135° (135° away) vs B (125°
    # away): wrong; 180° finds A at 45° (135° away) vs B (55° away): wrong. Each B track finds
    # the other 10° away and A 30° or 40° away: right. 2 of 5.
    vectors = np.array([at(0), at(180), at(90), at(120), at(130)])
    labels = ["A", "A", "A", "B", "B"]
    loo = leave_one_out_identification(vectors, labels)
    assert (loo.correct, loo.queries) == (2, 5)


def test_precision_at_k_and_map_on_hand_worked_clusters(
    muddled: np.ndarray, two_labels: list[str]
) -> None:
    retrieval = track_retrieval(muddled, two_labels, k=5)
    # k is capped at the one same-artist track each query has.
    assert retrieval.precision_at_k == pytest.approx(0.75)
    assert retrieval.mean_average_precision == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    assert retrieval.queries == 4


def test_precision_at_k_counts_only_the_first_k() -> None:
    # Artist A at 0°, 5°, 50°, 60°; B's one track at 20°. Every A track ranks the others as
    # own, B, own, own (e.g. from 50°: a60 10°, b20 30°, a5 45°, a0 50°), so with k = 2
    # P@2 = 1/2 and AP = (1/1 + 2/3 + 3/4) / 3 for each; B's track has nothing to find.
    vectors = np.array([at(0), at(5), at(50), at(60), at(20)])
    labels = ["A", "A", "A", "A", "B"]
    retrieval = track_retrieval(vectors, labels, k=2)
    assert retrieval.queries == 4
    assert retrieval.precision_at_k == pytest.approx(0.5)
    assert retrieval.mean_average_precision == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # k = 3 (the same-artist count): the first three hold two own tracks.
    assert track_retrieval(vectors, labels, k=3).precision_at_k == pytest.approx(2 / 3)
    assert track_retrieval(vectors, labels, k=10).precision_at_k == pytest.approx(2 / 3)


def test_single_track_artist_is_a_candidate_but_not_a_query(
    muddled: np.ndarray, two_labels: list[str]
) -> None:
    # C has one track at 35°: it cannot be left out, but b2 (40°) now finds C nearest.
    vectors = np.vstack([muddled, [at(35)]])
    labels = [*two_labels, "C"]
    loo = leave_one_out_identification(vectors, labels, k=1)
    assert loo.excluded_single_track == 1
    assert loo.queries == 4
    assert loo.accuracy == pytest.approx(0.75)
    # b2's own artist ranks third of three (C at 5°, A at 35°, own b1 at 50°).
    assert loo.mrr == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    assert loo.hit_at_k == pytest.approx(0.75)


def test_separation_ratio_is_within_over_between(
    muddled: np.ndarray, two_labels: list[str]
) -> None:
    result = separation(muddled, two_labels)
    # Same-artist pairs 10° and 50° apart; the four cross pairs 90°, 40°, 80°, 30°.
    within = (cos_deg(10) + cos_deg(50)) / 2
    between = (cos_deg(90) + cos_deg(40) + cos_deg(80) + cos_deg(30)) / 4
    assert result.within_mean == pytest.approx(within)
    assert result.between_mean == pytest.approx(between)
    assert result.ratio == pytest.approx(within / between)
    assert result.gap == pytest.approx(within - between)


def test_separation_ratio_is_withheld_when_between_is_not_positive() -> None:
    # Within: cos 5° twice. Between: cos 180°, 175°, 175°, 170°, all negative.
    result = separation(np.array([at(0), at(5), at(180), at(175)]), ["A", "A", "B", "B"])
    assert result.between_mean == pytest.approx(
        (cos_deg(180) + 2 * cos_deg(175) + cos_deg(170)) / 4
    )
    assert result.ratio is None
    assert result.gap == pytest.approx(cos_deg(5) - result.between_mean)


def test_centring_removes_the_shared_direction() -> None:
    # Raw: (3, 1) and (3, -1) have cosine 0.8. Their mean points along x; without it they are
    # opposite: cosine -1.
    vectors = np.array([[3.0, 1.0], [3.0, -1.0]])
    assert (unit_rows(vectors) @ unit_rows(vectors).T)[0, 1] == pytest.approx(0.8)
    np.testing.assert_allclose(centre(vectors), [[0, 1], [0, -1]], atol=1e-12)


def test_multi_centroid_models_find_an_artist_with_two_styles(
    two_styles: tuple[np.ndarray, list[str]],
) -> None:
    vectors, labels = two_styles
    single = leave_one_out_identification(vectors, labels)
    multi = leave_one_out_multi_centroid(vectors, labels, max_clusters=3)
    assert single.accuracy == pytest.approx(0.4)  # every A track is taken for B
    assert multi.accuracy == 1.0
    # With one centroid per artist the multi-centroid path is the plain LOO.
    as_single = leave_one_out_multi_centroid(vectors, labels, max_clusters=1)
    assert as_single.accuracy == single.accuracy
    assert as_single.mrr == pytest.approx(single.mrr)


def test_artist_scores_best_pair_and_mean_best() -> None:
    a = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    b = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    assert model_similarity([a, b], "best-pair")[0, 1] == pytest.approx(1.0)
    # Each side's best matches are 1 and 0: mean 0.5 both ways.
    assert model_similarity([a, b], "mean-best")[0, 1] == pytest.approx(0.5)
    with pytest.raises(InvalidRequest, match="unknown scoring"):
        model_similarity([a, b], "worst")  # type: ignore[arg-type]


def test_spherical_kmeans_separates_two_groups_deterministically() -> None:
    vectors = np.array([at(0), at(4), at(8), at(90), at(94), at(98)])
    centres = spherical_kmeans(vectors, 2, seed=1)
    angles = sorted(round(math.degrees(math.atan2(c[1], c[0]))) for c in centres)
    assert angles == [4, 94]
    np.testing.assert_array_equal(centres, spherical_kmeans(vectors, 2, seed=1))
    assert spherical_kmeans(vectors[:2], 3).shape == (2, 2)


def test_best_layer_prefers_accuracy_then_span_then_the_lower_layer(
    muddled: np.ndarray, apart: np.ndarray, two_labels: list[str]
) -> None:
    # Centroids at 0°, 40°, 60° (pairs 40°, 60°, 20° apart) vs 0°, 90°, 180°: equal accuracy.
    labels = ["A", "A", "B", "B", "C", "C"]
    tight = evaluate_vectors(np.array([at(-5), at(5), at(35), at(45), at(55), at(65)]), labels)
    wide = evaluate_vectors(np.array([at(-5), at(5), at(85), at(95), at(175), at(185)]), labels)
    assert wide.identification.accuracy == tight.identification.accuracy == 1.0
    assert wide.summary.span == pytest.approx(1.0, abs=1e-6)  # cos 90° - cos 180°
    assert tight.summary.span == pytest.approx(cos_deg(20) - cos_deg(60), abs=1e-6)
    assert best_layer({3: tight, 7: wide}) == 7
    # Accuracy comes before span: LOO 1.0 with the narrow span beats LOO 0.75.
    assert best_layer({1: evaluate_vectors(muddled, two_labels), 2: tight}) == 2
    # Everything equal: the lower layer.
    assert (
        best_layer({9: evaluate_vectors(apart, two_labels), 4: evaluate_vectors(apart, two_labels)})
        == 4
    )


def test_relative_change_reproduces_the_reference_experiment() -> None:
    assert relative_change(0.280, 0.163) == pytest.approx(0.7178, abs=1e-4)
    assert relative_change(0.1, 0.0) is None


def test_bad_input_is_refused_with_a_reason(muddled: np.ndarray) -> None:
    with pytest.raises(InvalidRequest, match="zero length"):
        unit_rows(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(InvalidRequest, match="NaN"):
        unit_rows(np.array([[np.nan, 1.0]]))
    with pytest.raises(InvalidRequest, match="at least two artists"):
        evaluate_vectors(np.array([at(0), at(5)]), ["A", "A"])
    with pytest.raises(InvalidRequest, match="at least two artists"):
        summarise_matrix(np.ones((1, 1)), ["A"])
    with pytest.raises(InvalidRequest, match="labels"):
        evaluate_vectors(muddled, ["A", "B"])
    with pytest.raises(InvalidRequest, match="cancel out"):
        centroids_of(np.array([at(0), at(180), at(90)]), ["A", "A", "B"])
