"""`run_evaluation`: gather the tracks, take or re-embed their vectors, measure, write the report.

Stored vectors are used as they are unless the options ask for embedding (`layers`, a chunked
or a precision comparison, or a `source` folder); then audio is re-decoded with the stored
spec's excerpt and window and embedded again, every requested layer from one forward pass per
window (with `--compare precision`, in fp32 and again in bf16 at the headline layer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from soundalike.core.errors import InvalidRequest, SpecMismatch
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.engine import Decoding
from soundalike.ingest.evaluation.compare import (
    artist_model_comparison,
    chunked_comparison,
    precision_comparison,
)
from soundalike.ingest.evaluation.embedding import (
    HiddenStateEmbedder,
    Log,
    embed_tracks,
    model_layer_count,
)
from soundalike.ingest.evaluation.gather import (
    EvalTrack,
    require_two_artists,
    sample_tracks,
    skipped_entry,
    tracks_from_source,
    tracks_from_store,
)
from soundalike.ingest.evaluation.metrics import (
    VectorEvaluation,
    best_layer,
    centre,
    evaluate_vectors,
)
from soundalike.ingest.evaluation.options import EvaluationOptions
from soundalike.ingest.evaluation.plots import plot_heatmap, plot_layers, plot_map
from soundalike.ingest.evaluation.reference import load_reference, reference_section
from soundalike.ingest.evaluation.report import markdown, report_dict, summary_text
from soundalike.ingest.model import DEFAULT_MODEL, LoadedMert
from soundalike.search.store import Store


class LoadModel(Protocol):
    """(model id, revision, layer[, precision]) -> the model truncated to that layer, on the
    caller's device, in the caller's precision unless one is given (`--compare precision`)."""

    def __call__(
        self, model: str, revision: str | None, layer: int, precision: str | None = None
    ) -> LoadedMert: ...


@dataclass
class EvalResult:
    """What `run_evaluation` produced: the figures, a summary to print, the files written."""

    report: dict[str, Any]
    summary_text: str
    files: list[Path] = field(default_factory=list)


@dataclass
class _Vectors:
    """The tracks kept and their vectors per layer (and per layer in chunks, if asked)."""

    spec: EmbeddingSpec
    tracks: list[EvalTrack]
    full: dict[int, np.ndarray]
    chunked: dict[int, np.ndarray] | None = None
    chunks_per_track: float | None = None
    embed_seconds: float | None = None
    # `--compare precision`: the headline layer's vectors in bf16 (`full` is then fp32).
    bf16: np.ndarray | None = None


def _layer_list(layers: Sequence[int]) -> str:
    if len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(str(x) for x in layers)


def _stored_vectors(
    spec: EmbeddingSpec, tracks: list[EvalTrack], problems: list[dict[str, str]]
) -> _Vectors:
    problems += [skipped_entry(t, "no stored vector") for t in tracks if t.vector is None]
    kept = [t for t in tracks if t.vector is not None]
    require_two_artists(kept)
    return _Vectors(spec, kept, {spec.layer: np.array([t.vector for t in kept])})


def _embedded_vectors(
    options: EvaluationOptions,
    stored_spec: EmbeddingSpec | None,
    model_name: str,
    revision: str | None,
    tracks: list[EvalTrack],
    problems: list[dict[str, str]],
    load_model: LoadModel,
    log: Log | None,
) -> _Vectors:
    default_layer = stored_spec.layer if stored_spec else options.layer
    choice = options.layer_choice()
    if choice is None:
        wanted = [default_layer]
    else:
        wanted = choice.resolve(model_layer_count(model_name, revision))
    precision = "fp32" if options.compares_precision() else None
    loaded = (
        load_model(model_name, revision, max(wanted), precision)
        if precision
        else load_model(model_name, revision, max(wanted))
    )
    embedder = HiddenStateEmbedder(loaded, wanted, batch_size=options.batch_size)
    decoding = options.decoding()
    if stored_spec is None:
        spec = replace(
            embedder.build_spec(str(decoding.excerpt), decoding.window_seconds),
            layer=default_layer,
        )
    else:
        spec = stored_spec
        decoding = decoding.for_spec(spec)
        if loaded.sample_rate != spec.sample_rate:
            raise SpecMismatch(
                f"model {model_name!r} runs at {loaded.sample_rate} Hz but the stored vectors "
                f"were made at {spec.sample_rate} Hz; evaluate with the model that made them"
            )
    if log:
        log(
            f"embedding {len(tracks)} tracks at layers {_layer_list(wanted)} "
            f"({spec.excerpt}, {spec.window_seconds:g} s window)"
        )
    embedded = embed_tracks(
        tracks, embedder, decoding, chunk_seconds=options.chunk_seconds(), log=log
    )
    problems += embedded.skipped
    require_two_artists(embedded.tracks)
    vectors = _Vectors(
        spec,
        embedded.tracks,
        embedded.full,
        embedded.chunked,
        embedded.chunks_per_track,
        embedded.seconds,
    )
    if precision:
        vectors.bf16 = _bf16_vectors(vectors, model_name, revision, decoding, options, load_model)
    return vectors


def _bf16_vectors(
    vectors: _Vectors,
    model_name: str,
    revision: str | None,
    decoding: Decoding,
    options: EvaluationOptions,
    load_model: LoadModel,
) -> np.ndarray:
    """The kept tracks embedded again in bf16, at the headline layer (`--compare precision`);
    a CPU without native bf16 refuses it (ingest/precision.py)."""
    layer = vectors.spec.layer
    loaded = load_model(model_name, revision, layer, "bf16")
    embedder = HiddenStateEmbedder(loaded, [layer], batch_size=options.batch_size)
    again = embed_tracks(vectors.tracks, embedder, decoding, chunk_seconds=None)
    if len(again.tracks) != len(vectors.tracks):
        raise InvalidRequest("--compare precision: a track decoded once could not be decoded again")
    return again.full[layer]


def _write_report(
    out_dir: Path,
    report: dict[str, Any],
    vectors: _Vectors,
    labels: list[str],
    per_layer: dict[int, VectorEvaluation],
    centred: dict[int, VectorEvaluation] | None,
) -> list[Path]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequest(f"--out {out_dir}: cannot create it: {exc.strerror or exc}") from exc
    primary, best = report["layer"], report["best_layer"]
    files = [
        plot_heatmap(out_dir / "heatmap.png", per_layer[primary], primary),
        plot_map(out_dir / "map.png", vectors.full[primary], labels, primary),
    ]
    if len(per_layer) > 1:
        files.append(plot_layers(out_dir / "layers.png", per_layer, best, centred))
    report["files"] = [p.name for p in files] + ["report.md", "report.json"]
    (out_dir / "report.md").write_text(markdown(report), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return files + [out_dir / "report.md", out_dir / "report.json"]


def run_evaluation(
    options: EvaluationOptions,
    *,
    store: Store | None,
    load_model: LoadModel,
    log: Log | None = None,
) -> EvalResult:
    """Evaluate the catalogue (or `options.source`) and write report.md, report.json,
    heatmap.png, map.png (and layers.png for a sweep) into `options.out_dir`.

    `load_model` is only called when audio is re-embedded. The model is the stored catalogue's
    unless `options.model` names another.
    """
    started = time.monotonic()
    # Read first: a bad reference file should not cost an embedding run.
    reference = (
        None
        if options.reference is None
        else (options.reference, load_reference(options.reference))
    )
    stored_spec = store.spec() if store is not None else None
    if options.source is None and stored_spec is None:
        raise InvalidRequest(
            "the store is empty: ingest a catalogue first, or give a folder or manifest to evaluate"
        )
    # Re-embedded vectors must come from the model that made the catalogue unless told otherwise.
    if stored_spec is not None and options.model is None:
        model_name, revision = stored_spec.model, stored_spec.revision
    else:
        model_name, revision = options.model or DEFAULT_MODEL, options.revision

    problems: list[dict[str, str]] = []
    if options.source is not None:
        all_tracks, problems = tracks_from_source(options.source, options.artist_from)
    else:
        assert store is not None  # a stored spec was found above
        all_tracks = tracks_from_store(store, with_vectors=not options.must_embed())
    tracks = sample_tracks(all_tracks, options.sample, options.seed)
    require_two_artists(tracks)
    if options.must_embed():
        vectors = _embedded_vectors(
            options, stored_spec, model_name, revision, tracks, problems, load_model, log
        )
    else:
        assert stored_spec is not None
        vectors = _stored_vectors(stored_spec, tracks, problems)

    labels = [t.artist for t in vectors.tracks]
    k = options.k
    per_layer = {
        layer: evaluate_vectors(layer_vectors, labels, k=k)
        for layer, layer_vectors in vectors.full.items()
    }
    best = best_layer(per_layer)
    # The headline is the catalogue's own layer when the sweep holds it.
    primary = vectors.spec.layer if vectors.spec.layer in per_layer else best
    centred = None
    if options.centre_vectors:
        centred = {
            layer: evaluate_vectors(centre(layer_vectors), labels, k=k)
            for layer, layer_vectors in vectors.full.items()
        }

    report = report_dict(
        options,
        spec=vectors.spec,
        model_name=model_name,
        tracks=vectors.tracks,
        problems=problems,
        per_layer=per_layer,
        primary=primary,
        best=best,
        centred=centred,
    )
    if vectors.embed_seconds is not None:
        report["embedding_seconds"] = round(vectors.embed_seconds, 3)
    comparison = options.comparison()
    if comparison is not None and comparison.kind == "chunked":
        assert vectors.chunked is not None
        report["compare"] = chunked_comparison(
            per_layer,
            vectors.chunked,
            labels,
            primary,
            k,
            comparison.chunk_seconds,
            vectors.chunks_per_track,
        )
    elif comparison is not None and comparison.kind == "precision":
        assert vectors.bf16 is not None
        report["compare"] = precision_comparison(
            vectors.full[vectors.spec.layer], vectors.bf16, labels, vectors.spec.layer, k
        )
    elif comparison is not None:
        report["compare"] = artist_model_comparison(
            vectors.full[primary], labels, per_layer[primary], k, options.seed
        )
    if reference is not None:
        report["reference"] = reference_section(
            *reference,
            per_layer[primary],
            centred[primary] if centred else None,
            k,
        )
    report["seconds"] = round(time.monotonic() - started, 3)
    files = _write_report(Path(options.out_dir), report, vectors, labels, per_layer, centred)
    return EvalResult(report=report, summary_text=summary_text(report), files=files)
