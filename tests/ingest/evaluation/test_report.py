"""The report's verdicts and text on hand-made evaluations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.evaluation.gather import EvalTrack
from soundalike.ingest.evaluation.metrics import evaluate_vectors
from soundalike.ingest.evaluation.options import EvaluationOptions
from soundalike.ingest.evaluation.report import (
    centring_verdict,
    markdown,
    report_dict,
    summary_text,
)

SPEC = EmbeddingSpec("tiny", None, 11, 30.0, "centre", "mean", 24000, 2)


def test_centring_verdict_rests_on_accuracy(
    muddled: np.ndarray, apart: np.ndarray, two_labels: list[str]
) -> None:
    low = evaluate_vectors(muddled, two_labels)  # LOO 0.75, MAP (1 + 1 + 1 + 1/3) / 4
    high = evaluate_vectors(apart, two_labels)  # LOO 1.0, MAP 1.0
    helped = centring_verdict(low, high)
    assert helped.startswith("helped: LOO accuracy 0.750 -> 1.000, MAP 0.833 -> 1.000, span ")
    assert centring_verdict(high, low).startswith("hurt: LOO accuracy 1.000 -> 0.750")
    assert centring_verdict(high, high).startswith("made no difference")


def test_centring_verdict_falls_back_on_map_when_accuracy_is_equal(
    apart: np.ndarray, two_labels: list[str]
) -> None:
    # A at 0° and 20° (centroid 10°), B at 42° and 67°. LOO: b1 (42°) is 25° from b2 but 32°
    # from A's centroid, so every track finds its own artist (1.0), as in `apart`. Retrieval:
    # b1's nearest track is a2 (22°) before b2 (25°), AP 1/2; the rest AP 1: MAP 0.875.
    angles = np.radians([0, 20, 42, 67])
    loose = evaluate_vectors(np.stack([np.cos(angles), np.sin(angles)], axis=1), two_labels)
    tidy = evaluate_vectors(apart, two_labels)
    assert loose.retrieval.mean_average_precision == 0.875
    assert centring_verdict(loose, tidy).startswith(
        "helped: LOO accuracy 1.000 -> 1.000, MAP 0.875 -> 1.000"
    )
    assert centring_verdict(tidy, loose).startswith("hurt:")


def test_text_shows_the_figures_of_the_vectors(apart: np.ndarray, two_labels: list[str]) -> None:
    options = EvaluationOptions(out_dir=Path("out"), centre_vectors=True)
    evaluation = evaluate_vectors(apart, two_labels)
    tracks = [
        EvalTrack(label, label.lower(), f"/{label}/{i}.flac") for i, label in enumerate(two_labels)
    ]
    report = report_dict(
        options,
        spec=SPEC,
        model_name="tiny",
        tracks=tracks,
        problems=[{"path": "/gone.flac", "reason": "no stored vector"}],
        per_layer={11: evaluation},
        primary=11,
        best=11,
        centred={11: evaluation},
    )
    assert (report["artists"], report["tracks"], report["vectors"]) == (2, 4, "stored")
    assert report["track_counts"] == {"A": 2, "B": 2}
    text = markdown(report)
    assert "| LOO nearest-centroid accuracy | 1.000 (4/4 tracks; 0 single-track excluded) |" in text
    assert "| track MAP | 1.000 |" in text
    assert "2 artists, 4 tracks, 1 skipped (listed below)." in text
    assert "- `/gone.flac`: no stored vector" in text
    assert "Centring **made no difference" in text
    assert "## Layers" not in text  # one layer: no sweep table
    summary = summary_text(report)
    assert summary.splitlines()[0] == "2 artists, 4 tracks (stored); layer 11:"
    assert "LOO accuracy 1.000, precision@5 1.000, MAP 1.000" in summary
    # The caller prints where the report is; the summary must not say it a second time.
    assert not [line for line in summary.splitlines() if line.startswith("report:")]
