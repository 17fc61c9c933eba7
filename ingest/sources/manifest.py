"""Manifest sources: a `.csv` or `.jsonl` file that lists tracks and their artists."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.sources.base import LocalFiles, Problem, SourceTrack
from soundalike.ingest.sources.tags import parse_year

KNOWN_COLUMNS = ("path", "artist", "title", "album", "genre", "year", "item_id")


class ManifestSource(LocalFiles):
    """A `.csv` or `.jsonl` file listing tracks: `path` and `artist` columns required, `title`,
    `album`, `genre`, `year` and `item_id` (the id a media server knows the track by) optional,
    any other column kept in the payload. Relative paths are relative to the manifest's
    folder."""

    def __init__(self, manifest: Path) -> None:
        suffix = manifest.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise InvalidRequest(f"{manifest}: a manifest ends in .csv or .jsonl")
        if not manifest.is_file():
            raise InvalidRequest(f"{manifest}: no such file")
        self.manifest = manifest
        self.description = f"manifest {manifest}"

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        reader = _csv_rows if self.manifest.suffix.lower() == ".csv" else _jsonl_rows
        columns, rows = reader(self.manifest)
        missing = [c for c in ("path", "artist") if c not in columns]
        if missing:
            raise InvalidRequest(
                f"{self.manifest}: the manifest has no {' or '.join(repr(c) for c in missing)} "
                f"column (found: {', '.join(columns) or 'none'}); 'path' and 'artist' are required"
            )
        base = self.manifest.parent
        for number, row in rows:
            yield _row_track(self.manifest, base, number, row)

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        # A manifest claims the files under its own folder (relative rows resolve there); of
        # those, the ones it no longer lists are gone.
        base = os.path.join(os.path.abspath(self.manifest.parent), "")
        listed = {t.location for t in self.tracks() if isinstance(t, SourceTrack)}
        return {
            location
            for location in stored_locations
            if os.path.abspath(location).startswith(base) and location not in listed
        }


def _row_track(
    manifest: Path, base: Path, number: int, row: dict[str, Any] | str
) -> SourceTrack | Problem:
    where = f"{manifest}:row {number}"
    if isinstance(row, str):
        return Problem(where, row)
    raw_path, artist = _text(row.get("path")), _text(row.get("artist"))
    if not raw_path:
        return Problem(where, "no path")
    if not artist:
        return Problem(where, f"no artist for {raw_path}")
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        return Problem(where, f"file not found: {path}")
    return SourceTrack(
        source_id=str(path),
        location=str(path),
        artist=artist,
        title=_text(row.get("title")) or path.stem,
        album=_text(row.get("album")),
        genre=_text(row.get("genre")),
        year=parse_year(row.get("year")),
        extra={k: v for k, v in row.items() if k not in KNOWN_COLUMNS},
        item_id=_text(row.get("item_id")),
    )


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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
