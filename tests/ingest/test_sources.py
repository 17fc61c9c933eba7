"""Catalogue sources: folders, tags and manifests list tracks and say what they no longer have."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.devtools.synth import write_audio, write_catalogue
from soundalike.ingest.sources import (
    ArtistFrom,
    CatalogueSource,
    FolderSource,
    ManifestSource,
    Problem,
    SourceTrack,
    source_for,
)

CLIP = (np.random.default_rng(0).standard_normal((2, 4410)) * 0.1).astype(np.float32)


def _clip(path: Path, tags: dict[str, str] | None = None) -> Path:
    return write_audio(path, CLIP, 44100, tags=tags)


@dataclass
class Listing:
    entries: list[SourceTrack]
    problems: list[tuple[str, str]]


def discover(target: Path, artist_from: ArtistFrom = "folders") -> Listing:
    """What the source for `target` lists, split into tracks and problems."""
    found = list(source_for(target, artist_from=artist_from).tracks())
    return Listing(
        [t for t in found if isinstance(t, SourceTrack)],
        [(p.location, p.reason) for p in found if isinstance(p, Problem)],
    )


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
    by_path = {Path(e.location): e for e in found.entries}
    assert len(found.entries) == len(written) + 1
    for track in written:
        entry = by_path[track.path]
        assert entry.artist == track.artist
        assert entry.title == track.title  # from the tags
        assert entry.album == track.album
    assert by_path[tmp_path / "Señora Luna" / "Live" / "Encore.flac"].artist == "Señora Luna"
    assert by_path[tmp_path / "Señora Luna" / "Live" / "Encore.flac"].title == "Encore"
    assert found.problems == [(str(tmp_path / "loose.mp3"), "not inside an artist folder")]
    again = discover(tmp_path).entries
    assert [e.location for e in found.entries] == [e.location for e in again]
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
    assert Path(first.location) == tmp_path / "audio" / "one.flac"
    assert (first.artist, first.title, first.year) == ("Dvořák Street Band", "First", 2011)
    assert first.extra == {"label": "Blue Note", "isrc": "US-ABC"}
    assert Path(second.location) == absolute
    assert (second.artist, second.title) == ("Ana Björk Trio", "two")
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
    assert [Path(e.location).name for e in found.entries] == ["song.flac"]


def test_tags_mode_reports_what_is_wrong_with_a_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "noise.ogg").write_bytes(np.random.default_rng(3).bytes(4096))
    found = discover(tmp_path, artist_from="tags")
    ((location, reason),) = found.problems
    assert location == str(tmp_path / "inbox" / "noise.ogg")
    # The decoder's verdict, not "no artist tag": the file is not audio at all.
    assert reason.startswith(("not a readable ogg file (", "FFmpeg could not read it: "))
    assert "artist tag" not in reason


def test_a_folder_says_which_stored_files_it_no_longer_has(tmp_path: Path) -> None:
    kept = _clip(tmp_path / "A" / "kept.wav")
    gone = _clip(tmp_path / "A" / "gone.wav")
    source = FolderSource(tmp_path)
    elsewhere = "/somewhere/else/B/other.wav"  # another source's track: never claimed
    stored = [str(kept), str(gone), elsewhere]
    assert source.missing(stored) == set()
    gone.unlink()
    assert source.missing(stored) == {str(gone)}


def test_a_manifest_says_which_stored_files_it_dropped(tmp_path: Path) -> None:
    one, two = _clip(tmp_path / "one.wav"), _clip(tmp_path / "two.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,artist\none.wav,A\ntwo.wav,A\n")
    source = ManifestSource(manifest)
    assert source.missing([str(one), str(two)]) == set()
    manifest.write_text("path,artist\none.wav,A\n")
    assert source.missing([str(one), str(two), "/other/place.wav"]) == {str(two)}


def test_every_source_kind_speaks_the_source_protocol(tmp_path: Path) -> None:
    track = _clip(tmp_path / "A" / "t.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": str(track), "artist": "A"}) + "\n")
    for source in (source_for(tmp_path), source_for(manifest)):
        assert isinstance(source, CatalogueSource)
        (listed,) = [t for t in source.tracks() if isinstance(t, SourceTrack)]
        assert listed.artist == "A"
        # A moved copy of the same audio has the same identity: content, not path.
        assert source.identity(listed) == FolderSource(tmp_path).identity(listed)
        with source.audio_file(listed) as local:
            assert local == track
