"""Discovery of tracks from folders, tags and manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.catalogue import discover
from soundalike.ingest.devtools.synth import write_audio, write_catalogue
from soundalike.search.errors import InvalidRequest

CLIP = (np.random.default_rng(0).standard_normal((2, 4410)) * 0.1).astype(np.float32)


def _clip(path: Path, tags: dict[str, str] | None = None) -> Path:
    return write_audio(path, CLIP, 44100, tags=tags)


def test_folder_mode_takes_the_artist_from_the_first_folder_level(tmp_path: Path) -> None:
    written = write_catalogue(tmp_path, artists=3, tracks_per_artist=2, seconds=1.0)
    (tmp_path / "Éclair Ensemble" / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (tmp_path / "Éclair Ensemble" / "notes.txt").write_text("liner notes")
    (tmp_path / ".hidden").mkdir()
    _clip(tmp_path / ".hidden" / "secret.wav")
    _clip(tmp_path / "Señora Luna" / ".Ignored.flac")
    _clip(tmp_path / "Señora Luna" / "Live" / "Encore.flac")  # deeper levels keep the artist
    _clip(tmp_path / "loose.mp3")

    found = discover(tmp_path)
    by_path = {e.path: e for e in found.entries}
    assert len(found.entries) == len(written) + 1
    for track in written:
        entry = by_path[track.path]
        assert entry.artist == track.artist
        assert entry.title == track.title  # from the tags
        assert entry.album == track.album
    assert by_path[tmp_path / "Señora Luna" / "Live" / "Encore.flac"].artist == "Señora Luna"
    assert by_path[tmp_path / "Señora Luna" / "Live" / "Encore.flac"].title == "Encore"
    assert found.problems == [(str(tmp_path / "loose.mp3"), "not inside an artist folder")]
    assert [e.path for e in found.entries] == [e.path for e in discover(tmp_path).entries]
    assert {e.artist for e in found.entries} == {"Éclair Ensemble", "The Quiet Harbour",
                                                 "Møller & Sons", "Señora Luna"}  # fmt: skip


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "m4a", "opus", "wav"])
def test_tags_mode_reads_artist_title_album_genre_year(tmp_path: Path, fmt: str) -> None:
    tags = {"artist": "Zoë's Machines", "title": "Orbit", "album": "Salt", "genre": "rock",
            "date": "1999-04-01"}  # fmt: skip
    _clip(tmp_path / "inbox" / f"a.{fmt}", tags)
    found = discover(tmp_path, artist_from="tags")
    assert found.problems == []
    (entry,) = found.entries
    assert (entry.artist, entry.title, entry.album, entry.genre, entry.year) == (
        "Zoë's Machines", "Orbit", "Salt", "rock", 1999,
    )  # fmt: skip


def test_tags_mode_falls_back_to_album_artist_and_reports_missing_artists(tmp_path: Path) -> None:
    _clip(tmp_path / "x" / "compilation.flac", {"album_artist": "Kōhī Club", "title": "Drift"})
    _clip(tmp_path / "x" / "untagged.mp3", {"title": "Nobody"})
    _clip(tmp_path / "bare.ogg")
    found = discover(tmp_path, artist_from="tags")
    assert [(e.artist, e.title) for e in found.entries] == [("Kōhī Club", "Drift")]
    assert sorted(found.problems) == sorted(
        [(str(tmp_path / "bare.ogg"), "no artist tag"),
         (str(tmp_path / "x" / "untagged.mp3"), "no artist tag")]
    )  # fmt: skip


def test_csv_manifest_with_extra_columns_and_relative_paths(tmp_path: Path) -> None:
    _clip(tmp_path / "audio" / "one.flac")
    absolute = _clip(tmp_path / "elsewhere" / "two.mp3")
    manifest = tmp_path / "catalogue.csv"
    manifest.write_text(
        "path,artist,title,year,label,isrc\n"
        f"audio/one.flac,Dvořák Street Band,First,2011,Blue Note,US-ABC\n"
        f"{absolute},Ana Björk Trio,,,Indie,\n"
        "audio/missing.flac,Ana Björk Trio,Gone,,,\n"
        ",Ana Björk Trio,No Path,,,\n"
        "audio/one.flac,,No Artist,,,\n",
        encoding="utf-8",
    )
    found = discover(manifest)
    first, second = found.entries
    assert first.path == tmp_path / "audio" / "one.flac"
    assert (first.artist, first.title, first.year) == ("Dvořák Street Band", "First", 2011)
    assert first.extra == {"label": "Blue Note", "isrc": "US-ABC"}
    assert (second.path, second.artist, second.title) == (absolute, "Ana Björk Trio", "two")
    rows = [(where.rsplit(":", 1)[1], reason) for where, reason in found.problems]
    assert rows[0][0] == "row 4" and "file not found" in rows[0][1]
    assert rows[1] == ("row 5", "no path")
    assert rows[2][0] == "row 6" and "no artist" in rows[2][1]


def test_jsonl_manifest_keeps_json_values(tmp_path: Path) -> None:
    _clip(tmp_path / "a.wav")
    manifest = tmp_path / "m.jsonl"
    lines = [
        json.dumps({"path": "a.wav", "artist": "Møller & Sons", "genre": "folk", "year": 1987,
                    "bpm": 120, "moods": ["calm", "warm"], "explicit": False}),
        "{not json",
        json.dumps(["a list"]),
        "",
        json.dumps({"path": "a.wav"}),
    ]  # fmt: skip
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = discover(manifest)
    (entry,) = found.entries
    assert (entry.artist, entry.genre, entry.year, entry.title) == (
        "Møller & Sons", "folk", 1987, "a",
    )  # fmt: skip
    assert entry.extra == {"bpm": 120, "moods": ["calm", "warm"], "explicit": False}
    reasons = dict(found.problems)
    assert "not valid JSON" in reasons[f"{manifest}:row 2"]
    assert reasons[f"{manifest}:row 3"] == "not a JSON object"
    assert "no artist" in reasons[f"{manifest}:row 5"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("m.csv", "file,artist\nx.wav,A\n"), ("m.jsonl", '{"path": "x.wav", "title": "T"}\n')],
)
def test_manifest_without_required_columns_is_refused(
    tmp_path: Path, name: str, content: str
) -> None:
    manifest = tmp_path / name
    manifest.write_text(content)
    with pytest.raises(InvalidRequest, match="'path' and 'artist' are required"):
        discover(manifest)


def test_sources_that_are_not_catalogues_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no such file or folder"):
        discover(tmp_path / "nowhere")
    other = tmp_path / "list.txt"
    other.write_text("a.wav\n")
    with pytest.raises(InvalidRequest, match=r"\.csv or \.jsonl"):
        discover(other)


def test_symlink_loops_are_followed_once(tmp_path: Path) -> None:
    _clip(tmp_path / "Artist" / "song.flac")
    (tmp_path / "Artist" / "again").symlink_to(tmp_path / "Artist", target_is_directory=True)
    found = discover(tmp_path)
    assert [e.path.name for e in found.entries] == ["song.flac"]
