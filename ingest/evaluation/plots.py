"""The report's pictures: heatmap.png (the artist matrix), map.png (tracks and centroids in 2-D)
and layers.png (metrics by layer). Drawn on bare Agg figures: no pyplot state, no display."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.ingest.evaluation.metrics import VectorEvaluation, centroids_of, unit_rows

Pick = Callable[[VectorEvaluation], float | None]

# Up to this many artists the heatmap prints each value in its cell.
ANNOTATE_MAX_ARTISTS = 15
# Beyond this many artists tick labels would overlap into a grey smear.
LABEL_MAX_ARTISTS = 60


def pca_2d(fit_on: np.ndarray, *also: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Project `fit_on` (and any `also` arrays) onto the first two principal axes of `fit_on`.

    Returns the projections in the same order and the explained-variance share of each axis.
    """
    data = np.asarray(fit_on, dtype=np.float64)
    mean = data.mean(axis=0)
    _, singular, axes = np.linalg.svd(data - mean, full_matrices=False)
    basis = np.zeros((2, data.shape[1]))
    take = min(2, axes.shape[0])
    basis[:take] = axes[:take]
    # Fix each axis's sign (largest loading positive) so pictures do not flip between runs.
    for row in basis:
        if row.any() and row[np.argmax(np.abs(row))] < 0:
            row *= -1
    variance = singular**2
    total = float(variance.sum())
    shares = [float(v / total) if total > 0 else 0.0 for v in variance[:2]]
    shares += [0.0] * (2 - len(shares))
    projections = [(np.asarray(x, dtype=np.float64) - mean) @ basis.T for x in (data, *also)]
    return projections, shares


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def display_order(evaluation: VectorEvaluation) -> list[int]:
    """Artists ordered along the first principal axis of their rows of the matrix, so that
    similar artists sit next to each other in the heatmap."""
    matrix = evaluation.matrix
    if len(matrix) < 3:
        return list(range(len(matrix)))
    (projected,), _ = pca_2d(matrix)
    return [int(i) for i in np.argsort(projected[:, 0], kind="stable")]


def plot_heatmap(path: Path, evaluation: VectorEvaluation, layer: int) -> Path:
    order = display_order(evaluation)
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
    if count <= 20:
        palette = colormaps["tab20"]
        return [palette(i) for i in range(count)]
    palette = colormaps["turbo"]
    return [palette(i / (count - 1)) for i in range(count)]


def plot_map(path: Path, vectors: np.ndarray, labels: list[str], layer: int) -> Path:
    from matplotlib import patheffects

    units = unit_rows(vectors)
    artists, centroids = centroids_of(units, labels)
    (track_xy, centroid_xy), shares = pca_2d(units, centroids)
    figure = _figure(9.0, 7.5)
    axes = figure.add_subplot()
    colours = _colours(len(artists))
    index = {a: i for i, a in enumerate(artists)}
    for (x, y), label in zip(track_xy, labels, strict=True):
        cx, cy = centroid_xy[index[label]]
        axes.plot([x, cx], [y, cy], color=colours[index[label]], alpha=0.25, linewidth=0.8)
    for i, artist in enumerate(artists):
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
        if len(artists) <= LABEL_MAX_ARTISTS:
            axes.annotate(
                artist,
                centroid_xy[i],
                xytext=(7, 5),
                textcoords="offset points",
                fontsize=9 if len(artists) <= 15 else 7,
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


def plot_layers(
    path: Path,
    per_layer: dict[int, VectorEvaluation],
    best: int,
    centred: dict[int, VectorEvaluation] | None,
) -> Path:
    layers = sorted(per_layer)
    figure = _figure(9.0, 7.0)
    top, bottom = figure.subplots(2, 1, sharex=True)

    def draw(
        axes: Any, source: dict[int, VectorEvaluation], pick: Pick, style: str, **options: Any
    ) -> None:
        values = (pick(source[layer]) for layer in layers)
        series = [float("nan") if value is None else float(value) for value in values]
        axes.plot(layers, series, style, **options)

    def accuracy(e: VectorEvaluation) -> float | None:
        return e.identification.accuracy

    k = per_layer[layers[0]].retrieval.k
    # Thick and on top: it is the figure the best layer is chosen by.
    draw(top, per_layer, accuracy, "o-", label="LOO artist accuracy", linewidth=2.5, zorder=3)
    draw(top, per_layer, lambda e: e.retrieval.precision_at_k, "s-", label=f"track precision@{k}")
    draw(top, per_layer, lambda e: e.retrieval.mean_average_precision, "^-", label="track MAP")
    if centred is not None:
        draw(top, centred, accuracy, "o--", label="LOO accuracy, centred", color="grey")
    span_label = "span of artist similarities"
    draw(bottom, per_layer, lambda e: e.summary.span, "o-", label=span_label, color="tab:purple")
    gap_label = "within minus between artist similarity"
    draw(bottom, per_layer, lambda e: e.separation.gap, "s-", label=gap_label, color="tab:red")
    top.set_ylim(-0.03, 1.03)
    top.set_ylabel("score (1 = perfect)")
    top.legend(loc="best", fontsize=8)
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
