"""Catalogue sources: what the ingest pipeline reads tracks from (see base.py).

`source_for(target)` picks the source for what a user typed: a folder, a manifest ending in
`.csv` / `.jsonl`, or a Subsonic server (`subsonic+http(s)://USER@HOST:PORT[/base]`). A new kind
of source is a module here and one branch in `source_for`.
"""

from __future__ import annotations

from pathlib import Path

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.sources.base import CatalogueSource, LocalFiles, Problem, SourceTrack
from soundalike.ingest.sources.folder import ArtistFrom, FolderSource
from soundalike.ingest.sources.manifest import ManifestSource
from soundalike.ingest.sources.subsonic import SubsonicSource, is_subsonic_url

__all__ = [
    "ArtistFrom",
    "CatalogueSource",
    "FolderSource",
    "LocalFiles",
    "ManifestSource",
    "Problem",
    "SourceTrack",
    "SubsonicSource",
    "source_for",
]


def source_for(
    target: str | Path,
    *,
    artist_from: ArtistFrom = "folders",
    subsonic_password: str | None = None,
    subsonic_api_key: str | None = None,
) -> CatalogueSource:
    """The source a user means by `target`: a folder, a `.csv` / `.jsonl` manifest, or a
    Subsonic server URL (its artists are the artists; `artist_from` does not apply)."""
    if is_subsonic_url(target):
        assert isinstance(target, str)
        return SubsonicSource(target, password=subsonic_password, api_key=subsonic_api_key)
    path = Path(target)
    if path.is_dir():
        return FolderSource(path, artist_from=artist_from)
    if not path.exists():
        raise InvalidRequest(f"{target}: no such file or folder")
    if path.suffix.lower() in (".csv", ".jsonl"):
        return ManifestSource(path)
    raise InvalidRequest(
        f"{target}: not a catalogue; give a folder, or a manifest ending in .csv or .jsonl"
    )
