"""A Supysonic server whose songs are ingested, and the listener's side of it: stars, plays and
playlists made through the server's own API (as a player would). Test modules import the
fixtures (`ingested_server`, `listener`) from here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from supysonic_server import SupysonicFactory, SupysonicServer

from soundalike.api.cli import main
from soundalike.ingest.sources.subsonic_client import ServerAddress, SubsonicClient


@dataclass
class Listener:
    """The server's user, acting through the Subsonic API as a player does."""

    server: SupysonicServer
    client: SubsonicClient

    def star(self, *, song: str | None = None, album: str | None = None,
             artist: str | None = None) -> None:  # fmt: skip
        params = {k: v for k, v in (("id", song), ("albumId", album), ("artistId", artist)) if v}
        self.client.call("star", **params)

    def play(self, song_id: str) -> None:
        """Streams a song to the end (the server counts a play)."""
        response = self.client.open_audio(song_id, raw_stream=True)
        try:
            response.read()
        finally:
            response.close()

    def songs(self) -> list[dict[str, str]]:
        """Every song: id, artist, artistId, albumId, title."""
        songs = []
        for song in self.client.songs():
            songs.append({"id": song.song_id, "artist": song.artist, "artistId":
                          song.artist_id or "", "albumId": song.album_id or "",
                          "title": song.title or ""})  # fmt: skip
        return songs

    def songs_by_artist(self) -> dict[str, list[dict[str, str]]]:
        """Every song, by artist, artists in name order."""
        by_artist: dict[str, list[dict[str, str]]] = {}
        for song in self.songs():
            by_artist.setdefault(song["artist"], []).append(song)
        return dict(sorted(by_artist.items()))

    def star_taste(
        self,
        songs: Sequence[tuple[int, int]] = (),
        albums: Sequence[int] = (),
        artists: Sequence[int] = (),
    ) -> list[list[dict[str, str]]]:
        """Stars songs (by artist number and song number, artists in name order), the album
        and the artist of the artists numbered; returns the songs by artist, in that order."""
        by_artist = list(self.songs_by_artist().values())
        for artist, song in songs:
            self.star(song=by_artist[artist][song]["id"])
        for artist in albums:
            self.star(album=by_artist[artist][0]["albumId"])
        for artist in artists:
            self.star(artist=by_artist[artist][0]["artistId"])
        return by_artist

    def playlists(self) -> list[dict[str, object]]:
        body = self.client.call("getPlaylists").get("playlists") or {}
        return list(body.get("playlist") or [])

    def playlist_songs(self, playlist_id: str) -> list[str]:
        body = self.client.call("getPlaylist", id=playlist_id).get("playlist") or {}
        return [str(entry["id"]) for entry in body.get("entry") or []]

    def make_playlist(self, name: str, song_ids: list[str]) -> str:
        songs = [("songId", song_id) for song_id in song_ids]
        self.client.call_multi("createPlaylist", [("name", name), *songs])
        return next(str(p["id"]) for p in self.playlists() if p["name"] == name)


@dataclass
class IngestedServer:
    server: SupysonicServer
    data_dir: Path
    model_dir: Path

    def flags(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)]


@pytest.fixture(scope="module")
def ingested_server(
    supysonic_factory: SupysonicFactory,
    tiny_mert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IngestedServer]:
    """A private server (6 artists x 3 songs) and a store ingested from it through the CLI."""
    server = supysonic_factory.start(
        f"mixes-{tmp_path_factory.getbasetemp().name}-{len(supysonic_factory.servers)}",
        artists=6,
        tracks_per_artist=3,
        seconds=4.0,
        formats=("wav",),
        sample_rate=24000,
    )
    data_dir = tmp_path_factory.mktemp("mixes-store")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOUNDALIKE_SUBSONIC_PASSWORD", server.password)
        flags = ["--model", str(tiny_mert_dir), "--device", "cpu", "--workers", "1", "--json"]
        assert main(["ingest", server.url, *flags, "--data-dir", str(data_dir)]) == 0
    yield IngestedServer(server, data_dir, tiny_mert_dir)


@pytest.fixture
def listener(ingested_server: IngestedServer) -> Iterator[Listener]:
    server = ingested_server.server
    client = SubsonicClient(ServerAddress.parse(server.url), password=server.password)
    yield Listener(server, client)
    client.close()


def last_json(text: str) -> dict[str, object]:
    return json.loads(text.strip().splitlines()[-1])
