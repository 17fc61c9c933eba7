"""`run_evaluation` end to end: the tiny random MERT checkpoint and a generated catalogue."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.evaluation import EvaluationOptions, run_evaluation
from soundalike.ingest.evaluation.metrics import evaluate_vectors
from soundalike.ingest.model import LoadedMert, load_mert
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources import source_for
from soundalike.search.store import Store, open_store

ARTISTS = 3
TRACKS_PER_ARTIST = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class RecordingLoader:
    """The caller's model loader: CPU, and a record of what was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int]] = []

    def __call__(self, model: str, revision: str | None, layer: int) -> LoadedMert:
        self.calls.append((model, revision, layer))
        return load_mert(model, revision=revision, layer=layer, device="cpu")


def no_model(model: str, revision: str | None, layer: int) -> LoadedMert:
    raise AssertionError(f"stored vectors need no model, but {model} layer {layer} was loaded")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-catalogue")
    write_catalogue(
        root, artists=ARTISTS, tracks_per_artist=TRACKS_PER_ARTIST, formats=("flac", "wav")
    )
    return root


def ingested(catalogue: Path, embedder: MertEmbedder, data_dir: Path) -> Store:
    store = open_store(data_dir=data_dir)
    summary = ingest(
        source_for(catalogue),
        store=store,
        engine=VectorEngine(embedder, Decoding()),
        options=IngestOptions(workers=1),
    )
    assert summary.ingested == ARTISTS * TRACKS_PER_ARTIST and not summary.failed
    return store


@pytest.fixture(scope="module")
def store(
    catalogue: Path, tiny_embedder: MertEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    opened = ingested(catalogue, tiny_embedder, tmp_path_factory.mktemp("eval-store"))
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


def artist_folders(catalogue: Path) -> set[str]:
    return {path.name for path in catalogue.iterdir() if path.is_dir()}


def written(out: Path) -> list[str]:
    return sorted(path.name for path in out.iterdir())


def test_stored_vectors_are_reported_without_loading_a_model(
    store: Store, catalogue: Path, tmp_path: Path
) -> None:
    result = run_evaluation(EvaluationOptions(out_dir=tmp_path), store=store, load_model=no_model)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == result.report
    assert (report["vectors"], report["artists"], report["tracks"]) == ("stored", 3, 9)
    assert list(report["layers"]) == ["11"]
    assert report["layer"] == report["best_layer"] == 11
    assert set(report["metrics"]["matrix"]["artists"]) == artist_folders(catalogue)
    assert report["track_counts"] == dict.fromkeys(artist_folders(catalogue), 3)
    vectors, labels = stored_vectors(store)
    assert report["span"] == pytest.approx(evaluate_vectors(vectors, labels).summary.span, abs=1e-6)
    assert written(tmp_path) == ["heatmap.png", "map.png", "report.json", "report.md"]
    assert sorted(p.name for p in result.files) == written(tmp_path)
    for name in ("heatmap.png", "map.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert "3 artists, 9 tracks." in (tmp_path / "report.md").read_text()
    assert result.summary_text.startswith("3 artists, 9 tracks (stored); layer 11:")


def test_re_embedding_the_stored_layer_reproduces_the_stored_vectors(
    store: Store, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    # One pass with every hidden state must give what the truncated ingest model stored.
    loader = RecordingLoader()
    options = EvaluationOptions(out_dir=tmp_path, layers="11", batch_size=8)
    result = run_evaluation(options, store=store, load_model=loader)
    # The catalogue's own model, loaded to the layer asked for.
    assert loader.calls == [(str(tiny_mert_dir.resolve()), None, 11)]
    vectors, labels = stored_vectors(store)
    expected = evaluate_vectors(vectors, labels)
    metrics = result.report["metrics"]
    assert result.report["vectors"] == "re-embedded from audio"
    assert metrics["matrix"]["artists"] == expected.artists
    np.testing.assert_allclose(np.array(metrics["matrix"]["values"]), expected.matrix, atol=1e-4)


def test_layer_sweep_with_chunked_comparison(store: Store, tmp_path: Path) -> None:
    loader = RecordingLoader()
    options = EvaluationOptions(
        out_dir=tmp_path, layers="all", sample=2, compare="chunked:5", batch_size=8
    )
    result = run_evaluation(options, store=store, load_model=loader)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [call[2] for call in loader.calls] == [12]  # one model, deep enough for every layer
    assert list(report["layers"]) == [str(layer) for layer in range(13)]
    assert (report["artists"], report["tracks"], report["sample_per_artist"]) == (3, 6, 2)
    assert report["layer"] == 11  # the catalogue's own layer heads the report
    compare = report["compare"]
    # 12 s windows in 5 s chunks: 0-5, 5-10 and the last 5 s (7-12).
    assert compare["chunks_per_track"] == 3
    assert list(compare["layers"]) == list(report["layers"])
    assert written(tmp_path) == [
        "heatmap.png",
        "layers.png",
        "map.png",
        "report.json",
        "report.md",
    ]
    assert (tmp_path / "layers.png").read_bytes()[:8] == PNG_MAGIC
    markdown = (tmp_path / "report.md").read_text()
    assert "## Layers" in markdown and "## Full window vs 5 s chunks" in markdown
    assert f"best layer: {report['best_layer']} (★)" in result.summary_text


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def test_centring_artist_models_and_reference_overlap(store: Store, tmp_path: Path) -> None:
    vectors, labels = stored_vectors(store)
    expected = evaluate_vectors(vectors, labels)
    # A reference equal to our own neighbour order, names shouted and stripped of accents,
    # ranks given in reverse file order: overlap@k must be perfect.
    reference = tmp_path / "reference.csv"
    lines = ["artist,similar_artist,rank"]
    for i, name in enumerate(expected.artists):
        order = np.argsort(-expected.matrix[i], kind="stable")
        others = [expected.artists[j] for j in order if j != i]
        for rank, other in reversed(list(enumerate(others, 1))):
            lines.append(f'"{name.upper()}","{_strip_accents(other)}",{rank}')
    reference.write_text("\n".join(lines) + "\n")

    options = EvaluationOptions(
        out_dir=tmp_path / "out", compare="artist-model", centre_vectors=True, reference=reference
    )
    report = run_evaluation(options, store=store, load_model=no_model).report
    assert report["reference"]["overlap_at_k"] == 1.0
    assert report["reference"]["artists_compared"] == ARTISTS
    models = report["compare"]
    assert models["single"]["loo"] == report["metrics"]["loo"]
    # Three tracks per artist: one centroid each (at least two tracks per centroid).
    assert models["centroids_per_artist"] == dict.fromkeys(expected.artists, 1)
    assert models["multi"]["loo"]["accuracy"] == models["single"]["loo"]["accuracy"]
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"Centring **{report['centred']['verdict']}** (layer 11)" in markdown
    assert "## One centroid per artist vs several" in markdown


def test_a_folder_can_be_evaluated_without_a_store(
    catalogue: Path, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    options = EvaluationOptions(
        out_dir=tmp_path,
        source=catalogue,
        model=str(tiny_mert_dir),
        window_seconds=10.0,
        sample=1,
        batch_size=8,
    )
    loader = RecordingLoader()
    result = run_evaluation(options, store=None, load_model=loader)
    assert loader.calls == [(str(tiny_mert_dir), None, 11)]
    report = result.report
    assert (report["source"], report["artists"], report["tracks"]) == (str(catalogue), 3, 3)
    assert (report["spec"]["window_seconds"], report["spec"]["layer"]) == (10.0, 11)
    assert report["single_track_artists"] == ARTISTS
    # One track per artist: nothing can be left out, and the report says so.
    assert report["metrics"]["loo_accuracy"] is None
    assert report["metrics"]["loo"]["excluded_single_track"] == ARTISTS


def test_moved_files_are_skipped_and_reported(
    catalogue: Path, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    copy = shutil.copytree(catalogue, tmp_path / "catalogue")
    store = ingested(copy, tiny_embedder, tmp_path / "data")
    try:
        gone = sorted(copy.rglob("*.flac"))[0]
        gone.unlink()
        options = EvaluationOptions(out_dir=tmp_path / "out", layers="3", batch_size=8)
        result = run_evaluation(options, store=store, load_model=RecordingLoader())
    finally:
        store.close()
    assert result.report["tracks"] == ARTISTS * TRACKS_PER_ARTIST - 1
    assert [s["path"] for s in result.report["skipped"]] == [str(gone)]
    assert f"- `{gone}`: " in (tmp_path / "out" / "report.md").read_text()
    assert result.summary_text.endswith("1 track(s) skipped (see report.md)")


def test_requests_that_cannot_run_are_refused_with_a_reason(
    store: Store, catalogue: Path, tmp_path: Path
) -> None:
    empty = open_store(in_memory=True)
    with pytest.raises(InvalidRequest, match="store is empty"):
        run_evaluation(EvaluationOptions(out_dir=tmp_path), store=empty, load_model=no_model)
    missing = EvaluationOptions(out_dir=tmp_path, reference=tmp_path / "nope.csv")
    with pytest.raises(InvalidRequest, match="nope.csv"):
        run_evaluation(missing, store=store, load_model=no_model)
    one_artist = EvaluationOptions(out_dir=tmp_path, source=next(p for p in catalogue.iterdir()))
    with pytest.raises(InvalidRequest, match="at least two artists"):
        run_evaluation(one_artist, store=None, load_model=no_model)


def test_compare_precision_reembeds_in_fp32_and_bf16(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soundalike.ingest import precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    asked: list[str | None] = []

    def loader(model: str, revision: str | None, layer: int, precision: str | None = None):  # type: ignore[no-untyped-def]
        asked.append(precision)
        return load_mert(model, revision=revision, layer=layer, device="cpu", precision=precision)

    options = EvaluationOptions(out_dir=tmp_path, compare="precision", batch_size=8)
    result = run_evaluation(options, store=store, load_model=loader)
    assert asked == ["fp32", "bf16"]
    compare = result.report["compare"]
    assert compare["kind"] == "precision" and compare["tracks"] == ARTISTS * TRACKS_PER_ARTIST
    assert 0 < compare["l2_mean"] <= compare["l2_max"] < 0.01
    assert 0 <= compare["artist_overlap_at_k"] <= 1
    assert {"fp32_loo_accuracy", "bf16_loo_accuracy", "fp32_map", "bf16_map"} <= set(compare)
    assert "## fp32 vs bf16" in (tmp_path / "report.md").read_text()
    assert "fp32 vs bf16: L2 mean" in result.summary_text
