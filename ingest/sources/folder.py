"""A folder of audio files: the artist is the first folder level under it, or the files' tags."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.audio import AUDIO_EXTENSIONS
from soundalike.ingest.sources.base import LocalFiles, Problem, SourceTrack, displayable
from soundalike.ingest.sources.tags import parse_year, read_tags

ArtistFrom = Literal["folders", "tags"]


def audio_files(root: Path) -> list[Path]:
    """Audio files under root, sorted, hidden entries skipped, symlinks followed once."""
    found: list[Path] = []
    seen_dirs: set[str] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_dirs:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


class FolderSource(LocalFiles):
    """Every audio file under `root`; hidden files and folders are skipped."""

    def __init__(self, root: Path, *, artist_from: ArtistFrom = "folders") -> None:
        if artist_from not in ("folders", "tags"):
            raise InvalidRequest(f"artist_from must be 'folders' or 'tags', not {artist_from!r}")
        if not root.is_dir():
            raise InvalidRequest(f"{root}: not a folder")
        self.root = root
        self.artist_from = artist_from
        self.description = f"folder {root}"

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        for path in audio_files(self.root):
            yield self._track(path)

    def _track(self, path: Path) -> SourceTrack | Problem:
        reading = read_tags(path)
        tags = reading.tags
        if self.artist_from == "tags":
            artist = tags.get("artist") or tags.get("albumartist")
            if not artist:
                return Problem(displayable(str(path)), reading.error or "no artist tag")
        else:
            parts = path.relative_to(self.root).parts
            if len(parts) < 2:
                return Problem(displayable(str(path)), "not inside an artist folder")
            artist = displayable(parts[0])
        return SourceTrack(
            source_id=str(path),
            location=displayable(str(path)),
            artist=artist,
            title=tags.get("title") or displayable(path.stem),
            album=tags.get("album"),
            genre=tags.get("genre"),
            year=parse_year(tags.get("date") or tags.get("year")),
        )

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        root = os.path.join(os.path.abspath(self.root), "")
        root = displayable(root)
        listed = {displayable(os.path.abspath(path)) for path in audio_files(self.root)}
        return {
            location
            for location in stored_locations
            if os.path.abspath(location).startswith(root)
            and os.path.abspath(location) not in listed
        }
