"""Tags of any audio format mutagen reads: artist, album artist, title, album, genre, year."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class TagReading:
    """The tags found, or why the file's tags could not be read at all."""

    tags: dict[str, str]
    error: str | None = None


def read_tags(path: Path) -> TagReading:
    """artist, albumartist, title, album, genre, date/year of any format.

    A file mutagen cannot parse gives no tags and the reason (a corrupt or mislabelled file);
    a readable file without tags gives no tags and no error."""
    from mutagen import File as MutagenFile
    from mutagen import MutagenError
    from mutagen.id3 import ID3

    try:
        audio = MutagenFile(str(path), easy=True)
    except OSError as error:
        return TagReading({}, f"unreadable: {error.strerror or error}")
    except (MutagenError, ValueError, KeyError, IndexError, EOFError) as error:
        detail = str(error).strip() or type(error).__name__
        kind = path.suffix.lstrip(".") or "audio"
        return TagReading({}, f"not a readable {kind} file ({detail})")
    if audio is None:
        # mutagen knows no such format: the decoder says whether it is audio at all.
        from soundalike.ingest.audio import undecodable_reason

        return TagReading({}, undecodable_reason(path))
    if audio.tags is None:
        return TagReading({})
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
    return TagReading({k: v for k, v in tags.items() if v})


def parse_year(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = re.match(r"\s*(\d{4})", str(value))
    return int(match.group(1)) if match else None
