"""`soundalike eval` end to end on the tiny model and a generated catalogue, plus its parsers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.ingest.audio import ExcerptPolicy
from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.evaluation import (
    Comparison,
    EvalTrack,
    chunk_window,
    load_reference,
    parse_layers,
    run_evaluation,
    sample_tracks,
)
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.search.errors import InvalidRequest
from soundalike.search.evaluate import evaluate_vectors
from soundalike.search.store import Store, open_store

ARTISTS = 3
TRACKS_PER_ARTIST = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-catalogue")
    write_catalogue(
        root,
        artists=ARTISTS,
        tracks_per_artist=TRACKS_PER_ARTIST,
        seconds=12.0,
        formats=("flac", "wav"),
    )
    return root


@pytest.fixture(scope="module")
def store(catalogue: Path, tiny_embedder: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    opened = open_store(data_dir=tmp_path_factory.mktemp("eval-store"))
    summary = ingest(
        catalogue,
        store=opened,
        embedder=tiny_embedder,
        options=IngestOptions(excerpt=ExcerptPolicy.parse("centre"), workers=1),
    )
    assert summary.ingested == ARTISTS * TRACKS_PER_ARTIST and not summary.failed
    yield opened
    opened.close()


def stored_vectors(store: Store) -> tuple[np.ndarray, list[str]]:
    artists, _ = store.list_artists(limit=100)
    vectors, labels = [], []
    for artist in artists:
        for track in store.tracks_of_artist(artist.artist_key, with_vectors=True):
            vectors.append(track.vector)
            labels.append(artist.name)
    return np.array(vectors), labels


def test_stored_vectors_report_the_figures_of_those_vectors(store: Store, tmp_path: Path) -> None:
    result = run_evaluation(store, tmp_path)
    vectors, labels = stored_vectors(store)
    expected = evaluate_vectors(vectors, labels)

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["vectors"] == "stored"
    assert report["span"] == pytest.approx(expected.summary.span, abs=1e-6)
    assert report["layers"]["11"]["loo_accuracy"] == pytest.approx(expected.identification.accuracy)
    assert report["metrics"]["map"] == pytest.approx(expected.retrieval.mean_average_precision)
    assert report["metrics"]["matrix"]["artists"] == expected.artists
    assert sorted(p.name for p in result.files) == [
        "heatmap.png",
        "map.png",
        "report.json",
        "report.md",
    ]
    for name in ("heatmap.png", "map.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    markdown = (tmp_path / "report.md").read_text()
    assert "LOO nearest-centroid accuracy" in markdown
    assert expected.summary.most_similar.artist in markdown
    assert "span" in result.summary_text


def test_re_embedding_the_stored_layer_reproduces_the_stored_vectors(
    store: Store, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    # One pass with every hidden state must give what the truncated ingest model stored.
    result = run_evaluation(
        store, tmp_path, layers="11", model=str(tiny_mert_dir), device="cpu", batch_size=8
    )
    vectors, labels = stored_vectors(store)
    expected = evaluate_vectors(vectors, labels)
    metrics = result.report["metrics"]
    assert result.report["vectors"] == "re-embedded from audio"
    np.testing.assert_allclose(np.array(metrics["matrix"]["values"]), expected.matrix, atol=1e-4)
    assert metrics["loo_accuracy"] == pytest.approx(expected.identification.accuracy)


def test_layer_sweep_with_chunked_comparison(
    store: Store, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    result = run_evaluation(
        store,
        tmp_path,
        layers="all",
        sample=2,
        compare="chunked:5",
        model=str(tiny_mert_dir),
        device="cpu",
        batch_size=8,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(int(layer) for layer in report["layers"]) == list(range(13))
    assert report["tracks"] == ARTISTS * 2
    assert report["best_layer"] in range(13)
    best = report["layers"][str(report["best_layer"])]
    assert all(
        (row["loo_accuracy"], row["span"]) <= (best["loo_accuracy"], best["span"])
        for row in report["layers"].values()
    )
    compare = report["compare"]
    # 12 s windows in 5 s chunks: 0-5, 5-10 and the last 5 s (7-12).
    assert compare["chunks_per_track"] == 3
    # The spans in the report are rounded to 6 digits; their ratio is only good to ~1e-3.
    assert compare["span_change_full_vs_chunked"] == pytest.approx(
        (compare["full_span"] - compare["chunked_span"]) / compare["chunked_span"], rel=1e-2
    )
    assert set(compare["layers"]) == set(report["layers"])
    assert compare["full_span"] != compare["chunked_span"]
    assert sorted(p.name for p in result.files) == [
        "heatmap.png",
        "layers.png",
        "map.png",
        "report.json",
        "report.md",
    ]
    assert (tmp_path / "layers.png").read_bytes()[:8] == PNG_MAGIC
    markdown = (tmp_path / "report.md").read_text()
    assert "## Layers" in markdown and "★" in markdown
    assert "5 s chunks" in markdown
    assert "best layer" in result.summary_text


def test_centring_artist_models_and_reference_overlap(store: Store, tmp_path: Path) -> None:
    vectors, labels = stored_vectors(store)
    expected = evaluate_vectors(vectors, labels)
    # A reference equal to our own neighbour order, names shouted and stripped of accents:
    # overlap@k must be perfect.
    reference = tmp_path / "reference.csv"
    lines = ["artist,similar_artist,rank"]
    for i, name in enumerate(expected.artists):
        order = np.argsort(-expected.matrix[i], kind="stable")
        others = [expected.artists[j] for j in order if j != i]
        for rank, other in reversed(list(enumerate(others, 1))):
            lines.append(f'"{name.upper()}","{_strip_accents(other)}",{rank}')
    reference.write_text("\n".join(lines) + "\n")

    result = run_evaluation(
        store, tmp_path / "out", compare="artist-model", centre_vectors=True, reference=reference
    )
    report = result.report
    assert report["reference"]["overlap_at_k"] == pytest.approx(1.0)
    assert report["reference"]["artists_compared"] == ARTISTS
    assert report["centred"]["verdict"].split(":")[0] in (
        "helped",
        "hurt",
        "made no difference to identification or retrieval",
    )
    assert report["centred"]["metrics"]["span"] > report["span"]  # the shared direction is gone
    models = report["compare"]
    assert models["single"]["loo"]["accuracy"] == pytest.approx(expected.identification.accuracy)
    assert 0.0 <= models["multi"]["loo"]["accuracy"] <= 1.0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "Centring" in markdown and "One centroid per artist vs several" in markdown


def test_a_folder_can_be_evaluated_without_a_store(
    catalogue: Path, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    result = run_evaluation(
        None,
        tmp_path,
        source=catalogue,
        model=str(tiny_mert_dir),
        device="cpu",
        batch_size=8,
        window_seconds=10.0,
        sample=1,
    )
    assert result.report["artists"] == ARTISTS
    assert result.report["single_track_artists"] == ARTISTS
    # One track per artist: nothing can be left out, and the report says so.
    assert result.report["metrics"]["loo_accuracy"] is None
    assert result.report["metrics"]["loo"]["excluded_single_track"] == ARTISTS


def test_moved_files_are_skipped_and_reported(
    store: Store, tiny_mert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soundalike.ingest import evaluation

    original = evaluation._tracks_from_store

    def with_one_missing(*args: Any, **kwargs: Any) -> list[EvalTrack]:
        tracks = original(*args, **kwargs)
        tracks[0].path = str(tmp_path / "gone.flac")
        return tracks

    monkeypatch.setattr(evaluation, "_tracks_from_store", with_one_missing)
    result = run_evaluation(
        store, tmp_path, layers="3", model=str(tiny_mert_dir), device="cpu", batch_size=8
    )
    assert result.report["tracks"] == ARTISTS * TRACKS_PER_ARTIST - 1
    assert [s["path"] for s in result.report["skipped"]] == [str(tmp_path / "gone.flac")]
    assert "gone.flac" in (tmp_path / "report.md").read_text()


def test_bad_requests_are_refused_with_a_reason(store: Store, tmp_path: Path) -> None:
    empty = open_store(in_memory=True)
    with pytest.raises(InvalidRequest, match="store is empty"):
        run_evaluation(empty, tmp_path)
    with pytest.raises(InvalidRequest, match="chunked"):
        run_evaluation(store, tmp_path, compare="chunks")
    with pytest.raises(InvalidRequest, match="--sample"):
        run_evaluation(store, tmp_path, sample=0)
    missing = tmp_path / "nope.csv"
    with pytest.raises(InvalidRequest, match="nope.csv"):
        run_evaluation(store, tmp_path, reference=missing)


def test_parse_layers_and_comparisons() -> None:
    assert parse_layers("all", 12) == list(range(13))
    assert parse_layers("11, 0,3,3", 12) == [0, 3, 11]
    with pytest.raises(InvalidRequest, match="0..12"):
        parse_layers("13", 12)
    with pytest.raises(InvalidRequest, match="list like"):
        parse_layers("-1", 12)
    assert Comparison.parse("chunked") == Comparison("chunked", 10.0)
    assert Comparison.parse("chunked:5") == Comparison("chunked", 5.0)
    assert Comparison.parse("artist-model").kind == "artist-model"
    with pytest.raises(InvalidRequest, match="seconds"):
        Comparison.parse("chunked:0")


def test_chunks_cover_the_window_with_equal_lengths() -> None:
    window = np.arange(12)
    chunks = chunk_window(window, 5)
    assert [c.tolist() for c in chunks] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [7, 8, 9, 10, 11],
    ]
    assert [c.tolist() for c in chunk_window(np.arange(10), 5)] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
    ]
    assert len(chunk_window(np.arange(4), 5)) == 1


def test_sampling_is_deterministic_and_per_artist() -> None:
    tracks = [EvalTrack(a, a.lower(), f"/{a}/{i}.flac") for a in ("A", "B") for i in range(6)]
    first = sample_tracks(tracks, 2, seed=0)
    assert [t.path for t in first] == [t.path for t in sample_tracks(tracks, 2, seed=0)]
    assert [t.artist for t in first] == ["A", "A", "B", "B"]
    # Adding an artist does not change the others' picks.
    more = tracks + [EvalTrack("C", "c", f"/C/{i}.flac") for i in range(6)]
    assert [t.path for t in sample_tracks(more, 2, seed=0)][:4] == [t.path for t in first]
    assert len(sample_tracks(tracks, None, seed=0)) == 12


def test_reference_files_in_every_accepted_shape(tmp_path: Path) -> None:
    ranked = tmp_path / "ranked.csv"
    ranked.write_text("Artist,Similar_Artist,Rank\nA,C,2\nA,B,1\nB,A,\n")
    assert load_reference(ranked) == {"A": ["B", "C"], "B": ["A"]}
    as_mapping = tmp_path / "map.json"
    as_mapping.write_text(json.dumps({"A": ["B", "C"]}))
    assert load_reference(as_mapping) == {"A": ["B", "C"]}
    as_rows = tmp_path / "rows.json"
    as_rows.write_text(json.dumps([{"artist": "A", "similar_artist": "B"}]))
    assert load_reference(as_rows) == {"A": ["B"]}
    broken = tmp_path / "broken.csv"
    broken.write_text("artist,other\nA,B\n")
    with pytest.raises(InvalidRequest, match="broken.csv: row 1 needs both"):
        load_reference(broken)
    bad_rank = tmp_path / "bad_rank.csv"
    bad_rank.write_text("artist,similar_artist,rank\nA,B,first\n")
    with pytest.raises(InvalidRequest, match="not a number"):
        load_reference(bad_rank)


def _strip_accents(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
