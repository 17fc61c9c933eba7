"""`soundalike eval`: how well the catalogue's vectors separate artists, written as a report.

Gathers tracks (the store's, or a folder/manifest), samples `--sample N` per artist with a fixed
seed, and either takes the stored vectors as they are or re-decodes the audio with the stored
spec's excerpt and window and embeds it again. Re-embedding runs the model once per window with
every hidden state returned, so a sweep over all 13 layers costs one embedding of the sample.
The metrics themselves live in `search/evaluate.py`; this module writes report.md, report.json
and the pictures (heatmap.png, map.png, layers.png).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from soundalike.ingest.audio import ExcerptPolicy, decode_excerpt
from soundalike.ingest.catalogue import discover
from soundalike.ingest.embed import MIN_WINDOW_SAMPLES, MertEmbedder
from soundalike.ingest.model import DEFAULT_LAYER, DEFAULT_MODEL, LoadedMert, load_mert
from soundalike.search.errors import AudioError, InvalidRequest, ModelUnavailable
from soundalike.search.evaluate import (
    DEFAULT_K,
    VectorEvaluation,
    artist_models,
    best_layer,
    centre,
    evaluate_vectors,
    leave_one_out_identification,
    leave_one_out_multi_centroid,
    model_similarity,
    neighbours_from_matrix,
    overlap_at_k,
    pca_2d,
    relative_change,
    summarise_matrix,
)
from soundalike.search.names import artist_key
from soundalike.search.store import Store
from soundalike.search.types import EmbeddingSpec

DEFAULT_CHUNK_SECONDS = 10.0
MAX_ARTIST_CLUSTERS = 3
# Decoded tracks are embedded in groups of this many batches' worth of windows.
WINDOW_GROUP_BATCHES = 4
ARTIST_PAGE = 1000
# Up to this many artists the heatmap prints each value in its cell; the markdown report prints
# the full matrix as a table.
ANNOTATE_MAX_ARTISTS = 15
MARKDOWN_MATRIX_MAX_ARTISTS = 20
# Beyond this many artists tick labels would overlap into a grey smear.
LABEL_MAX_ARTISTS = 60

Log = Callable[[str], None]


# --- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    kind: Literal["chunked", "artist-model"]
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS

    @classmethod
    def parse(cls, text: str) -> Comparison:
        cleaned = text.strip().lower()
        if cleaned == "artist-model":
            return cls("artist-model")
        head, sep, tail = cleaned.partition(":")
        if head == "chunked":
            if not sep:
                return cls("chunked")
            try:
                seconds = float(tail)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds <= 0:
                raise InvalidRequest(f"--compare {text}: the chunk length must be seconds > 0")
            return cls("chunked", seconds)
        raise InvalidRequest(f"--compare {text!r}: use 'chunked', 'chunked:S' or 'artist-model'")


def parse_layers(text: str, total_layers: int) -> list[int]:
    """'11', 'all' or '0,3,11' -> sorted distinct layers within 0..total_layers."""
    cleaned = text.strip().lower()
    if cleaned == "all":
        return list(range(total_layers + 1))
    layers: set[int] = set()
    for part in cleaned.split(","):
        part = part.strip()
        if not part.isdigit():
            raise InvalidRequest(f"--layers {text!r}: use 'all', one layer or a list like 0,3,11")
        layer = int(part)
        if layer > total_layers:
            raise InvalidRequest(
                f"--layers {text!r}: layer {layer} does not exist; the model has 0..{total_layers}"
            )
        layers.add(layer)
    return sorted(layers)


# --- the tracks -----------------------------------------------------------------------------


@dataclass
class EvalTrack:
    artist: str
    artist_key: str
    path: str | None
    vector: np.ndarray | None = None


def _stable_seed(seed: int, key: str) -> list[int]:
    return [seed, int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big")]


def sample_tracks(tracks: list[EvalTrack], sample: int | None, seed: int) -> list[EvalTrack]:
    """Up to `sample` tracks per artist, the same ones on every run (per-artist seeds, so adding
    an artist does not change the others' picks). Artists keep their order, tracks their path
    order."""
    if sample is not None and sample < 1:
        raise InvalidRequest(f"--sample must be >= 1, got {sample}")
    by_artist: dict[str, list[EvalTrack]] = defaultdict(list)
    for track in tracks:
        by_artist[track.artist_key].append(track)
    chosen: list[EvalTrack] = []
    for key, group in by_artist.items():
        group = sorted(group, key=lambda t: t.path or "")
        if sample is not None and len(group) > sample:
            rng = np.random.default_rng(_stable_seed(seed, key))
            picks = sorted(rng.choice(len(group), size=sample, replace=False).tolist())
            group = [group[i] for i in picks]
        chosen.extend(group)
    return chosen


def _tracks_from_store(store: Store, *, with_vectors: bool) -> list[EvalTrack]:
    tracks: list[EvalTrack] = []
    offset = 0
    while True:
        artists, total = store.list_artists(limit=ARTIST_PAGE, offset=offset)
        for artist in artists:
            for track in store.tracks_of_artist(artist.artist_key, with_vectors=with_vectors):
                vector = None
                if with_vectors and track.vector is not None:
                    vector = np.asarray(track.vector, dtype=np.float64)
                tracks.append(EvalTrack(artist.name, artist.artist_key, track.path, vector))
        offset += len(artists)
        if not artists or offset >= total:
            return tracks


def _tracks_from_source(
    source: Path, artist_from: Literal["folders", "tags"]
) -> tuple[list[EvalTrack], list[dict[str, str]]]:
    discovery = discover(source, artist_from=artist_from)
    problems = [{"path": path, "reason": reason} for path, reason in discovery.problems]
    display: dict[str, str] = {}
    tracks: list[EvalTrack] = []
    for entry in discovery.entries:
        try:
            key = artist_key(entry.artist or "")
        except ValueError:
            problems.append({"path": str(entry.path), "reason": "empty artist name"})
            continue
        # One display name per key: "ABBA" and "abba" are one artist.
        name = display.setdefault(key, entry.artist or key)
        tracks.append(EvalTrack(name, key, str(entry.path)))
    tracks.sort(key=lambda t: (t.artist_key, t.path or ""))
    return tracks, problems


# --- embedding every hidden state -----------------------------------------------------------


def model_layer_count(model: str, revision: str | None) -> int:
    """Transformer layers of a checkpoint (12 for MERT-v1-95M), read from its config.json."""
    local = Path(model).expanduser()
    if local.is_dir():
        config_path = local / "config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            config_path = Path(
                hf_hub_download(model, "config.json", revision=revision, local_files_only=offline)
            )
        except Exception as exc:  # the hub client raises many types; all mean "not available"
            raise ModelUnavailable(f"model {model!r}: cannot read its config.json: {exc}") from exc
    try:
        return int(json.loads(config_path.read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"{config_path}: no readable num_hidden_layers: {exc}") from exc


class HiddenStateEmbedder(MertEmbedder):
    """Mean-pooled vectors of several hidden states from one forward pass per window.

    The ingest embedder's preprocessing and batching (equal-length windows, nothing padded),
    keeping every requested hidden state instead of the last one.
    """

    def __init__(self, loaded: LoadedMert, layers: Sequence[int], *, batch_size: int = 4) -> None:
        if max(layers) > loaded.layer:
            raise ValueError(f"layers {list(layers)} exceed the loaded model's {loaded.layer}")
        super().__init__(loaded, batch_size=max(1, batch_size))
        self.layers = list(layers)

    def embed_layers(self, windows: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
        """{layer: (n, dim) float64 mean-pooled vectors}, in input order, not normalised."""
        result = {layer: np.empty((len(windows), self.dim)) for layer in self.layers}
        for positions, output in self.forward_batches(windows, output_hidden_states=True):
            for layer in self.layers:
                pooled = output.hidden_states[layer].float().mean(dim=1).cpu().numpy()
                result[layer][positions] = pooled
        return result


def _excerpt_policy(text: str) -> ExcerptPolicy:
    try:
        return ExcerptPolicy.parse(text)
    except ValueError as exc:
        raise InvalidRequest(f"excerpt: {exc}") from None


def chunk_window(window: np.ndarray, chunk_samples: int) -> list[np.ndarray]:
    """Equal chunks of `chunk_samples` from the start; a remainder becomes one more chunk that
    ends with the window (overlapping the one before), so every sample is seen and every chunk
    has the same length. A window no longer than a chunk is one chunk."""
    total = len(window)
    if total <= chunk_samples:
        return [window]
    starts = list(range(0, total - chunk_samples + 1, chunk_samples))
    if starts[-1] + chunk_samples < total:
        starts.append(total - chunk_samples)
    return [window[s : s + chunk_samples] for s in starts]


def _mean_unit(vectors: np.ndarray) -> np.ndarray:
    # As the ingest embedder does for a track's windows: average, then normalise.
    mean = vectors.mean(axis=0)
    return mean / np.linalg.norm(mean)


@dataclass
class Embedded:
    """Re-embedded tracks: per layer, one row per kept track (full window; chunked if asked)."""

    tracks: list[EvalTrack]
    full: dict[int, np.ndarray]
    chunked: dict[int, np.ndarray] | None
    chunks_per_track: float | None
    skipped: list[dict[str, str]]
    seconds: float


def embed_tracks(
    tracks: list[EvalTrack],
    embedder: HiddenStateEmbedder,
    spec: EmbeddingSpec,
    *,
    chunk_seconds: float | None,
    min_duration_seconds: float = 3.0,
    silence_rms: float = 1e-3,
    log: Log | None = None,
) -> Embedded:
    """Decode each track's excerpt as the spec says and embed it: every requested layer, the
    full window in one pass, and (with `chunk_seconds`) chunk by chunk, averaged."""
    started = time.monotonic()
    policy = _excerpt_policy(spec.excerpt)
    chunk_samples = None
    if chunk_seconds is not None:
        chunk_samples = round(chunk_seconds * spec.sample_rate)
        if chunk_samples < MIN_WINDOW_SAMPLES:
            raise InvalidRequest(
                f"--compare chunked:{chunk_seconds:g}: chunks must be at least "
                f"{MIN_WINDOW_SAMPLES / spec.sample_rate:.3f} s for the model to see a frame"
            )
    kept: list[EvalTrack] = []
    skipped: list[dict[str, str]] = []
    full_rows: dict[int, list[np.ndarray]] = {layer: [] for layer in embedder.layers}
    chunk_rows: dict[int, list[np.ndarray]] = {layer: [] for layer in embedder.layers}
    chunk_counts: list[int] = []
    # Decoded tracks wait here until there are enough windows to fill a few batches: windows
    # of several tracks share forward passes, and memory holds only a group at a time.
    pending: list[tuple[EvalTrack, list[np.ndarray]]] = []
    group_windows = embedder.batch_size * WINDOW_GROUP_BATCHES

    def embed_per_track(
        per_track: list[list[np.ndarray]], rows: dict[int, list[np.ndarray]]
    ) -> None:
        vectors = embedder.embed_layers([w for windows in per_track for w in windows])
        start = 0
        for windows in per_track:
            for layer in embedder.layers:
                rows[layer].append(_mean_unit(vectors[layer][start : start + len(windows)]))
            start += len(windows)

    def flush() -> None:
        if not pending:
            return
        embed_per_track([windows for _, windows in pending], full_rows)
        if chunk_samples is not None:
            chunked = [
                [c for w in windows for c in chunk_window(w, chunk_samples)]
                for _, windows in pending
            ]
            chunk_counts.extend(len(chunks) for chunks in chunked)
            embed_per_track(chunked, chunk_rows)
        kept.extend(track for track, _ in pending)
        pending.clear()
        if log:
            log(f"embedded {len(kept)} of {len(tracks)} tracks")

    for track in tracks:
        if not track.path:
            skipped.append({"path": "", "artist": track.artist, "reason": "no path stored"})
            continue
        try:
            decoded = decode_excerpt(
                track.path,
                policy=policy,
                sample_rate=spec.sample_rate,
                window_seconds=spec.window_seconds,
                min_duration_seconds=min_duration_seconds,
                silence_rms=silence_rms,
            )
        except AudioError as error:
            skipped.append({"path": track.path, "artist": track.artist, "reason": error.detail})
            continue
        windows = [w for w in decoded.windows if len(w) >= MIN_WINDOW_SAMPLES]
        if not windows:
            skipped.append({"path": track.path, "artist": track.artist, "reason": "too short"})
            continue
        pending.append((track, windows))
        if sum(len(w) for _, w in pending) >= group_windows:
            flush()
    flush()
    dim = embedder.loaded.hidden_size

    def stacked(rows: dict[int, list[np.ndarray]]) -> dict[int, np.ndarray]:
        return {
            layer: np.array(vectors) if vectors else np.empty((0, dim))
            for layer, vectors in rows.items()
        }

    return Embedded(
        tracks=kept,
        full=stacked(full_rows),
        chunked=stacked(chunk_rows) if chunk_samples is not None else None,
        chunks_per_track=float(np.mean(chunk_counts)) if chunk_counts else None,
        skipped=skipped,
        seconds=time.monotonic() - started,
    )


# --- an external similar-artists list -------------------------------------------------------


def load_reference(path: Path) -> dict[str, list[str]]:
    """A similar-artists list: CSV (artist, similar_artist[, rank]) or JSON (a list of such
    objects, or {artist: [similar, ...]}). Returns artist -> similar artists, best first."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidRequest(f"--reference {path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"--reference {path}: not UTF-8 text") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"--reference {path}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            result: dict[str, list[str]] = {}
            for artist, similar in data.items():
                if not isinstance(similar, list) or not all(isinstance(s, str) for s in similar):
                    raise InvalidRequest(
                        f"--reference {path}: the value for {artist!r} must be a list of names"
                    )
                result[str(artist)] = list(similar)
            return result
        if isinstance(data, list):
            return _ranked_rows(path, data)
        raise InvalidRequest(f"--reference {path}: expected a JSON object or a list of objects")
    rows = list(csv.DictReader(text.splitlines()))
    return _ranked_rows(path, rows)


def _ranked_rows(path: Path, rows: list[Any]) -> dict[str, list[str]]:
    ranked: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise InvalidRequest(f"--reference {path}: row {number} is not an object")
        fields = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        artist = str(fields.get("artist") or "").strip()
        similar = str(fields.get("similar_artist") or "").strip()
        if not artist or not similar:
            raise InvalidRequest(
                f"--reference {path}: row {number} needs both 'artist' and 'similar_artist'"
            )
        rank_value = fields.get("rank")
        rank = math.inf
        if rank_value not in (None, ""):
            try:
                rank = float(rank_value)
            except (TypeError, ValueError):
                raise InvalidRequest(
                    f"--reference {path}: row {number}: rank {rank_value!r} is not a number"
                ) from None
        ranked[artist].append((rank, number, similar))
    return {artist: [name for *_, name in sorted(items)] for artist, items in ranked.items()}


# --- the run --------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What `run_evaluation` produced: the figures, the text it printed, the files written."""

    report: dict[str, Any]
    summary_text: str
    files: list[Path] = field(default_factory=list)


def _labels(tracks: Sequence[EvalTrack]) -> list[str]:
    return [t.artist for t in tracks]


def _require_two_artists(tracks: Sequence[EvalTrack]) -> None:
    artists = {t.artist_key for t in tracks}
    if len(artists) < 2:
        raise InvalidRequest(
            f"evaluation needs at least two artists with usable tracks; found {len(artists)} "
            f"({len(tracks)} tracks)"
        )


def _resolve_spec(
    store: Store | None, *, model: str | None, revision: str | None
) -> tuple[EmbeddingSpec | None, str, str | None]:
    """(the stored spec or None, the model to load, its revision). The stored spec's model wins
    unless one is given: re-embedded vectors must come from the model that made the catalogue."""
    stored = store.spec() if store is not None else None
    if stored is not None and model is None:
        return stored, stored.model, stored.revision
    return stored, model or DEFAULT_MODEL, revision


def run_evaluation(
    store: Store | None,
    out_dir: Path,
    *,
    source: Path | None = None,
    layers: str | None = None,
    sample: int | None = None,
    compare: str | None = None,
    reference: Path | None = None,
    centre_vectors: bool = False,
    k: int = DEFAULT_K,
    seed: int = 0,
    model: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    batch_size: int = 4,
    layer: int = DEFAULT_LAYER,
    excerpt: str = "centre",
    window_seconds: float = 30.0,
    min_duration_seconds: float = 3.0,
    silence_rms: float = 1e-3,
    artist_from: Literal["folders", "tags"] = "folders",
    log: Log | None = None,
) -> EvalResult:
    """Evaluate the catalogue and write report.md, report.json, heatmap.png, map.png (and
    layers.png for a sweep) into `out_dir`.

    Stored vectors are used as they are unless `layers`, `compare="chunked[:S]"` or `source`
    asks for embedding; then audio is re-decoded with the stored spec's excerpt and window
    (`layer`/`excerpt`/`window_seconds` only apply when the store holds no spec).
    """
    started = time.monotonic()
    if k < 1:
        raise InvalidRequest(f"k must be >= 1, got {k}")
    comparison = Comparison.parse(compare) if compare else None
    reference_lists = load_reference(reference) if reference is not None else None
    stored_spec, model_name, model_revision = _resolve_spec(store, model=model, revision=revision)
    must_embed = (
        layers is not None
        or source is not None
        or (comparison is not None and comparison.kind == "chunked")
    )
    if source is None and (store is None or stored_spec is None):
        raise InvalidRequest(
            "the store is empty: ingest a catalogue first, or give a folder or manifest to evaluate"
        )

    problems: list[dict[str, str]] = []
    if source is not None:
        all_tracks, problems = _tracks_from_source(source, artist_from)
    else:
        assert store is not None
        all_tracks = _tracks_from_store(store, with_vectors=not must_embed)
    tracks = sample_tracks(all_tracks, sample, seed)
    _require_two_artists(tracks)

    full: dict[int, np.ndarray]
    chunked: dict[int, np.ndarray] | None = None
    chunks_per_track: float | None = None
    embed_seconds: float | None = None
    if must_embed:
        total_layers = model_layer_count(model_name, model_revision)
        default_layer = stored_spec.layer if stored_spec else layer
        wanted = parse_layers(layers if layers is not None else str(default_layer), total_layers)
        loaded = load_mert(model_name, revision=model_revision, layer=max(wanted), device=device)
        spec = stored_spec or EmbeddingSpec(
            model=loaded.model_id,
            revision=loaded.revision,
            layer=default_layer,
            window_seconds=window_seconds,
            excerpt=str(_excerpt_policy(excerpt)),
            pooling="mean",
            sample_rate=loaded.sample_rate,
            dim=loaded.hidden_size,
        )
        if loaded.sample_rate != spec.sample_rate:
            raise InvalidRequest(
                f"model {model_name!r} runs at {loaded.sample_rate} Hz but the stored vectors were "
                f"made at {spec.sample_rate} Hz; evaluate with the model that made them"
            )
        if log:
            log(
                f"embedding {len(tracks)} tracks at layers {_layer_list(wanted)} "
                f"({spec.excerpt}, {spec.window_seconds:g} s window)"
            )
        embedded = embed_tracks(
            tracks,
            HiddenStateEmbedder(loaded, wanted, batch_size=batch_size),
            spec,
            chunk_seconds=(
                comparison.chunk_seconds if comparison and comparison.kind == "chunked" else None
            ),
            min_duration_seconds=min_duration_seconds,
            silence_rms=silence_rms,
            log=log,
        )
        tracks, full, chunked = embedded.tracks, embedded.full, embedded.chunked
        chunks_per_track, embed_seconds = embedded.chunks_per_track, embedded.seconds
        problems += embedded.skipped
        _require_two_artists(tracks)
    else:
        assert stored_spec is not None
        spec = stored_spec
        missing = [t for t in tracks if t.vector is None]
        problems += [
            {"path": t.path or "", "artist": t.artist, "reason": "no stored vector"}
            for t in missing
        ]
        tracks = [t for t in tracks if t.vector is not None]
        _require_two_artists(tracks)
        full = {spec.layer: np.array([t.vector for t in tracks])}

    labels = _labels(tracks)
    per_layer = {lyr: evaluate_vectors(vectors, labels, k=k) for lyr, vectors in full.items()}
    best = best_layer(per_layer)
    if len(per_layer) == 1:
        primary = next(iter(per_layer))
    else:
        primary = spec.layer if spec.layer in per_layer else best
    centred = (
        {lyr: evaluate_vectors(centre(v), labels, k=k) for lyr, v in full.items()}
        if centre_vectors
        else None
    )

    report = _report_dict(
        spec=spec,
        source=source,
        model_name=model_name,
        embedded=must_embed,
        sample=sample,
        seed=seed,
        k=k,
        tracks=tracks,
        problems=problems,
        per_layer=per_layer,
        primary=primary,
        best=best,
        centred=centred,
    )
    if embed_seconds is not None:
        report["embedding_seconds"] = round(embed_seconds, 3)
    if comparison is not None and comparison.kind == "chunked":
        assert chunked is not None
        report["compare"] = _chunked_comparison(
            per_layer, chunked, labels, primary, k, comparison.chunk_seconds, chunks_per_track
        )
    elif comparison is not None:
        report["compare"] = _artist_model_comparison(
            full[primary], labels, per_layer[primary], k, seed
        )
    if reference_lists is not None:
        report["reference"] = _reference_section(
            reference, reference_lists, per_layer[primary], centred[primary] if centred else None, k
        )

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequest(f"--out {out_dir}: cannot create it: {exc.strerror or exc}") from exc
    files = [
        _plot_heatmap(out_dir / "heatmap.png", per_layer[primary], primary),
        _plot_map(out_dir / "map.png", full[primary], labels, per_layer[primary], primary),
    ]
    if len(per_layer) > 1:
        files.append(_plot_layers(out_dir / "layers.png", per_layer, best, centred))
    report["seconds"] = round(time.monotonic() - started, 3)
    report["files"] = [p.name for p in files] + ["report.md", "report.json"]
    markdown = _markdown(report, per_layer, centred)
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    files += [out_dir / "report.md", out_dir / "report.json"]
    return EvalResult(report=report, summary_text=_summary_text(report, out_dir), files=files)


def _layer_list(layers: Sequence[int]) -> str:
    if len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(str(x) for x in layers)


# --- report sections ------------------------------------------------------------------------


def _report_dict(
    *,
    spec: EmbeddingSpec,
    source: Path | None,
    model_name: str,
    embedded: bool,
    sample: int | None,
    seed: int,
    k: int,
    tracks: Sequence[EvalTrack],
    problems: list[dict[str, str]],
    per_layer: dict[int, VectorEvaluation],
    primary: int,
    best: int,
    centred: dict[int, VectorEvaluation] | None,
) -> dict[str, Any]:
    main = per_layer[primary]
    report: dict[str, Any] = {
        "source": str(source) if source is not None else "store",
        "vectors": "re-embedded from audio" if embedded else "stored",
        "model": model_name,
        "spec": spec.to_dict(),
        "sample_per_artist": sample,
        "seed": seed,
        "k": k,
        "artists": len(main.artists),
        "tracks": len(tracks),
        "single_track_artists": sum(1 for c in main.track_counts if c < 2),
        "skipped": problems,
        "layer": primary,
        "best_layer": best,
        "span": round(main.summary.span, 6),
        "metrics": main.to_dict(with_matrix=True),
        "layers": {str(lyr): ev.to_dict() for lyr, ev in sorted(per_layer.items())},
        "track_counts": dict(zip(main.artists, main.track_counts, strict=True)),
    }
    if centred is not None:
        before, after = per_layer[primary], centred[primary]
        report["centred"] = {
            "layer": primary,
            "metrics": after.to_dict(with_matrix=True),
            "layers": {str(lyr): ev.to_dict() for lyr, ev in sorted(centred.items())},
            "verdict": _centring_verdict(before, after),
        }
    return report


def _centring_verdict(before: VectorEvaluation, after: VectorEvaluation) -> str:
    """Did subtracting the catalogue mean help tell artists apart? Spans always widen once the
    shared direction is gone, so the verdict rests on identification and retrieval."""

    def score(ev: VectorEvaluation) -> tuple[float, float]:
        return (ev.identification.accuracy or 0.0, ev.retrieval.mean_average_precision or 0.0)

    (acc_b, map_b), (acc_a, map_a) = score(before), score(after)
    figures = (
        f"LOO accuracy {acc_b:.3f} -> {acc_a:.3f}, MAP {map_b:.3f} -> {map_a:.3f}, "
        f"span {before.summary.span:.3f} -> {after.summary.span:.3f}"
    )
    if acc_a > acc_b + 1e-9 or (abs(acc_a - acc_b) <= 1e-9 and map_a > map_b + 1e-9):
        return f"helped: {figures}"
    if acc_a < acc_b - 1e-9 or (abs(acc_a - acc_b) <= 1e-9 and map_a < map_b - 1e-9):
        return f"hurt: {figures}"
    return f"made no difference to identification or retrieval: {figures}"


def _chunked_comparison(
    per_layer: dict[int, VectorEvaluation],
    chunked: dict[int, np.ndarray],
    labels: list[str],
    primary: int,
    k: int,
    chunk_seconds: float,
    chunks_per_track: float | None,
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for lyr, full_eval in sorted(per_layer.items()):
        chunk_eval = evaluate_vectors(chunked[lyr], labels, k=k)
        change = relative_change(full_eval.summary.span, chunk_eval.summary.span)
        rows[str(lyr)] = {
            "full_span": round(full_eval.summary.span, 6),
            "chunked_span": round(chunk_eval.summary.span, 6),
            "span_change_full_vs_chunked": None if change is None else round(change, 6),
            "full_loo_accuracy": full_eval.to_dict()["loo_accuracy"],
            "chunked_loo_accuracy": chunk_eval.to_dict()["loo_accuracy"],
            "full_map": full_eval.to_dict()["map"],
            "chunked_map": chunk_eval.to_dict()["map"],
            "chunked": chunk_eval.to_dict(),
        }
    headline = rows[str(primary)]
    return {
        "kind": "chunked",
        "chunk_seconds": chunk_seconds,
        "chunks_per_track": None if chunks_per_track is None else round(chunks_per_track, 3),
        "layer": primary,
        "full_span": headline["full_span"],
        "chunked_span": headline["chunked_span"],
        "span_change_full_vs_chunked": headline["span_change_full_vs_chunked"],
        "full_loo_accuracy": headline["full_loo_accuracy"],
        "chunked_loo_accuracy": headline["chunked_loo_accuracy"],
        "layers": rows,
        "note": (
            "span change = (full - chunked) / chunked; the reference experiment measured +72% "
            "(0.280 full 30 s vs 0.163 for three 10 s chunks averaged)"
        ),
    }


def _artist_model_comparison(
    vectors: np.ndarray, labels: list[str], single: VectorEvaluation, k: int, seed: int
) -> dict[str, Any]:
    one = leave_one_out_identification(vectors, labels, k=k)
    several = leave_one_out_multi_centroid(
        vectors, labels, max_clusters=MAX_ARTIST_CLUSTERS, k=k, seed=seed
    )
    order, models = artist_models(vectors, labels, max_clusters=MAX_ARTIST_CLUSTERS, seed=seed)
    matrices = {
        "best-pair": summarise_matrix(model_similarity(models, "best-pair"), order),
        "mean-best": summarise_matrix(model_similarity(models, "mean-best"), order),
    }

    def identification(ident: Any) -> dict[str, Any]:
        data = asdict(ident)
        return {name: (round(v, 6) if isinstance(v, float) else v) for name, v in data.items()}

    return {
        "kind": "artist-model",
        "max_centroids_per_artist": MAX_ARTIST_CLUSTERS,
        "centroids_per_artist": {
            name: int(m.shape[0]) for name, m in zip(order, models, strict=True)
        },
        "single": {
            "loo": identification(one),
            "span": round(single.summary.span, 6),
            "mean": round(single.summary.mean, 6),
        },
        "multi": {
            "loo": identification(several),
            "best-pair": {
                "span": round(matrices["best-pair"].span, 6),
                "mean": round(matrices["best-pair"].mean, 6),
            },
            "mean-best": {
                "span": round(matrices["mean-best"].span, 6),
                "mean": round(matrices["mean-best"].mean, 6),
            },
        },
        "note": (
            "k-means (cosine) on each artist's tracks, up to 3 centroids and at least two tracks "
            "per centroid; a track scores against an artist by its closest centroid, and its own "
            "artist is re-clustered without it. hit@k is whether the true artist is among the k "
            "best-scoring artists (k <= artists - 1), the artist-level precision@k of a query "
            "with one right answer. Track-to-track precision@k does not depend on the artist "
            "model and is in `metrics`."
        ),
    }


def _reference_section(
    path: Path | None,
    reference_lists: dict[str, list[str]],
    evaluation: VectorEvaluation,
    centred: VectorEvaluation | None,
    k: int,
) -> dict[str, Any]:
    # Keys back to names people recognise: ours as displayed, the reference's as it wrote them.
    display: dict[str, str] = {}
    for artist, similar in reference_lists.items():
        for name in (artist, *similar):
            with contextlib.suppress(ValueError):
                display.setdefault(artist_key(name), name)
    display.update({artist_key(name): name for name in evaluation.artists})

    def section(ev: VectorEvaluation) -> dict[str, Any]:
        ours = neighbours_from_matrix(ev.matrix, ev.artists)
        result = overlap_at_k(ours, reference_lists, k=k, catalogue=ev.artists)
        for row in result.per_artist:
            for names in (row.ours, row.reference, row.shared):
                names[:] = [display.get(key, key) for key in names]
        data = asdict(result)
        for name in ("overlap_at_k", "overlap_at_k_in_catalogue"):
            if data[name] is not None:
                data[name] = round(data[name], 6)
        return data

    result = {"file": str(path), **section(evaluation)}
    if centred is not None:
        result["centred"] = section(centred)
    return result


# --- pictures -------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    # A bare Figure with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _display_order(evaluation: VectorEvaluation) -> list[int]:
    """Artists ordered along the first principal axis of their centroids, so that similar
    artists sit next to each other in the heatmap."""
    matrix = evaluation.matrix
    if len(matrix) < 3:
        return list(range(len(matrix)))
    (projected,), _ = pca_2d(matrix)
    return [int(i) for i in np.argsort(projected[:, 0], kind="stable")]


def _plot_heatmap(path: Path, evaluation: VectorEvaluation, layer: int) -> Path:
    order = _display_order(evaluation)
    names = [evaluation.artists[i] for i in order]
    values = evaluation.matrix[np.ix_(order, order)].copy()
    n = len(names)
    np.fill_diagonal(values, np.nan)  # the diagonal is 1 by definition; keep it out of the scale
    side = min(16.0, max(5.5, 0.45 * n + 3.0))
    figure = _figure(side + 1.2, side)
    axes = figure.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="#e6e6e6")
    summary = evaluation.summary
    image = axes.imshow(values, cmap=cmap, vmin=summary.minimum, vmax=summary.maximum)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colorbar.set_label("cosine similarity of artist centroids")
    if n <= LABEL_MAX_ARTISTS:
        font = 9 if n <= 20 else 6
        axes.set_xticks(range(n), names, rotation=45, ha="right", fontsize=font)
        axes.set_yticks(range(n), names, fontsize=font)
    else:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel(f"{n} artists (too many to label)")
    if n <= ANNOTATE_MAX_ARTISTS:
        middle = (summary.minimum + summary.maximum) / 2
        # Crowded similarities (a span of a few hundredths) need a third decimal to differ.
        digits = 3 if summary.span < 0.1 else 2
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                axes.text(
                    j,
                    i,
                    f"{values[i, j]:.{digits}f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if values[i, j] > middle else "white",
                )
    axes.set_title(
        f"Artist similarity, layer {layer}\n"
        f"span {summary.span:.3f} ({summary.minimum:.3f} to {summary.maximum:.3f}), "
        f"mean {summary.mean:.3f}",
        fontsize=11,
    )
    figure.savefig(path)
    return path


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 10:
        palette = colormaps["tab10"]
        return [palette(i) for i in range(count)]
    palette = colormaps["tab20"] if count <= 20 else colormaps["turbo"]
    return [palette(i / max(1, count - 1)) if count > 20 else palette(i) for i in range(count)]


def _plot_map(
    path: Path, vectors: np.ndarray, labels: list[str], evaluation: VectorEvaluation, layer: int
) -> Path:
    from matplotlib import patheffects

    from soundalike.search.evaluate import unit_rows

    units = unit_rows(vectors)
    centroids = unit_rows(
        np.array([units[[lab == a for lab in labels]].mean(axis=0) for a in evaluation.artists])
    )
    (track_xy, centroid_xy), shares = pca_2d(units, centroids)
    figure = _figure(9.0, 7.5)
    axes = figure.add_subplot()
    colours = _colours(len(evaluation.artists))
    index = {a: i for i, a in enumerate(evaluation.artists)}
    for (x, y), label in zip(track_xy, labels, strict=True):
        cx, cy = centroid_xy[index[label]]
        axes.plot([x, cx], [y, cy], color=colours[index[label]], alpha=0.25, linewidth=0.8)
    for i, artist in enumerate(evaluation.artists):
        mine = [lab == artist for lab in labels]
        axes.scatter(
            track_xy[mine, 0],
            track_xy[mine, 1],
            s=28,
            color=colours[i],
            alpha=0.75,
            edgecolors="none",
        )
        axes.scatter(
            *centroid_xy[i],
            s=170,
            color=colours[i],
            marker="*",
            edgecolors="black",
            linewidths=0.7,
            zorder=3,
        )
        if len(evaluation.artists) <= LABEL_MAX_ARTISTS:
            axes.annotate(
                artist,
                centroid_xy[i],
                xytext=(7, 5),
                textcoords="offset points",
                fontsize=9 if len(evaluation.artists) <= 15 else 7,
                fontweight="bold",
                color="#222222",
                zorder=4,
                # A white halo keeps names legible where they cross dots and lines.
                path_effects=[patheffects.withStroke(linewidth=3, foreground="white")],
            )
    axes.set_xlabel(f"principal axis 1 ({shares[0]:.0%} of track variance)")
    axes.set_ylabel(f"principal axis 2 ({shares[1]:.0%} of track variance)")
    axes.set_title(
        f"Tracks (dots) and artist centroids (stars), layer {layer}: 2-D PCA of unit vectors",
        fontsize=11,
    )
    axes.grid(True, alpha=0.25)
    figure.savefig(path)
    return path


def _plot_layers(
    path: Path,
    per_layer: dict[int, VectorEvaluation],
    best: int,
    centred: dict[int, VectorEvaluation] | None,
) -> Path:
    layers = sorted(per_layer)
    figure = _figure(9.0, 7.0)
    top, bottom = figure.subplots(2, 1, sharex=True)

    def series(
        source: dict[int, VectorEvaluation], pick: Callable[[VectorEvaluation], Any]
    ) -> list[float]:
        return [
            float("nan") if pick(source[lyr]) is None else float(pick(source[lyr]))
            for lyr in layers
        ]

    k = per_layer[layers[0]].retrieval.k
    top.plot(
        layers,
        series(per_layer, lambda e: e.identification.accuracy),
        "o-",
        linewidth=2.5,
        markersize=7,
        zorder=3,  # on top: it is the figure the best layer is chosen by
        label="LOO artist accuracy",
    )
    top.plot(
        layers,
        series(per_layer, lambda e: e.retrieval.precision_at_k),
        "s-",
        label=f"track precision@{k}",
    )
    top.plot(
        layers,
        series(per_layer, lambda e: e.retrieval.mean_average_precision),
        "^-",
        label="track MAP",
    )
    if centred is not None:
        top.plot(
            layers,
            series(centred, lambda e: e.identification.accuracy),
            "o--",
            color="grey",
            label="LOO accuracy, centred",
        )
    top.set_ylim(-0.03, 1.03)
    top.set_ylabel("score (1 = perfect)")
    top.legend(loc="best", fontsize=8)
    bottom.plot(
        layers,
        series(per_layer, lambda e: e.summary.span),
        "o-",
        color="tab:purple",
        label="span of artist similarities",
    )
    bottom.plot(
        layers,
        series(per_layer, lambda e: e.separation.gap),
        "s-",
        color="tab:red",
        label="within minus between artist similarity",
    )
    bottom.set_ylabel("cosine")
    bottom.set_xlabel("layer (hidden state index; 0 = input to the first transformer layer)")
    bottom.legend(loc="best", fontsize=8)
    for axes in (top, bottom):
        axes.axvline(best, color="tab:green", alpha=0.35, linewidth=6)
        axes.grid(True, alpha=0.25)
    bottom.set_xticks(layers)
    top.set_title(f"Metrics by layer (best: layer {best}, by LOO accuracy then span)", fontsize=11)
    figure.savefig(path)
    return path


# --- text -----------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _layer_rows(layers: dict[str, dict[str, Any]], best: int) -> Iterator[list[str]]:
    for name, m in layers.items():
        mark = " ★" if int(name) == best else ""
        yield [
            f"{name}{mark}",
            _fmt(m["loo_accuracy"]),
            _fmt(m["precision_at_k"]),
            _fmt(m["map"]),
            _fmt(m["span"]),
            _fmt(m["mean"]),
            _fmt(m["std"]),
            _fmt(m["separation_ratio"]),
        ]


LAYER_HEADER = ["layer", "LOO acc", "P@k", "MAP", "span", "mean", "std", "within/between"]


def _table(header: list[str], rows: Sequence[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _plain_table(header: list[str], rows: Sequence[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _headline_rows(m: dict[str, Any]) -> list[list[str]]:
    loo = m["loo"]
    return [
        ["artists / tracks", f"{m['artists']} / {m['tracks']}"],
        ["span of artist similarities (max - min)", _fmt(m["span"])],
        ["range", f"{_fmt(m['minimum'])} to {_fmt(m['maximum'])}"],
        ["mean / std of artist similarities", f"{_fmt(m['mean'])} / {_fmt(m['std'])}"],
        [
            "most similar pair",
            f"{m['most_similar']['artist']} ↔ {m['most_similar']['other']} "
            f"({_fmt(m['most_similar']['score'])})",
        ],
        [
            "least similar pair",
            f"{m['least_similar']['artist']} ↔ {m['least_similar']['other']} "
            f"({_fmt(m['least_similar']['score'])})",
        ],
        [
            "LOO nearest-centroid accuracy",
            f"{_fmt(m['loo_accuracy'])} ({loo['correct']}/{loo['queries']} tracks; "
            f"{loo['excluded_single_track']} single-track excluded)",
        ],
        ["in-sample accuracy (naive, for contrast)", _fmt(m["in_sample_accuracy"])],
        [f"artist hit@{loo['k']} / MRR (LOO)", f"{_fmt(loo['hit_at_k'])} / {_fmt(loo['mrr'])}"],
        [f"track precision@{m['k']}", _fmt(m["precision_at_k"])],
        ["track MAP", _fmt(m["map"])],
        [
            "within / between artist similarity",
            f"{_fmt(m['within_artist_mean'])} / {_fmt(m['between_artist_mean'])} "
            f"(ratio {_fmt(m['separation_ratio'])})",
        ],
    ]


def _markdown(
    report: dict[str, Any],
    per_layer: dict[int, VectorEvaluation],
    centred: dict[int, VectorEvaluation] | None,
) -> str:
    spec = report["spec"]
    m = report["metrics"]
    out: list[str] = ["# soundalike evaluation", ""]
    out.append(
        f"Source: **{report['source']}** ({report['vectors']}). Model `{report['model']}`, "
        f"excerpt `{spec['excerpt']}`, window {spec['window_seconds']:g} s, "
        f"stored layer {spec['layer']}. "
        + (
            f"Sample: {report['sample_per_artist']} tracks per artist (seed {report['seed']}). "
            if report["sample_per_artist"]
            else "All tracks. "
        )
        + f"{report['artists']} artists, {report['tracks']} tracks"
        + (f", {len(report['skipped'])} skipped (listed below)." if report["skipped"] else ".")
    )
    out += ["", f"## Layer {report['layer']}", "", _table(["figure", "value"], _headline_rows(m))]
    out += [
        "",
        "LOO: each track is matched against every artist centroid, its own artist's centroid "
        "recomputed without it. An artist with a single track cannot be left out: its track is "
        f"not a query, but its centroid remains a candidate ({report['single_track_artists']} "
        f"such artist(s) here). Precision@k uses k = min({report['k']}, same-artist tracks).",
        "",
        "![artist similarity heatmap](heatmap.png)",
        "",
        "![2-D map of tracks and centroids](map.png)",
    ]
    if report["artists"] <= MARKDOWN_MATRIX_MAX_ARTISTS:
        names = m["matrix"]["artists"]
        rows = [
            [name] + [_fmt(v) for v in row]
            for name, row in zip(names, m["matrix"]["values"], strict=True)
        ]
        out += ["", "### Artist-by-artist cosine matrix", "", _table(["", *names], rows)]
    if len(per_layer) > 1:
        out += [
            "",
            "## Layers",
            "",
            f"★ = best layer ({report['best_layer']}): highest LOO accuracy, then largest span.",
            "",
            _table(LAYER_HEADER, list(_layer_rows(report["layers"], report["best_layer"]))),
            "",
            "![metrics by layer](layers.png)",
        ]
    if "centred" in report:
        c = report["centred"]
        out += [
            "",
            "## Centred (catalogue mean subtracted before cosine)",
            "",
            f"Centring **{c['verdict']}** (layer {c['layer']}).",
            "",
            _table(["figure", "value"], _headline_rows(c["metrics"])),
        ]
        if len(per_layer) > 1 and centred is not None:
            out += ["", _table(LAYER_HEADER, list(_layer_rows(c["layers"], report["best_layer"])))]
    compare = report.get("compare")
    if compare and compare["kind"] == "chunked":
        change = compare["span_change_full_vs_chunked"]
        out += [
            "",
            f"## Full window vs {compare['chunk_seconds']:g} s chunks",
            "",
            f"The same tracks, each window embedded in one pass vs cut into "
            f"{compare['chunk_seconds']:g} s chunks (about {_fmt(compare['chunks_per_track'], 1)} "
            "per track) embedded separately and averaged. Span change "
            f"(full vs chunked): **{'n/a' if change is None else f'{change:+.0%}'}** "
            "(reference experiment: +72%, 0.280 vs 0.163).",
            "",
            _table(
                [
                    "layer",
                    "full span",
                    "chunked span",
                    "change",
                    "full LOO",
                    "chunked LOO",
                    "full MAP",
                    "chunked MAP",
                ],
                [
                    [
                        name,
                        _fmt(r["full_span"]),
                        _fmt(r["chunked_span"]),
                        "n/a"
                        if r["span_change_full_vs_chunked"] is None
                        else f"{r['span_change_full_vs_chunked']:+.0%}",
                        _fmt(r["full_loo_accuracy"]),
                        _fmt(r["chunked_loo_accuracy"]),
                        _fmt(r["full_map"]),
                        _fmt(r["chunked_map"]),
                    ]
                    for name, r in compare["layers"].items()
                ],
            ),
        ]
    elif compare:
        single, multi = compare["single"], compare["multi"]
        out += [
            "",
            "## One centroid per artist vs several",
            "",
            _table(
                ["model", "LOO accuracy", f"hit@{single['loo']['k']}", "MRR", "span", "mean"],
                [
                    [
                        "one centroid",
                        _fmt(single["loo"]["accuracy"]),
                        _fmt(single["loo"]["hit_at_k"]),
                        _fmt(single["loo"]["mrr"]),
                        _fmt(single["span"]),
                        _fmt(single["mean"]),
                    ],
                    [
                        "up to 3 (best pair)",
                        _fmt(multi["loo"]["accuracy"]),
                        _fmt(multi["loo"]["hit_at_k"]),
                        _fmt(multi["loo"]["mrr"]),
                        _fmt(multi["best-pair"]["span"]),
                        _fmt(multi["best-pair"]["mean"]),
                    ],
                    [
                        "up to 3 (mean best)",
                        "(same)",
                        "(same)",
                        "(same)",
                        _fmt(multi["mean-best"]["span"]),
                        _fmt(multi["mean-best"]["mean"]),
                    ],
                ],
            ),
            "",
            compare["note"],
        ]
    reference = report.get("reference")
    if reference:
        out += [
            "",
            f"## Overlap with {reference['file']}",
            "",
            f"overlap@{reference['k']}: **{_fmt(reference['overlap_at_k'])}** over "
            f"{reference['artists_compared']} artists found in both; limited to reference "
            f"artists we hold: {_fmt(reference['overlap_at_k_in_catalogue'])}. "
            "(The reference experiment found 0% overlap with a collaborative-filtering list: "
            "audio similarity and listening similarity are different things.)",
        ]
        if reference["per_artist"]:
            out += [
                "",
                _table(
                    ["artist", "ours", "reference", "shared", "overlap"],
                    [
                        [
                            r["artist"],
                            ", ".join(r["ours"]),
                            ", ".join(r["reference"]),
                            ", ".join(r["shared"]) or "-",
                            _fmt(r["overlap"]),
                        ]
                        for r in reference["per_artist"]
                    ],
                ),
            ]
        if "centred" in reference:
            out.append(
                f"\nCentred: overlap@{reference['k']} {_fmt(reference['centred']['overlap_at_k'])}."
            )
    if report["skipped"]:
        out += ["", "## Skipped", ""]
        out += [f"- `{p['path']}`: {p['reason']}" for p in report["skipped"]]
    out.append("")
    return "\n".join(out)


def _summary_text(report: dict[str, Any], out_dir: Path) -> str:
    m = report["metrics"]
    lines = [
        f"{report['artists']} artists, {report['tracks']} tracks "
        f"({report['vectors']}); layer {report['layer']}:",
        f"  span {_fmt(m['span'])} ({_fmt(m['minimum'])}..{_fmt(m['maximum'])}), "
        f"mean {_fmt(m['mean'])}, std {_fmt(m['std'])}",
        f"  LOO accuracy {_fmt(m['loo_accuracy'])}, precision@{m['k']} "
        f"{_fmt(m['precision_at_k'])}, MAP {_fmt(m['map'])}, "
        f"within/between {_fmt(m['separation_ratio'])}",
    ]
    if len(report["layers"]) > 1:
        lines += [
            "",
            _plain_table(LAYER_HEADER, list(_layer_rows(report["layers"], report["best_layer"]))),
        ]
        lines.append(f"best layer: {report['best_layer']} (★)")
    if "centred" in report:
        lines.append(f"centring {report['centred']['verdict']}")
    compare = report.get("compare")
    if compare and compare["kind"] == "chunked":
        change = compare["span_change_full_vs_chunked"]
        lines.append(
            f"full window span {_fmt(compare['full_span'])} vs {compare['chunk_seconds']:g} s "
            f"chunks {_fmt(compare['chunked_span'])} "
            f"({'n/a' if change is None else f'{change:+.0%}'}); LOO accuracy "
            f"{_fmt(compare['full_loo_accuracy'])} vs {_fmt(compare['chunked_loo_accuracy'])}"
        )
    elif compare:
        lines.append(
            f"LOO accuracy: one centroid {_fmt(compare['single']['loo']['accuracy'])}, "
            f"up to 3 centroids {_fmt(compare['multi']['loo']['accuracy'])}"
        )
    if report.get("reference"):
        lines.append(
            f"overlap@{report['reference']['k']} with the reference: "
            f"{_fmt(report['reference']['overlap_at_k'])}"
        )
    if report["skipped"]:
        lines.append(f"{len(report['skipped'])} track(s) skipped (see report.md)")
    lines.append(f"report: {out_dir / 'report.md'}")
    return "\n".join(lines)
