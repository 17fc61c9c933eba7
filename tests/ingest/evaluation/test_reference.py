"""An external similar-artists list: the files accepted and overlap@k against it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.evaluation.metrics import evaluate_vectors
from soundalike.ingest.evaluation.reference import (
    load_reference,
    neighbours_from_matrix,
    overlap_at_k,
    reference_section,
)


def test_reference_files_in_every_accepted_shape(tmp_path: Path) -> None:
    ranked = tmp_path / "ranked.csv"
    ranked.write_text("Artist,Similar_Artist,Rank\nA,D,\nA,C,2\nA,B,1\nB,A,\n")
    # Ranked rows first by rank, unranked ones after them in file order.
    assert load_reference(ranked) == {"A": ["B", "C", "D"], "B": ["A"]}
    as_mapping = tmp_path / "map.json"
    as_mapping.write_text(json.dumps({"A": ["B", "C"]}))
    assert load_reference(as_mapping) == {"A": ["B", "C"]}
    as_rows = tmp_path / "rows.json"
    as_rows.write_text(json.dumps([{"artist": "A", "similar_artist": "B"}]))
    assert load_reference(as_rows) == {"A": ["B"]}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.csv", "artist,other\nA,B\n", "broken.csv: row 1 needs both"),
        ("rank.csv", "artist,similar_artist,rank\nA,B,first\n", "rank 'first' is not a number"),
        ("bad.json", "{", "not valid JSON"),
        ("scalar.json", "3", "expected a JSON object"),
        ("values.json", '{"A": "B"}', "the value for 'A' must be a list"),
    ],
)
def test_bad_reference_files_are_refused(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InvalidRequest, match=message):
        load_reference(tmp_path / name)
    with pytest.raises(InvalidRequest, match="nope.csv: cannot read it"):
        load_reference(tmp_path / "nope.csv")


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


def test_the_report_section_names_artists_as_people_wrote_them() -> None:
    # Centroids at 0° (Señora Luna), 30° (Zoë) and 90° (Éclair): Luna's nearest is Zoë, then
    # Éclair. The reference says Luna's nearest is Éclair: overlap@1 0, overlap@2 1.
    angles = [-5, 5, 25, 35, 85, 95]
    vectors = np.array([[np.cos(np.radians(a)), np.sin(np.radians(a))] for a in angles])
    labels = ["Señora Luna"] * 2 + ["Zoë's Machines"] * 2 + ["Éclair Ensemble"] * 2
    evaluation = evaluate_vectors(vectors, labels)
    reference = {"SENORA LUNA": ["eclair ensemble", "Zoe's Machines"]}

    at_one = reference_section(Path("similar.csv"), reference, evaluation, None, k=1)
    assert at_one["file"] == "similar.csv"
    assert at_one["overlap_at_k"] == 0.0
    (row,) = at_one["per_artist"]
    assert (row["artist"], row["ours"], row["reference"]) == (
        "Señora Luna",
        ["Zoë's Machines"],
        ["Éclair Ensemble"],
    )
    at_two = reference_section(Path("similar.csv"), reference, evaluation, evaluation, k=2)
    assert at_two["overlap_at_k"] == 1.0
    assert at_two["centred"]["overlap_at_k"] == 1.0
