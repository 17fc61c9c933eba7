"""Failures lose nothing: a wrong password, a server that goes away mid-run, a song the server
no longer knows. Against a real Subsonic server (Supysonic); the playlists are read back
through its API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from subsonic_listener import IngestedServer, Listener, last_json

from soundalike.api.cli import main
from soundalike.ingest.sources.subsonic_client import SubsonicUnavailable
from soundalike.mixes.media_server import MediaServer
from soundalike.mixes.plan import MixOptions, PlannedSong
from soundalike.mixes.run import run_mixes, write_seed_playlist
from soundalike.mixes.taste import ServerCatalogue
from soundalike.search.store import open_store


class GoesAway(httpx.HTTPTransport):
    """The real transport, until the server "goes away" at the n-th request of a method."""

    def __init__(self, method: str, at: int) -> None:
        super().__init__()
        self.method, self.at, self.seen = method, at, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.rsplit("/", 1)[-1].removesuffix(".view") == self.method:
            self.seen += 1
            if self.seen >= self.at:
                raise httpx.ConnectError("connection refused", request=request)
        return super().handle_request(request)


def media_server(ingested: IngestedServer, transport: httpx.BaseTransport | None) -> MediaServer:
    server = ingested.server
    return MediaServer(
        server.url, password=server.password, transport=transport, attempts=1, backoff_s=0.01
    )


def snapshot(listener: Listener) -> dict[str, tuple[str, list[str]]]:
    """Every playlist: id -> (name, song ids in order)."""
    return {
        str(p["id"]): (str(p["name"]), listener.playlist_songs(str(p["id"])))
        for p in listener.playlists()
    }


@pytest.fixture
def starred(listener: Listener) -> Callable[[int], None]:
    by_artist = listener.songs_by_artist()
    artists = list(by_artist)

    def star(index: int) -> None:
        listener.star(song=by_artist[artists[index]][0]["id"])

    return star


def test_a_wrong_password_fails_saying_so_and_changes_nothing(
    ingested_server: IngestedServer,
    listener: Listener,
    starred: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    starred(0)
    url, flags = ingested_server.server.url, ingested_server.flags()
    monkeypatch.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", ingested_server.server.password)
    assert main(["mixes", url, "--count", "2", "--size", "4", *flags]) == 0
    before = snapshot(listener)
    capsys.readouterr()

    monkeypatch.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", "not-" + ingested_server.server.password)
    for argv in (
        ["mixes", url, "--count", "1", *flags, "--json"],
        ["playlist", url, "--like", listener.songs()[0]["artist"], "--name", "X", *flags, "--json"],
    ):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert "wrong user name or password" in str(last_json(out)["error"])
        assert ingested_server.server.password not in out + err
    assert snapshot(listener) == before


def test_a_server_that_goes_away_leaves_each_playlist_whole(
    ingested_server: IngestedServer, listener: Listener, starred: Callable[[int], None]
) -> None:
    starred(1)
    options = MixOptions(count=2, size=4)
    with open_store(data_dir=ingested_server.data_dir) as store:
        with media_server(ingested_server, None) as server:
            first = run_mixes(server, store, options)
        before = snapshot(listener)
        starred(4)  # the taste changes: the next run plans other songs

        # Gone while the taste is read: nothing is written.
        with (
            media_server(ingested_server, GoesAway("getAlbumList2", 1)) as server,
            pytest.raises(SubsonicUnavailable, match="did not answer getAlbumList2"),
        ):
            run_mixes(server, store, options)
        assert snapshot(listener) == before

        # Gone after the first mix was written: that one is new, the other as it was.
        with (
            media_server(ingested_server, GoesAway("createPlaylist", 2)) as server,
            pytest.raises(SubsonicUnavailable, match="did not answer createPlaylist"),
        ):
            run_mixes(server, store, options)
        after = snapshot(listener)
        assert set(after) == set(before), "a playlist was added or lost"
        ids = [str(mix["playlist_id"]) for mix in first.mixes]
        assert after[ids[1]] == before[ids[1]]

        with media_server(ingested_server, None) as server:
            again = run_mixes(server, store, options)
    assert [m["playlist_id"] for m in again.mixes] == ids
    assert len(listener.playlists()) == len(before)


def test_a_song_the_server_no_longer_knows_is_left_out_and_reported(
    ingested_server: IngestedServer, listener: Listener
) -> None:
    # Last in this module: a song's file is removed from the server. Not one in a playlist yet:
    # Supysonic 0.7.9 then fails getPlaylists itself (its clean-up of the playlist breaks).
    in_playlists = {song for _, songs in snapshot(listener).values() for song in songs}
    songs = sorted(listener.songs(), key=lambda s: s["id"] in in_playlists)
    gone = songs[0]
    assert gone["id"] not in in_playlists
    with (
        open_store(data_dir=ingested_server.data_dir) as store,
        media_server(ingested_server, None) as server,
    ):
        catalogue = ServerCatalogue(store, server.address)
        stored = catalogue.tracks_of_songs(s["id"] for s in songs[:4])
        planned = [PlannedSong(s["id"], stored[s["id"]]) for s in songs[:4]]
        ingested_server.server.song_file(gone["title"]).unlink()
        ingested_server.server.scan()
        written = write_seed_playlist(server, store, "Four songs", planned)
    assert written.left_out == [gone["id"]]
    assert listener.playlist_songs(written.playlist_id) == [s["id"] for s in songs[1:4]]
