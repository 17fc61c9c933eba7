"""An external similar-artists list: reading it, and how much our nearest artists agree with it.

Names are matched by `artist_key` (case, accents and spacing folded), so "SENORA LUNA" in a
reference is our "Señora Luna".
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.core.artist_names import artist_key
from soundalike.core.errors import InvalidRequest
from soundalike.ingest.evaluation.metrics import DEFAULT_K, VectorEvaluation, round_or_none

# --- reading the list -----------------------------------------------------------------------


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
    if path.suffix.lower() != ".json":
        return _ranked_rows(path, list(csv.DictReader(text.splitlines())))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"--reference {path}: not valid JSON: {exc}") from exc
    if isinstance(data, list):
        return _ranked_rows(path, data)
    if not isinstance(data, dict):
        raise InvalidRequest(f"--reference {path}: expected a JSON object or a list of objects")
    result: dict[str, list[str]] = {}
    for artist, similar in data.items():
        if not isinstance(similar, list) or not all(isinstance(s, str) for s in similar):
            raise InvalidRequest(
                f"--reference {path}: the value for {artist!r} must be a list of names"
            )
        result[str(artist)] = list(similar)
    return result


def _ranked_rows(path: Path, rows: list[Any]) -> dict[str, list[str]]:
    """Rows of artist, similar_artist and an optional rank (rows without one keep file order,
    after the ranked ones)."""
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


# --- comparing ------------------------------------------------------------------------------


def neighbours_from_matrix(matrix: np.ndarray, names: Sequence[str]) -> dict[str, list[str]]:
    """Each artist's other artists, most similar first (ties by name)."""
    values = np.asarray(matrix, dtype=np.float64)
    result: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        others = [j for j in range(len(names)) if j != i]
        others.sort(key=lambda j: (-values[i, j], names[j]))
        result[name] = [names[j] for j in others]
    return result


@dataclass
class ArtistOverlap:
    artist: str
    ours: list[str]
    reference: list[str]
    shared: list[str]
    overlap: float
    reference_in_catalogue: int
    overlap_in_catalogue: float | None


@dataclass
class ReferenceOverlap:
    """overlap@k: shared names among our top k and the reference's top k, over min(k, reference
    length). `in_catalogue` restricts the reference to artists we hold (what we could match)."""

    k: int
    artists_compared: int
    reference_artists: int
    overlap_at_k: float | None
    overlap_at_k_in_catalogue: float | None
    per_artist: list[ArtistOverlap] = field(default_factory=list)


def _safe_key(name: str) -> str | None:
    try:
        return artist_key(name)
    except InvalidRequest:
        return None


def overlap_at_k(
    ours: Mapping[str, Sequence[str]],
    reference: Mapping[str, Sequence[str]],
    *,
    k: int = DEFAULT_K,
    catalogue: Iterable[str] | None = None,
) -> ReferenceOverlap:
    """Compare our neighbour lists with a reference, names matched by `artist_key`.

    `ours` maps each artist to its neighbours best first; `reference` likewise; `catalogue` is
    every artist we hold (default: the keys of `ours`). Names in the result are artist keys.
    """
    if k < 1:
        raise InvalidRequest(f"k must be >= 1, got {k}")
    reference_by_key: dict[str, list[str]] = {}
    for name, similar in reference.items():
        key = _safe_key(name)
        if key is None:
            continue
        ranked = reference_by_key.setdefault(key, [])
        for other in similar:
            other_key = _safe_key(other)
            if other_key and other_key != key and other_key not in ranked:
                ranked.append(other_key)
    names_held = catalogue if catalogue is not None else ours
    held = {key for key in (_safe_key(name) for name in names_held) if key}
    rows: list[ArtistOverlap] = []
    for name, neighbours in ours.items():
        key = _safe_key(name)
        if key is None or not reference_by_key.get(key):
            continue
        reference_top = reference_by_key[key][:k]
        ours_top = [n for n in (_safe_key(x) for x in neighbours) if n][:k]
        shared = [n for n in ours_top if n in reference_top]
        reachable = [n for n in reference_by_key[key] if n in held][:k]
        shared_reachable = [n for n in ours_top if n in reachable]
        rows.append(
            ArtistOverlap(
                artist=name,
                ours=ours_top,
                reference=reference_top,
                shared=shared,
                overlap=len(shared) / min(k, len(reference_top)),
                reference_in_catalogue=len(reachable),
                overlap_in_catalogue=(
                    len(shared_reachable) / min(k, len(reachable)) if reachable else None
                ),
            )
        )
    in_catalogue = [r.overlap_in_catalogue for r in rows if r.overlap_in_catalogue is not None]
    return ReferenceOverlap(
        k=k,
        artists_compared=len(rows),
        reference_artists=len(reference_by_key),
        overlap_at_k=float(np.mean([r.overlap for r in rows])) if rows else None,
        overlap_at_k_in_catalogue=float(np.mean(in_catalogue)) if in_catalogue else None,
        per_artist=rows,
    )


def reference_section(
    path: Path,
    reference_lists: dict[str, list[str]],
    evaluation: VectorEvaluation,
    centred: VectorEvaluation | None,
    k: int,
) -> dict[str, Any]:
    """The report's `reference` section: overlap@k of our artist matrix (and the centred one)."""
    # Keys back to names people recognise: ours as displayed, the reference's as it wrote them.
    display: dict[str, str] = {}
    for artist, similar in reference_lists.items():
        for name in (artist, *similar):
            key = _safe_key(name)
            if key is not None:
                display.setdefault(key, name)
    display.update({artist_key(name): name for name in evaluation.artists})

    def section(ev: VectorEvaluation) -> dict[str, Any]:
        ours = neighbours_from_matrix(ev.matrix, ev.artists)
        result = overlap_at_k(ours, reference_lists, k=k, catalogue=ev.artists)
        for row in result.per_artist:
            for names in (row.ours, row.reference, row.shared):
                names[:] = [display.get(key, key) for key in names]
        data = asdict(result)
        for name in ("overlap_at_k", "overlap_at_k_in_catalogue"):
            data[name] = round_or_none(data[name])
        return data

    result = {"file": str(path), **section(evaluation)}
    if centred is not None:
        result["centred"] = section(centred)
    return result
