"""The report: report.json's dictionary, report.md's text and the summary printed at the end."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.evaluation.gather import EvalTrack
from soundalike.ingest.evaluation.metrics import VectorEvaluation
from soundalike.ingest.evaluation.options import EvaluationOptions

# Up to this many artists the markdown report prints the full matrix as a table.
MARKDOWN_MATRIX_MAX_ARTISTS = 20
# Differences below this are rounding, not a change a verdict should rest on.
_SAME = 1e-9

LAYER_HEADER = ["layer", "LOO acc", "P@k", "MAP", "span", "mean", "std", "within/between"]


# --- the dictionary -------------------------------------------------------------------------


def centring_verdict(before: VectorEvaluation, after: VectorEvaluation) -> str:
    """Did subtracting the catalogue mean help tell artists apart? Spans always widen once the
    shared direction is gone, so the verdict rests on LOO accuracy, then MAP."""

    def score(ev: VectorEvaluation) -> tuple[float, float]:
        return (ev.identification.accuracy or 0.0, ev.retrieval.mean_average_precision or 0.0)

    (acc_b, map_b), (acc_a, map_a) = score(before), score(after)
    figures = (
        f"LOO accuracy {acc_b:.3f} -> {acc_a:.3f}, MAP {map_b:.3f} -> {map_a:.3f}, "
        f"span {before.summary.span:.3f} -> {after.summary.span:.3f}"
    )
    deciding = (acc_a - acc_b) if abs(acc_a - acc_b) > _SAME else (map_a - map_b)
    if deciding > _SAME:
        return f"helped: {figures}"
    if deciding < -_SAME:
        return f"hurt: {figures}"
    return f"made no difference to identification or retrieval: {figures}"


def _by_layer(evaluations: dict[int, VectorEvaluation]) -> dict[str, dict[str, Any]]:
    return {str(layer): ev.to_dict() for layer, ev in sorted(evaluations.items())}


def report_dict(
    options: EvaluationOptions,
    *,
    spec: EmbeddingSpec,
    model_name: str,
    tracks: Sequence[EvalTrack],
    problems: list[dict[str, str]],
    per_layer: dict[int, VectorEvaluation],
    primary: int,
    best: int,
    centred: dict[int, VectorEvaluation] | None,
) -> dict[str, Any]:
    """Every figure of the run; `primary` is the layer the headline figures are for."""
    main = per_layer[primary]
    report: dict[str, Any] = {
        "source": str(options.source) if options.source is not None else "store",
        "vectors": "re-embedded from audio" if options.must_embed() else "stored",
        "model": model_name,
        "spec": spec.to_dict(),
        "sample_per_artist": options.sample,
        "seed": options.seed,
        "k": options.k,
        "artists": len(main.artists),
        "tracks": len(tracks),
        "single_track_artists": sum(1 for c in main.track_counts if c < 2),
        "skipped": problems,
        "layer": primary,
        "best_layer": best,
        "span": round(main.summary.span, 6),
        "metrics": main.to_dict(with_matrix=True),
        "layers": _by_layer(per_layer),
        "track_counts": dict(zip(main.artists, main.track_counts, strict=True)),
    }
    if centred is not None:
        report["centred"] = {
            "layer": primary,
            "metrics": centred[primary].to_dict(with_matrix=True),
            "layers": _by_layer(centred),
            "verdict": centring_verdict(main, centred[primary]),
        }
    return report


# --- formatting -----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(change: float | None) -> str:
    return "n/a" if change is None else f"{change:+.0%}"


def _table(header: list[str], rows: Sequence[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _plain_table(header: list[str], rows: Sequence[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _layer_rows(layers: dict[str, dict[str, Any]], best: int) -> Iterator[list[str]]:
    for name, m in layers.items():
        mark = " ★" if int(name) == best else ""
        figures = ("loo_accuracy", "precision_at_k", "map", "span", "mean", "std")
        yield [f"{name}{mark}", *(_fmt(m[f]) for f in figures), _fmt(m["separation_ratio"])]


def _pair(pair: dict[str, Any]) -> str:
    return f"{pair['artist']} ↔ {pair['other']} ({_fmt(pair['score'])})"


def _headline_rows(m: dict[str, Any]) -> list[list[str]]:
    loo = m["loo"]
    return [
        ["artists / tracks", f"{m['artists']} / {m['tracks']}"],
        ["span of artist similarities (max - min)", _fmt(m["span"])],
        ["range", f"{_fmt(m['minimum'])} to {_fmt(m['maximum'])}"],
        ["mean / std of artist similarities", f"{_fmt(m['mean'])} / {_fmt(m['std'])}"],
        ["most similar pair", _pair(m["most_similar"])],
        ["least similar pair", _pair(m["least_similar"])],
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


# --- report.md ------------------------------------------------------------------------------


def _overview(report: dict[str, Any]) -> list[str]:
    spec = report["spec"]
    sample = (
        f"Sample: {report['sample_per_artist']} tracks per artist (seed {report['seed']}). "
        if report["sample_per_artist"]
        else "All tracks. "
    )
    skipped = f", {len(report['skipped'])} skipped (listed below)." if report["skipped"] else "."
    return [
        "# soundalike evaluation",
        "",
        f"Source: **{report['source']}** ({report['vectors']}). Model `{report['model']}`, "
        f"excerpt `{spec['excerpt']}`, window {spec['window_seconds']:g} s, "
        f"stored layer {spec['layer']}. {sample}"
        f"{report['artists']} artists, {report['tracks']} tracks{skipped}",
    ]


def _headline_section(report: dict[str, Any]) -> list[str]:
    m = report["metrics"]
    out = ["", f"## Layer {report['layer']}", "", _table(["figure", "value"], _headline_rows(m))]
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
            [name, *(_fmt(v) for v in row)]
            for name, row in zip(names, m["matrix"]["values"], strict=True)
        ]
        out += ["", "### Artist-by-artist cosine matrix", "", _table(["", *names], rows)]
    return out


def _layer_table(layers: dict[str, dict[str, Any]], best: int) -> str:
    return _table(LAYER_HEADER, list(_layer_rows(layers, best)))


def _layers_section(report: dict[str, Any]) -> list[str]:
    if len(report["layers"]) < 2:
        return []
    best = report["best_layer"]
    return [
        "",
        "## Layers",
        "",
        f"★ = best layer ({best}): highest LOO accuracy, then largest span.",
        "",
        _layer_table(report["layers"], best),
        "",
        "![metrics by layer](layers.png)",
    ]


def _centred_section(report: dict[str, Any]) -> list[str]:
    if "centred" not in report:
        return []
    c = report["centred"]
    out = [
        "",
        "## Centred (catalogue mean subtracted before cosine)",
        "",
        f"Centring **{c['verdict']}** (layer {c['layer']}).",
        "",
        _table(["figure", "value"], _headline_rows(c["metrics"])),
    ]
    if len(c["layers"]) > 1:
        out += ["", _layer_table(c["layers"], report["best_layer"])]
    return out


def _chunked_section(compare: dict[str, Any]) -> list[str]:
    seconds = compare["chunk_seconds"]
    header = ["layer", "full span", "chunked span", "change"]
    header += ["full LOO", "chunked LOO", "full MAP", "chunked MAP"]
    rows = [
        [
            name,
            _fmt(r["full_span"]),
            _fmt(r["chunked_span"]),
            _percent(r["span_change_full_vs_chunked"]),
            *(_fmt(r[f]) for f in ("full_loo_accuracy", "chunked_loo_accuracy")),
            *(_fmt(r[f]) for f in ("full_map", "chunked_map")),
        ]
        for name, r in compare["layers"].items()
    ]
    return [
        "",
        f"## Full window vs {seconds:g} s chunks",
        "",
        f"The same tracks, each window embedded in one pass vs cut into {seconds:g} s chunks "
        f"(about {_fmt(compare['chunks_per_track'], 1)} per track) embedded separately and "
        f"averaged. Span change (full vs chunked): "
        f"**{_percent(compare['span_change_full_vs_chunked'])}** "
        "(reference experiment: +72%, 0.280 vs 0.163).",
        "",
        _table(header, rows),
    ]


def _precision_section(compare: dict[str, Any]) -> list[str]:
    k = compare["k"]
    rows = [
        ["fp32", _fmt(compare["fp32_loo_accuracy"]), _fmt(compare["fp32_map"])],
        ["bf16", _fmt(compare["bf16_loo_accuracy"]), _fmt(compare["bf16_map"])],
    ]
    return [
        "",
        "## fp32 vs bf16",
        "",
        f"The same {compare['tracks']} tracks embedded in fp32 and in bf16 (layer "
        f"{compare['layer']}). L2 between the unit vectors: mean "
        f"**{_fmt(compare['l2_mean'])}**, max **{_fmt(compare['l2_max'])}**; artists' "
        f"{k} nearest artists shared (overlap@{k}): **{_fmt(compare['artist_overlap_at_k'])}**.",
        "",
        _table(["precision", "LOO accuracy", "MAP"], rows),
        "",
        compare["note"],
    ]


def _artist_model_section(compare: dict[str, Any]) -> list[str]:
    single, multi = compare["single"], compare["multi"]

    def loo_cells(loo: dict[str, Any]) -> list[str]:
        return [_fmt(loo["accuracy"]), _fmt(loo["hit_at_k"]), _fmt(loo["mrr"])]

    def shape_cells(figures: dict[str, Any]) -> list[str]:
        return [_fmt(figures["span"]), _fmt(figures["mean"])]

    rows = [
        ["one centroid", *loo_cells(single["loo"]), *shape_cells(single)],
        ["up to 3 (best pair)", *loo_cells(multi["loo"]), *shape_cells(multi["best-pair"])],
        ["up to 3 (mean best)", "(same)", "(same)", "(same)", *shape_cells(multi["mean-best"])],
    ]
    header = ["model", "LOO accuracy", f"hit@{single['loo']['k']}", "MRR", "span", "mean"]
    return [
        "",
        "## One centroid per artist vs several",
        "",
        _table(header, rows),
        "",
        compare["note"],
    ]


def _reference_section(reference: dict[str, Any]) -> list[str]:
    k = reference["k"]
    out = [
        "",
        f"## Overlap with {reference['file']}",
        "",
        f"overlap@{k}: **{_fmt(reference['overlap_at_k'])}** over "
        f"{reference['artists_compared']} artists found in both; limited to reference "
        f"artists we hold: {_fmt(reference['overlap_at_k_in_catalogue'])}. "
        "(The reference experiment found 0% overlap with a collaborative-filtering list: "
        "audio similarity and listening similarity are different things.)",
    ]
    if reference["per_artist"]:
        rows = [
            [
                r["artist"],
                ", ".join(r["ours"]),
                ", ".join(r["reference"]),
                ", ".join(r["shared"]) or "-",
                _fmt(r["overlap"]),
            ]
            for r in reference["per_artist"]
        ]
        out += ["", _table(["artist", "ours", "reference", "shared", "overlap"], rows)]
    if "centred" in reference:
        out.append(f"\nCentred: overlap@{k} {_fmt(reference['centred']['overlap_at_k'])}.")
    return out


def markdown(report: dict[str, Any]) -> str:
    """report.md: the headline layer, the layer sweep, centring, the comparison, the reference
    overlap and the skipped files, each section only when the run produced it."""
    out = _overview(report) + _headline_section(report)
    out += _layers_section(report) + _centred_section(report)
    compare = report.get("compare")
    if compare is not None:
        sections = {"chunked": _chunked_section, "precision": _precision_section}
        out += sections.get(compare["kind"], _artist_model_section)(compare)
    if report.get("reference"):
        out += _reference_section(report["reference"])
    if report["skipped"]:
        out += ["", "## Skipped", ""]
        out += [f"- `{p['path']}`: {p['reason']}" for p in report["skipped"]]
    out.append("")
    return "\n".join(out)


# --- the printed summary --------------------------------------------------------------------


def summary_text(report: dict[str, Any]) -> str:
    """The figures worth reading in a terminal. Where the report was written is the caller's
    line to print: it knows the path it asked for."""
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
        rows = list(_layer_rows(report["layers"], report["best_layer"]))
        lines += ["", _plain_table(LAYER_HEADER, rows), f"best layer: {report['best_layer']} (★)"]
    if "centred" in report:
        lines.append(f"centring {report['centred']['verdict']}")
    compare = report.get("compare")
    if compare and compare["kind"] == "chunked":
        lines.append(
            f"full window span {_fmt(compare['full_span'])} vs {compare['chunk_seconds']:g} s "
            f"chunks {_fmt(compare['chunked_span'])} "
            f"({_percent(compare['span_change_full_vs_chunked'])}); LOO accuracy "
            f"{_fmt(compare['full_loo_accuracy'])} vs {_fmt(compare['chunked_loo_accuracy'])}"
        )
    elif compare and compare["kind"] == "precision":
        lines.append(
            f"fp32 vs bf16: L2 mean {_fmt(compare['l2_mean'])}, max {_fmt(compare['l2_max'])}; "
            f"overlap@{compare['k']} {_fmt(compare['artist_overlap_at_k'])}; LOO accuracy "
            f"{_fmt(compare['fp32_loo_accuracy'])} vs {_fmt(compare['bf16_loo_accuracy'])}"
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
    return "\n".join(lines)
