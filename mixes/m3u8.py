"""A playlist as an M3U8 file (UTF-8 M3U with #EXTINF lines), for players on the machine that
holds the music: each entry is the file's path relative to the library folder it lies in (the
file is meant to be saved in that folder), or its absolute path when it lies in none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath

from soundalike.core.types import Track

MEDIA_TYPE = "audio/x-mpegurl"


def _line(text: str) -> str:
    # A line break inside a title would start a new entry.
    return " ".join(text.split())


def entry_path(track: Track, roots: Sequence[Path]) -> str | None:
    """Where a player finds the track's file; None for a track that is not a local file (a
    Subsonic song) or whose path cannot be written on one line."""
    location = track.path
    if not location or "://" in location or "\n" in location or "\r" in location:
        return None
    path = PurePath(location)
    for root in roots:
        for base in (root, root.resolve()):
            if path.is_relative_to(base):
                return path.relative_to(base).as_posix()
    return str(path)


def m3u8_text(name: str, tracks: Sequence[Track], roots: Sequence[Path]) -> tuple[str, int]:
    """(the playlist file's text, how many tracks were left out as not local files)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_line(name)}"]
    left_out = 0
    for track in tracks:
        entry = entry_path(track, roots)
        if entry is None:
            left_out += 1
            continue
        seconds = round(track.duration_seconds) if track.duration_seconds else -1
        title = _line(track.title or PurePath(entry).stem)
        lines += [f"#EXTINF:{seconds},{_line(track.artist)} - {title}", entry]
    return "\n".join(lines) + "\n", left_out
