"""Evaluation metrics on constructed vectors whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundalike.search.evaluate import (
    best_layer,
    centre,
    centroids_of,
    evaluate_vectors,
    in_sample_identification,
    leave_one_out_identification,
    leave_one_out_multi_centroid,
    model_similarity,
    neighbours_from_matrix,
    overlap_at_k,
    pca_2d,
    relative_change,
    separation,
    spherical_kmeans,
    summarise_matrix,
    track_retrieval,
    unit_rows,
)


def at(degrees: float) -> list[float]:
    """A unit vector in the plane at `degrees`."""
    radians = math.radians(degrees)
    return [math.cos(radians), math.sin(radians)]


def cos_deg(degrees: float) -> float:
    return math.cos(math.radians(degrees))


# Two artists on a circle. Worked by hand:
#   a1 0°, a2 10°, b1 90°, b2 40°   (b2 sits closer to artist A than to its own b1)
# Track retrieval, nearest other track first:
#   a1 -> a2 (10°) first          P@1 = 1, AP = 1
#   a2 -> a1 (10°) first          P@1 = 1, AP = 1
#   b1 -> b2 (50°) before a2 (80°) P@1 = 1, AP = 1
#   b2 -> a2 (30°), a1 (40°), b1 (50°): own artist third, P@1 = 0, AP = 1/3
# LOO: b2's own centroid without it is b1 (50° away) but A's centroid is at 5° (35° away): wrong.
#   Everyone else is right: 3/4. In sample, B's centroid (65°) is 25° from b2: 4/4.
TWO_ARTISTS = np.array([at(0), at(10), at(90), at(40)])
TWO_LABELS = ["A", "A", "B", "B"]


def test_matrix_span_mean_spread_and_extreme_pairs() -> None:
    # Each artist's two tracks sit ±10° around its direction, so the centroids are exactly at
    # 0°, 60° and 90°: cosines A-B 0.5, A-C 0, B-C cos 30°.
    vectors = np.array([at(-10), at(10), at(50), at(70), at(80), at(100)])
    labels = ["A", "A", "B", "B", "C", "C"]
    evaluation = evaluate_vectors(vectors, labels)

    assert evaluation.artists == ["A", "B", "C"]
    expected = np.array([[1, 0.5, 0], [0.5, 1, cos_deg(30)], [0, cos_deg(30), 1]])
    np.testing.assert_allclose(evaluation.matrix, expected, atol=1e-12)
    summary = evaluation.summary
    off_diagonal = [0.5, 0.0, cos_deg(30)]
    assert summary.pairs == 3
    assert summary.span == pytest.approx(cos_deg(30))
    assert summary.mean == pytest.approx(np.mean(off_diagonal))
    assert summary.std == pytest.approx(np.std(off_diagonal))
    assert (summary.most_similar.artist, summary.most_similar.other) == ("B", "C")
    assert summary.most_similar.score == pytest.approx(cos_deg(30))
    assert (summary.least_similar.artist, summary.least_similar.other) == ("A", "C")
    assert summary.least_similar.score == pytest.approx(0.0, abs=1e-12)


def test_centroids_match_the_store_definition() -> None:
    order, centroids = centroids_of(np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]]), ["x", "x", "y"])
    assert order == ["x", "y"]
    # Rows are made unit before averaging, so the longer vector does not dominate.
    np.testing.assert_allclose(centroids[0], [math.sqrt(0.5), math.sqrt(0.5)])


def test_leave_one_out_differs_from_naive_in_sample_accuracy() -> None:
    loo = leave_one_out_identification(TWO_ARTISTS, TWO_LABELS)
    naive = in_sample_identification(TWO_ARTISTS, TWO_LABELS)
    assert (loo.accuracy, loo.correct, loo.queries) == (0.75, 3, 4)
    assert naive.accuracy == 1.0
    # b2 ranks its own artist second of two.
    assert loo.mrr == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_precision_at_k_and_map_on_hand_worked_clusters() -> None:
    retrieval = track_retrieval(TWO_ARTISTS, TWO_LABELS, k=5)
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


def test_single_track_artist_is_a_candidate_but_not_a_query() -> None:
    # C has one track at 35°: it cannot be left out, but b2 (40°) now finds C nearest.
    vectors = np.vstack([TWO_ARTISTS, [at(35)]])
    labels = [*TWO_LABELS, "C"]
    loo = leave_one_out_identification(vectors, labels, k=1)
    assert loo.excluded_single_track == 1
    assert loo.queries == 4
    assert loo.accuracy == pytest.approx(0.75)
    # b2's own artist ranks third of three (C at 5°, A at 35°, own b1 at 50°).
    assert loo.mrr == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    assert loo.hit_at_k == pytest.approx(0.75)


def test_separation_ratio_is_within_over_between() -> None:
    result = separation(TWO_ARTISTS, TWO_LABELS)
    within = (cos_deg(10) + cos_deg(50)) / 2
    between = (cos_deg(90) + cos_deg(40) + cos_deg(80) + cos_deg(30)) / 4
    assert result.within_mean == pytest.approx(within)
    assert result.between_mean == pytest.approx(between)
    assert result.ratio == pytest.approx(within / between)
    assert result.gap == pytest.approx(within - between)


def test_separation_ratio_is_withheld_when_between_is_not_positive() -> None:
    result = separation(np.array([at(0), at(5), at(180), at(175)]), ["A", "A", "B", "B"])
    assert result.between_mean is not None and result.between_mean < 0
    assert result.ratio is None
    assert result.gap == pytest.approx(result.within_mean - result.between_mean)


def test_centring_removes_the_shared_direction() -> None:
    # Raw: (3, 1) and (3, -1) have cosine 0.8. Their mean points along x; without it they are
    # opposite: cosine -1.
    vectors = np.array([[3.0, 1.0], [3.0, -1.0]])
    assert (unit_rows(vectors) @ unit_rows(vectors).T)[0, 1] == pytest.approx(0.8)
    centred = centre(vectors)
    np.testing.assert_allclose(centred, [[0, 1], [0, -1]], atol=1e-12)


def test_centring_widens_a_crowded_artist_matrix() -> None:
    rng = np.random.default_rng(3)
    shared = np.zeros(16)
    shared[0] = 10.0
    directions = rng.normal(size=(4, 16))
    vectors = np.vstack(
        [shared + d + rng.normal(scale=0.1, size=16) for d in directions for _ in range(3)]
    )
    labels = [name for name in "ABCD" for _ in range(3)]
    raw = evaluate_vectors(vectors, labels)
    centred = evaluate_vectors(centre(vectors), labels)
    assert raw.summary.minimum > 0.7  # crowded, like MERT's 0.49-0.77
    assert centred.summary.span > raw.summary.span


def test_multi_centroid_models_find_an_artist_with_two_styles() -> None:
    # Artist A plays two styles (x and y axes); B sits between them, lifted along z.
    # One centroid puts A on the diagonal, right where B is; two centroids keep A's styles apart.
    rng = np.random.default_rng(0)
    a_tracks = [[1, 0, 0]] * 3 + [[0, 1, 0]] * 3
    b_tracks = [[1, 1, 0.5]] * 4
    vectors = np.array(a_tracks + b_tracks, dtype=float) + rng.normal(scale=0.02, size=(10, 3))
    labels = ["A"] * 6 + ["B"] * 4

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
    with pytest.raises(ValueError, match="unknown scoring"):
        model_similarity([a, b], "worst")  # type: ignore[arg-type]


def test_spherical_kmeans_separates_two_groups_deterministically() -> None:
    vectors = np.array([at(0), at(4), at(8), at(90), at(94), at(98)])
    centres = spherical_kmeans(vectors, 2, seed=1)
    angles = sorted(round(math.degrees(math.atan2(c[1], c[0]))) for c in centres)
    assert angles == [4, 94]
    np.testing.assert_array_equal(centres, spherical_kmeans(vectors, 2, seed=1))
    assert spherical_kmeans(vectors[:2], 3).shape == (2, 2)


def test_overlap_at_k_matches_names_case_and_accent_insensitively() -> None:
    ours = {
        "Éclair Ensemble": ["Ana Björk Trio", "Señora Luna", "Zoë's Machines"],
        "Señora Luna": ["Zoë's Machines", "Éclair Ensemble", "Ana Björk Trio"],
        "Zoë's Machines": ["Señora Luna"],
    }
    reference = {
        "eclair ensemble": ["ANA BJORK TRIO", "Somebody Famous", "senora luna"],
        "Senora  Luna": ["Nobody We Hold"],
    }
    result = overlap_at_k(ours, reference, k=2)
    assert result.artists_compared == 2
    by_artist = {row.artist: row for row in result.per_artist}
    eclair = by_artist["Éclair Ensemble"]
    # Our top 2 (björk, luna) vs the reference's top 2 (björk, somebody famous): one shared.
    assert eclair.shared == ["ana bjork trio"]
    assert eclair.overlap == 0.5
    # Limited to artists we hold, the reference's top 2 are (björk, luna): both shared.
    assert eclair.overlap_in_catalogue == 1.0
    luna = by_artist["Señora Luna"]
    assert luna.overlap == 0.0 and luna.overlap_in_catalogue is None
    assert result.overlap_at_k == pytest.approx(0.25)
    assert result.overlap_at_k_in_catalogue == pytest.approx(1.0)


def test_neighbours_from_matrix_best_first() -> None:
    matrix = np.array([[1, 0.2, 0.9], [0.2, 1, 0.5], [0.9, 0.5, 1]])
    assert neighbours_from_matrix(matrix, ["a", "b", "c"]) == {
        "a": ["c", "b"],
        "b": ["c", "a"],
        "c": ["a", "b"],
    }


def test_best_layer_prefers_accuracy_then_span() -> None:
    # Centroids at 0°, 40°, 60° (pairs 40°, 60°, 20° apart) vs 0°, 90°, 180°: equal accuracy.
    labels = ["A", "A", "B", "B", "C", "C"]
    tight = np.array([at(-5), at(5), at(35), at(45), at(55), at(65)])
    spread = np.array([at(-5), at(5), at(85), at(95), at(175), at(185)])
    wide, narrow = evaluate_vectors(spread, labels), evaluate_vectors(tight, labels)
    assert wide.identification.accuracy == narrow.identification.accuracy == 1.0
    assert wide.summary.span == pytest.approx(1.0)  # cos 90° - cos 180°
    assert narrow.summary.span == pytest.approx(cos_deg(20) - cos_deg(60))
    assert best_layer({3: narrow, 7: wide}) == 7
    muddled = evaluate_vectors(TWO_ARTISTS, TWO_LABELS)  # LOO 0.75
    assert best_layer({1: muddled, 2: narrow}) == 2


def test_relative_change_reproduces_the_reference_experiment() -> None:
    assert relative_change(0.280, 0.163) == pytest.approx(0.7178, abs=1e-4)
    assert relative_change(0.1, 0.0) is None


def test_pca_2d_finds_the_line_points_lie_on() -> None:
    t = np.linspace(-1, 1, 7)[:, None]
    points = np.hstack([t, 2 * t, -t]) + 5.0
    (projected, extra), shares = pca_2d(points, np.array([[5.0, 5.0, 5.0]]))
    assert shares[0] == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(t[:, 0]) * math.sqrt(6), atol=1e-9)
    np.testing.assert_allclose(extra, [[0.0, 0.0]], atol=1e-9)


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="zero length"):
        unit_rows(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        unit_rows(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least two artists"):
        evaluate_vectors(np.array([at(0), at(5)]), ["A", "A"])
    with pytest.raises(ValueError, match="at least two artists"):
        summarise_matrix(np.ones((1, 1)), ["A"])
    with pytest.raises(ValueError, match="labels"):
        evaluate_vectors(TWO_ARTISTS, ["A", "B"])
