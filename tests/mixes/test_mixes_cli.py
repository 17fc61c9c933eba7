"""`soundalike playlist` and `soundalike mixes` against a real Subsonic server (Supysonic): the
playlists are read back through the server's own API, as any player would read them."""

from __future__ import annotations

from collections import Counter

import pytest
from subsonic_listener import IngestedServer, Listener, last_json

from soundalike.api.cli import main


@pytest.fixture(autouse=True)
def password(ingested_server: IngestedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", ingested_server.server.password)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    document = last_json(out) if "--json" in argv and out.strip() else {}
    return code, document, err


def test_mixes_with_no_stars_and_no_plays_fail_and_say_how_to_seed(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    # First in this module: the listener has starred and played nothing yet.
    code, document, err = run(
        capsys, "mixes", ingested_server.server.url, *ingested_server.flags(), "--json"
    )
    assert code == 1
    assert "starred nothing and played nothing" in str(document["error"])
    assert "Star a few songs" in err
    assert listener.playlists() == []


def test_a_radio_is_written_as_a_playlist_in_order_and_rewritten_in_place(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    songs = listener.songs()
    artists = sorted({s["artist"] for s in songs})
    url, flags = ingested_server.server.url, ingested_server.flags()
    code, first, _ = run(
        capsys, "playlist", url, "--like", artists[0], "--name", "Like it", "--limit", "5",
        *flags, "--json",
    )  # fmt: skip
    assert code == 0, first
    ids = [song["id"] for song in first["songs"]]  # type: ignore[index, union-attr]
    assert len(ids) == 5
    assert {s["id"] for s in songs} >= set(ids)
    on_server = [p for p in listener.playlists() if p["name"] == "Like it"]
    assert [p["id"] for p in on_server] == [first["playlist_id"]]
    assert listener.playlist_songs(str(first["playlist_id"])) == ids

    code, second, _ = run(
        capsys, "playlist", url, "--like", artists[1], "--unlike", artists[0], "--name",
        "Like it", "--limit", "4", *flags, "--json",
    )  # fmt: skip
    assert code == 0
    assert second["playlist_id"] == first["playlist_id"]
    new_ids = [song["id"] for song in second["songs"]]  # type: ignore[index, union-attr]
    assert len(new_ids) == 4 and new_ids != ids
    assert [p["id"] for p in listener.playlists() if p["name"] == "Like it"] == [
        first["playlist_id"]
    ]
    assert listener.playlist_songs(str(first["playlist_id"])) == new_ids


def test_a_sonic_path_is_written_as_a_playlist(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    artists = sorted({s["artist"] for s in listener.songs()})
    code, document, _ = run(
        capsys, "playlist", ingested_server.server.url, "--path", artists[0], artists[-1],
        "--limit", "6", "--name", "Path", *ingested_server.flags(), "--json",
    )  # fmt: skip
    assert code == 0
    ids = [song["id"] for song in document["songs"]]  # type: ignore[index, union-attr]
    assert len(ids) == 6
    assert listener.playlist_songs(str(document["playlist_id"])) == ids


def test_mixes_from_stars_and_plays_are_written_and_rewritten_in_place(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    songs = listener.songs()
    by_artist = listener.star_taste(songs=[(0, 0), (0, 1)], albums=[1], artists=[2])
    listener.play(by_artist[3][0]["id"])
    mine = listener.make_playlist("Sonic Mix", [songs[0]["id"]])  # the listener's own

    url, flags = ingested_server.server.url, ingested_server.flags()
    code, dry, _ = run(capsys, "mixes", url, "--count", "2", "--size", "5", "--dry-run",
                       *flags, "--json")  # fmt: skip
    assert code == 0
    assert [m["playlist_id"] for m in dry["mixes"]] == [None, None]  # type: ignore[index, union-attr]
    assert not any(str(p["name"]).startswith("Sonic Mix ") for p in listener.playlists())

    code, first, err = run(capsys, "mixes", url, "--count", "2", "--size", "5", *flags, "--json")
    assert code == 0, err
    mixes = first["mixes"]
    assert isinstance(mixes, list) and [m["name"] for m in mixes] == ["Sonic Mix 1", "Sonic Mix 2"]
    seen: list[str] = []
    for mix in mixes:
        ids = [song["id"] for song in mix["songs"]]
        assert 1 <= len(ids) <= 5
        assert listener.playlist_songs(mix["playlist_id"]) == ids
        per_artist = Counter(song["artist"] for song in mix["songs"])
        assert max(per_artist.values()) <= 3
        assert mix["seeds"], mix
        seen += ids
    assert len(seen) == len(set(seen)), "a song is in two mixes"
    starred = {by_artist[0][0]["id"], by_artist[0][1]["id"]}
    assert not starred & set(seen), "a mix repeats a starred song"
    seed_kinds = {seed["kind"] for mix in mixes for seed in mix["seeds"]}
    assert seed_kinds == {"song", "album", "artist"}

    code, again, _ = run(capsys, "mixes", url, "--count", "2", "--size", "5", *flags, "--json")
    assert code == 0
    assert [m["playlist_id"] for m in again["mixes"]] == [m["playlist_id"] for m in mixes]  # type: ignore[index, union-attr]
    names = Counter(str(p["name"]) for p in listener.playlists())
    assert names["Sonic Mix 1"] == names["Sonic Mix 2"] == 1

    code, fewer, _ = run(capsys, "mixes", url, "--count", "1", "--size", "5", *flags, "--json")
    assert code == 0
    assert fewer["removed"] == ["Sonic Mix 2"]
    left = {str(p["name"]): str(p["id"]) for p in listener.playlists()}
    assert "Sonic Mix 2" not in left and left["Sonic Mix 1"] == mixes[0]["playlist_id"]
    assert left["Sonic Mix"] == mine and listener.playlist_songs(mine) == [songs[0]["id"]]

    # A playlist may not take a mix's name: the next mixes run would overwrite it.
    seed = by_artist[0][0]["artist"]
    code, refused, _ = run(capsys, "playlist", url, "--like", seed, "--name", "Sonic Mix 1",
                           *flags, "--json")  # fmt: skip
    assert code == 1 and "one of soundalike's mixes" in str(refused["error"])
    assert listener.playlist_songs(left["Sonic Mix 1"]) == [
        song["id"] for song in fewer["mixes"][0]["songs"]  # type: ignore[index]
    ]


def test_groups_left_without_songs_are_reported(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stars of the test above stay; one mix of 200 songs takes all 18 songs there are.
    code, document, _ = run(
        capsys, "mixes", ingested_server.server.url, "--count", "3", "--size", "200",
        "--max-per-artist", "10", "--discovery", "0", "--dry-run", *ingested_server.flags(),
        "--json",
    )  # fmt: skip
    assert code == 0
    assert len(document["mixes"]) == 1  # type: ignore[arg-type]
    notes = [f for f in document["failures"] if "no mix for the seeds" in f]  # type: ignore[union-attr]
    assert len(notes) == 2, document["failures"]


def test_mixes_never_overwrite_a_playlist_saved_from_seeds(
    ingested_server: IngestedServer, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    url, flags = ingested_server.server.url, ingested_server.flags()
    artist = next(iter(listener.songs_by_artist()))
    code, saved, _ = run(capsys, "playlist", url, "--like", artist, "--name", "Evening 1",
                         "--limit", "3", *flags, "--json")  # fmt: skip
    assert code == 0
    code, refused, _ = run(capsys, "mixes", url, "--count", "1", "--prefix", "Evening", *flags,
                           "--json")  # fmt: skip
    assert code == 1 and "saved from seeds, not a mix" in str(refused["error"])
    assert listener.playlist_songs(str(saved["playlist_id"])) == [
        song["id"] for song in saved["songs"]  # type: ignore[union-attr]
    ]
