"""A listener's Subsonic server, as mixes need it: what the listener starred and played, and
their playlists, read and written.

The transport (authentication, retries, readable errors, credentials never logged) is the
catalogue source's client (ingest/sources/subsonic_client.py); this module speaks the
playlist and listening-history methods of the same API on top of it. The same URL and password
settings as `soundalike ingest subsonic+http://...` reach it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Unpack

from soundalike.ingest.sources.subsonic import ClientOptions
from soundalike.ingest.sources.subsonic_client import (
    MAX_CONNECTIONS,
    ServerAddress,
    SubsonicClient,
    SubsonicError,
    SubsonicNotFound,
)
from soundalike.search.closing import Closing

# Albums read from each of the server's "frequent" and "recent" lists.
PLAYED_ALBUMS = 40
# Song ids per createPlaylist request: every id travels in the query string (the protocol's
# way), and servers cap a request line at a few KB to a few hundred KB.
MAX_PLAYLIST_SONGS = 500


@dataclass(frozen=True)
class ServerPlaylist:
    """A playlist as the server lists it."""

    playlist_id: str
    name: str
    owner: str | None


@dataclass(frozen=True)
class ListenedSong:
    """A song of the listener's history: starred, or with a play count."""

    song_id: str
    artist_id: str | None
    play_count: int


@dataclass(frozen=True)
class ListenedAlbum:
    """An album the listener starred or played; `play_count` when the server reports it."""

    album_id: str
    name: str
    artist_id: str | None
    play_count: int | None


@dataclass(frozen=True)
class Listening:
    """What a server says of one listener's taste."""

    starred_songs: list[ListenedSong]
    starred_albums: list[ListenedAlbum]
    starred_artists: list[tuple[str, str]]  # (artist id, name)
    frequent_albums: list[ListenedAlbum]
    recent_albums: list[ListenedAlbum]

    @property
    def empty(self) -> bool:
        return not (
            self.starred_songs
            or self.starred_albums
            or self.starred_artists
            or self.recent_albums
            or any(album.play_count for album in self.frequent_albums)
        )


def owner_of(address: ServerAddress) -> str:
    """Whose playlists these are, as soundalike notes them in the store: server and user."""
    return f"{address.server_key}/{address.username or '(api key)'}"


class MediaServer(Closing):
    """One user's view of a Subsonic server: listening history and playlists."""

    def __init__(self, url: str, **client: Unpack[ClientOptions]) -> None:
        """`client`: the connection keywords of the ingest source's client (password or API
        key; tests: a transport, fewer retries)."""
        self.address = ServerAddress.parse(url)
        self.client = SubsonicClient(self.address, **client)

    def close(self) -> None:
        self.client.close()

    @property
    def display(self) -> str:
        return self.address.display

    @property
    def owner(self) -> str:
        return owner_of(self.address)

    def check(self) -> None:
        """Raises SubsonicError unless the server answers and accepts the credentials."""
        self.client.call("ping")

    # --- listening history ---------------------------------------------------------------

    def listening(self) -> Listening:
        """Starred songs, albums and artists (getStarred2) and the most and most recently
        played albums (getAlbumList2 `frequent` / `recent`)."""
        starred = self.client.call("getStarred2").get("starred2") or {}
        songs = [
            ListenedSong(str(s["id"]), _text(s.get("artistId")), _count(s.get("playCount")))
            for s in _as_list(starred.get("song"))
            if s.get("id") is not None
        ]
        artists = [
            (str(a["id"]), str(a.get("name") or a["id"]))
            for a in _as_list(starred.get("artist"))
            if a.get("id") is not None
        ]
        return Listening(
            starred_songs=songs,
            starred_albums=_albums(starred.get("album")),
            starred_artists=artists,
            frequent_albums=self._album_list("frequent"),
            recent_albums=self._album_list("recent"),
        )

    def _album_list(self, kind: str) -> list[ListenedAlbum]:
        body = self.client.call("getAlbumList2", type=kind, size=str(PLAYED_ALBUMS))
        return _albums((body.get("albumList2") or {}).get("album"))

    def album_songs(self, album_ids: Iterable[str]) -> dict[str, list[ListenedSong]]:
        """Each album's songs with their play counts (getAlbum, a few requests at once); an
        album the server no longer knows is left out."""
        ids = list(dict.fromkeys(album_ids))

        def songs_of(album_id: str) -> list[ListenedSong] | None:
            try:
                album = self.client.call("getAlbum", id=album_id).get("album") or {}
            except SubsonicNotFound:
                return None
            return [
                ListenedSong(str(s["id"]), _text(s.get("artistId")), _count(s.get("playCount")))
                for s in _as_list(album.get("song"))
                if s.get("id") is not None
            ]

        with ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="subsonic-albums") as pool:
            found = dict(zip(ids, pool.map(songs_of, ids), strict=True))
        return {album_id: songs for album_id, songs in found.items() if songs is not None}

    # --- playlists -----------------------------------------------------------------------

    def playlists(self) -> list[ServerPlaylist]:
        """The playlists the user sees (their own and public ones)."""
        body = self.client.call("getPlaylists").get("playlists") or {}
        return [
            ServerPlaylist(
                playlist_id=str(p["id"]),
                name=str(p.get("name") or ""),
                owner=_text(p.get("owner")),
            )
            for p in _as_list(body.get("playlist"))
            if p.get("id") is not None
        ]

    def write_playlist(
        self, name: str, song_ids: Sequence[str], *, replace_id: str | None = None
    ) -> str:
        """Writes a whole playlist in one request: a new one named `name`, or the songs (and
        name) of `replace_id` replaced in place, keeping its id. Returns the playlist's id."""
        if len(song_ids) > MAX_PLAYLIST_SONGS:
            raise ValueError(f"at most {MAX_PLAYLIST_SONGS} songs per playlist")
        params: list[tuple[str, str]] = [("name", name)]
        if replace_id is not None:
            params.append(("playlistId", replace_id))
        params += [("songId", song_id) for song_id in song_ids]
        before = None if replace_id is not None else {p.playlist_id for p in self.playlists()}
        body = self.client.call_multi("createPlaylist", params)
        if replace_id is not None:
            return replace_id
        created = body.get("playlist")
        if isinstance(created, dict) and created.get("id") is not None:
            return str(created["id"])  # API 1.14+: the new playlist is in the answer
        # Older servers answer nothing: the new playlist is the one of that name that was
        # not there before.
        assert before is not None
        fresh = [p for p in self.playlists() if p.name == name and p.playlist_id not in before]
        if len(fresh) != 1:
            raise SubsonicError(
                f"{self.display}: createPlaylist wrote {name!r} but the new playlist cannot be "
                "told apart in getPlaylists"
            )
        return fresh[0].playlist_id

    def delete_playlist(self, playlist_id: str) -> None:
        """Deletes a playlist; one already gone counts as deleted."""
        with contextlib.suppress(SubsonicNotFound):
            self.client.call("deletePlaylist", id=playlist_id)

    def unknown_songs(self, song_ids: Iterable[str]) -> set[str]:
        """The ids the server no longer knows (getSong answers "not found")."""
        ids = list(dict.fromkeys(song_ids))

        def gone(song_id: str) -> bool:
            try:
                self.client.call("getSong", id=song_id)
            except SubsonicNotFound:
                return True
            return False

        with ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="subsonic-songs") as pool:
            return {song_id for song_id, lost in zip(ids, pool.map(gone, ids), strict=True) if lost}


def _albums(value: Any) -> list[ListenedAlbum]:
    return [
        ListenedAlbum(
            album_id=str(a["id"]),
            name=str(a.get("name") or a.get("title") or a["id"]),
            artist_id=_text(a.get("artistId")),
            play_count=_count(a.get("playCount")) if a.get("playCount") is not None else None,
        )
        for a in _as_list(value)
        if a.get("id") is not None
    ]


def _as_list(value: Any) -> Iterator[dict[str, Any]]:
    # Some servers send one element as an object instead of a list of one.
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _count(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return int(number) if math.isfinite(number) and number > 0 else 0
