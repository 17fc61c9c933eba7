"""Catalogue discovery: which files are tracks, and by whom (stage 1 of the ingest).

A source is a folder (artist = the first folder level under it, or the files' tags) or a
manifest `.csv` / `.jsonl` with at least `path` and `artist` columns.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soundalike.ingest.audio import AUDIO_EXTENSIONS
from soundalike.search.errors import InvalidRequest

_KNOWN_COLUMNS = ("path", "artist", "title", "album", "genre", "year")


@dataclass
class CatalogueEntry:
    path: Path
    artist: str | None
    title: str | None = None
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Discovery:
    """The tracks found, and the things that cannot become a track, with the reason."""

    entries: list[CatalogueEntry] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def discover(
    source: str | Path, *, artist_from: Literal["folders", "tags"] = "folders"
) -> Discovery:
    """Find the tracks of a folder or a manifest; see the module docstring."""
    if artist_from not in ("folders", "tags"):
        raise InvalidRequest(f"artist_from must be 'folders' or 'tags', not {artist_from!r}")
    source = Path(source)
    if not source.exists():
        raise InvalidRequest(f"{source}: no such file or folder")
    if source.is_dir():
        return _discover_folder(source, artist_from)
    suffix = source.suffix.lower()
    if suffix == ".csv":
        return _discover_manifest(source, _csv_rows(source))
    if suffix == ".jsonl":
        return _discover_manifest(source, _jsonl_rows(source))
    raise InvalidRequest(
        f"{source}: not a catalogue; give a folder, or a manifest ending in .csv or .jsonl"
    )


# --- folders -----------------------------------------------------------------------------


def _audio_files(root: Path) -> list[Path]:
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


def _discover_folder(root: Path, artist_from: str) -> Discovery:
    discovery = Discovery()
    for path in _audio_files(root):
        tags = _read_tags(path)
        if artist_from == "tags":
            artist = tags.get("artist") or tags.get("albumartist")
            if not artist:
                discovery.problems.append((str(path), "no artist tag"))
                continue
        else:
            parts = path.relative_to(root).parts
            if len(parts) < 2:
                discovery.problems.append((str(path), "not inside an artist folder"))
                continue
            artist = parts[0]
        discovery.entries.append(
            CatalogueEntry(
                path=path,
                artist=artist,
                title=tags.get("title") or path.stem,
                album=tags.get("album"),
                genre=tags.get("genre"),
                year=_year(tags.get("date") or tags.get("year")),
            )
        )
    return discovery


# ID3 frames (WAV and AIFF files carry plain ID3, which mutagen's easy mode does not wrap).
_ID3_FRAMES = {
    "TPE1": "artist",
    "TPE2": "albumartist",
    "TIT2": "title",
    "TALB": "album",
    "TCON": "genre",
    "TDRC": "date",
    "TYER": "year",
}


def _read_tags(path: Path) -> dict[str, str]:
    """artist, albumartist, title, album, genre, date/year of any format; {} when unreadable."""
    from mutagen import File as MutagenFile
    from mutagen import MutagenError
    from mutagen.id3 import ID3

    try:
        audio = MutagenFile(str(path), easy=True)
    except (MutagenError, OSError, ValueError, KeyError, IndexError, EOFError):
        return {}
    if audio is None or audio.tags is None:
        return {}
    tags: dict[str, str] = {}
    if isinstance(audio.tags, ID3):
        for frame_id, key in _ID3_FRAMES.items():
            frame = audio.tags.get(frame_id)
            if frame is not None and frame.text:
                tags[key] = str(frame.text[0]).strip()
    else:
        for key in ("artist", "albumartist", "album_artist", "title", "album", "genre", "date",
                    "year"):  # fmt: skip
            try:
                values = audio.tags.get(key)
            except (KeyError, ValueError):
                values = None
            if values:
                value = values[0] if isinstance(values, list) else values
                tags[key.replace("album_artist", "albumartist")] = str(value).strip()
    return {k: v for k, v in tags.items() if v}


def _year(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = re.match(r"\s*(\d{4})", str(value))
    return int(match.group(1)) if match else None


# --- manifests ---------------------------------------------------------------------------


def _csv_rows(manifest: Path) -> tuple[list[str], list[tuple[int, dict[str, Any] | str]]]:
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows: list[tuple[int, dict[str, Any] | str]] = []
            for row in reader:
                # Data rows start at line 2; the row number is the line a user sees.
                cleaned = {
                    (k or "").strip(): v for k, v in row.items() if k is not None and v is not None
                }
                rows.append((reader.line_num, cleaned))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidRequest(f"{manifest}: not a readable CSV file ({error})") from error
    return columns, rows


def _jsonl_rows(manifest: Path) -> tuple[list[str], list[tuple[int, dict[str, Any] | str]]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    columns: dict[str, None] = {}
    try:
        lines = manifest.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise InvalidRequest(f"{manifest}: not a UTF-8 text file ({error})") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            rows.append((number, f"not valid JSON ({error.msg})"))
            continue
        if not isinstance(row, dict):
            rows.append((number, "not a JSON object"))
            continue
        columns.update(dict.fromkeys(row))
        rows.append((number, row))
    return list(columns), rows


def _discover_manifest(
    manifest: Path, parsed: tuple[list[str], list[tuple[int, dict[str, Any] | str]]]
) -> Discovery:
    columns, rows = parsed
    missing = [c for c in ("path", "artist") if c not in columns]
    if missing:
        raise InvalidRequest(
            f"{manifest}: the manifest has no {' or '.join(repr(c) for c in missing)} column "
            f"(found: {', '.join(columns) or 'none'}); 'path' and 'artist' are required"
        )
    base = manifest.parent
    discovery = Discovery()
    for number, row in rows:
        where = f"{manifest}:row {number}"
        if isinstance(row, str):
            discovery.problems.append((where, row))
            continue
        raw_path, artist = _text(row.get("path")), _text(row.get("artist"))
        if not raw_path:
            discovery.problems.append((where, "no path"))
            continue
        if not artist:
            discovery.problems.append((where, f"no artist for {raw_path}"))
            continue
        path = Path(raw_path).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            discovery.problems.append((where, f"file not found: {path}"))
            continue
        discovery.entries.append(
            CatalogueEntry(
                path=path,
                artist=artist,
                title=_text(row.get("title")) or path.stem,
                album=_text(row.get("album")),
                genre=_text(row.get("genre")),
                year=_year(row.get("year")),
                extra={k: v for k, v in row.items() if k not in _KNOWN_COLUMNS},
            )
        )
    return discovery


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
