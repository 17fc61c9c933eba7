"""`soundalike demo`: a generated catalogue, ingested and queried, so a new user sees it work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.pipeline import IngestOptions, IngestSummary, ingest
from soundalike.ingest.sources import FolderSource
from soundalike.search.queries import ArtistNeighbours, artists_like, similarity_matrix
from soundalike.search.store import Store

DEMO_ARTISTS = 5
DEMO_TRACKS_PER_ARTIST = 3
# Long enough to carry an artist's tempo and timbre, short enough for a laptop CPU: the real
# model embeds one 20 s window in a few seconds there.
DEMO_TRACK_SECONDS = 20.0
DEMO_FORMATS = ("flac", "mp3", "ogg", "wav", "m4a")


@dataclass
class DemoResult:
    catalogue_dir: Path
    summary: IngestSummary
    neighbours: list[ArtistNeighbours]
    artist_names: list[str]
    matrix: list[list[float]]


def run_demo(
    out_dir: Path,
    *,
    store: Store,
    engine: VectorEngine,
    workers: int = 1,
    progress: bool = False,
) -> DemoResult:
    catalogue_dir = out_dir / "catalogue"
    if not catalogue_dir.exists():
        write_catalogue(
            catalogue_dir,
            artists=DEMO_ARTISTS,
            tracks_per_artist=DEMO_TRACKS_PER_ARTIST,
            seconds=DEMO_TRACK_SECONDS,
            formats=DEMO_FORMATS,
        )
    summary = ingest(
        FolderSource(catalogue_dir),
        store=store,
        engine=engine,
        options=IngestOptions(workers=workers),
        progress=progress,
    )
    artists, _ = store.list_artists(limit=DEMO_ARTISTS * 4)
    names = [artist.name for artist in artists]
    neighbours = [artists_like(store, name, limit=len(names) - 1) for name in names]
    _, matrix = similarity_matrix(store, names)
    return DemoResult(catalogue_dir, summary, neighbours, names, matrix)
