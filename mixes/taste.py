"""A listener's taste as seeds with vectors: what they starred and played on their server, found
in the catalogue ingested from that server.

Seeds and their weights (a favourite counts more than a passing play):
- a starred song: its vector, weight 3 (+ log(1 + plays) where the server counts plays);
- a starred album, or one of the most / most recently played albums: the mean of its stored
  songs (each weighted by 1 + log(1 + plays)), weight 3 when starred, plus log(1 + plays) or,
  from a server that does not report album play counts, 1.5 when it is also recently played
  (such a server lists every album under "frequent", played or not), plus 1 when recent;
- a starred artist: its centroid, weight 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from soundalike.core.errors import EmptyTaste
from soundalike.core.types import Track
from soundalike.ingest.sources.subsonic_client import ServerAddress, parse_location
from soundalike.mixes.media_server import ListenedAlbum, ListenedSong, Listening, MediaServer
from soundalike.search.store import Store

STARRED_WEIGHT = 3.0
RECENT_WEIGHT = 1.0
# A "frequent" album of a server without album play counts, when it was also played recently.
FREQUENT_UNCOUNTED_WEIGHT = 1.5

SeedKind = Literal["song", "album", "artist"]


@dataclass(frozen=True)
class TasteSeed:
    """One thing the listener likes, as a unit vector and how much it counts."""

    kind: SeedKind
    server_id: str
    name: str
    vector: np.ndarray
    weight: float
    artist_keys: frozenset[str]
    track_ids: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.server_id, "name": self.name}


@dataclass
class Taste:
    seeds: list[TasteSeed]
    # Artists the listener starred or played: a mix's "discovery" share is the others'.
    known_artist_keys: set[str] = field(default_factory=set)
    # Starred or played items the catalogue does not hold (not ingested, or since removed).
    not_in_catalogue: int = 0

    def add(
        self,
        kind: SeedKind,
        server_id: str,
        name: str,
        vector: Sequence[float] | np.ndarray | None,
        weight: float,
        artist_keys: Iterable[str],
        track_ids: Iterable[str] = (),
    ) -> None:
        """Adds a seed, its vector made a unit vector; without a usable vector (not in the
        catalogue) it only counts in `not_in_catalogue`."""
        unit = _unit(np.asarray(vector, np.float32)) if vector is not None else None
        if unit is None:
            self.not_in_catalogue += 1
            return
        keys = frozenset(artist_keys)
        self.seeds.append(
            TasteSeed(kind, server_id, name, unit, weight, keys, frozenset(track_ids))
        )
        self.known_artist_keys |= keys


class ServerCatalogue:
    """The stored tracks ingested from one Subsonic server, by that server's song ids."""

    def __init__(self, store: Store, address: ServerAddress) -> None:
        self.store = store
        self.address = address

    def song_id(self, track: Track) -> str | None:
        """The server's id of a stored track, or None when it came from elsewhere."""
        located = parse_location(track.path)
        if located is None or located[0].server_key != self.address.server_key:
            return None
        return located[1]

    def tracks_of_songs(self, song_ids: Iterable[str]) -> dict[str, Track]:
        """The stored tracks (with vectors) of these song ids that came from this server."""
        found = self.store.tracks_by_item_ids(song_ids)
        mine = [t for t in found.values() if self.song_id(t) is not None]
        with_vectors = self.store.get_tracks([t.track_id for t in mine], with_vectors=True)
        return {
            song_id: track
            for track in with_vectors
            if track.vector is not None and (song_id := self.song_id(track)) is not None
        }

    def unknown_message(self) -> str:
        return (
            f"the catalogue holds no songs of {self.address.display}: ingest that server first "
            f"(soundalike ingest {self.address.display})"
        )


def read_taste(server: MediaServer, catalogue: ServerCatalogue) -> Taste:
    """The listener's seeds (see the module's doc); EmptyTaste when there are none."""
    listening = server.listening()
    who = f"{server.address.username or 'this user'} on {server.display}"
    if listening.empty:
        raise EmptyTaste(
            f"no taste to seed mixes from: {who} has starred nothing and played nothing. "
            "Star a few songs, albums or artists in your player (or play some albums), then "
            "run again; or write a playlist from seeds you name: soundalike playlist URL "
            "--like ARTIST --name NAME"
        )
    taste = Taste(seeds=[])
    _add_songs(taste, catalogue, listening.starred_songs)
    _add_albums(taste, server, catalogue, _album_weights(listening))
    _add_artists(taste, catalogue.store, listening.starred_artists)
    if not taste.seeds:
        raise EmptyTaste(
            f"none of the {taste.not_in_catalogue} songs, albums and artists {who} starred or "
            f"played is in the catalogue; {catalogue.unknown_message()}"
        )
    return taste


def _unit(vector: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else None


def _plays(count: int) -> float:
    return math.log1p(max(0, count))


def _add_songs(taste: Taste, catalogue: ServerCatalogue, songs: Sequence[ListenedSong]) -> None:
    found = catalogue.tracks_of_songs(s.song_id for s in songs)
    for song in songs:
        track = found.get(song.song_id)
        if track is None:
            taste.not_in_catalogue += 1
            continue
        name = f"{track.artist} — {track.title or song.song_id}"
        weight = STARRED_WEIGHT + _plays(song.play_count)
        taste.add("song", song.song_id, name, track.vector, weight, [track.artist_key],
                  [track.track_id])  # fmt: skip


def _album_weights(listening: Listening) -> dict[str, tuple[ListenedAlbum, float]]:
    """Each starred or played album once, with its summed weight."""
    weights: dict[str, tuple[ListenedAlbum, float]] = {}

    def add(album: ListenedAlbum, weight: float) -> None:
        if weight > 0:
            known = weights.get(album.album_id)
            weights[album.album_id] = (album, weight + (known[1] if known else 0.0))

    recent = {album.album_id for album in listening.recent_albums}
    for album in listening.starred_albums:
        add(album, STARRED_WEIGHT)
    for album in listening.frequent_albums:
        if album.play_count is not None:
            add(album, _plays(album.play_count))
        elif album.album_id in recent:
            add(album, FREQUENT_UNCOUNTED_WEIGHT)
    for album in listening.recent_albums:
        add(album, RECENT_WEIGHT)
    return weights


def _add_albums(
    taste: Taste,
    server: MediaServer,
    catalogue: ServerCatalogue,
    albums: dict[str, tuple[ListenedAlbum, float]],
) -> None:
    songs_by_album = server.album_songs(albums)
    found = catalogue.tracks_of_songs(
        song.song_id for songs in songs_by_album.values() for song in songs
    )
    for album_id, (album, weight) in albums.items():
        stored = [
            (found[song.song_id], 1.0 + _plays(song.play_count))
            for song in songs_by_album.get(album_id, [])
            if song.song_id in found
        ]
        weighted = [w * np.asarray(t.vector, np.float32) for t, w in stored]
        mean = np.sum(weighted, axis=0) if weighted else None
        artist_keys = [t.artist_key for t, _ in stored]
        taste.add("album", album_id, album.name, mean, weight, artist_keys)


def _add_artists(taste: Taste, store: Store, artists: Sequence[tuple[str, str]]) -> None:
    from soundalike.search.media_ids import ARTIST_ID_COLUMN

    for artist_id, name in artists:
        keys = store.artist_keys_with({ARTIST_ID_COLUMN: artist_id})
        artist = store.get_artist(next(iter(keys)), with_centroid=True) if len(keys) == 1 else None
        if artist is None:
            taste.not_in_catalogue += 1
            continue
        taste.add("artist", artist_id, artist.name or name, artist.centroid, STARRED_WEIGHT,
                  [artist.artist_key])  # fmt: skip
