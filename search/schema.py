"""The Qdrant schema of soundalike, and the one place it is defined.

Layout
- `<prefix>tracks`: one point per track, id `identity.track_id(content_hash, artist_key)`.
  Payload: artist, artist_key, title, album, genre, year, path, duration_seconds,
  content_hash, item_id (the media server's id, or null), `spec` (the embedding spec dict)
  and `extra` (the manifest's extra columns,
  nested under their own names so they can never clobber a reserved field; filter on them by
  bare name).
- `<prefix>artists`: one point per artist, id `identity.artist_point_id(artist_key)`, vector =
  centroid. Payload: artist, artist_key, track_count, genres, id64 (the first 8 bytes of the
  point id as a signed integer: how neighbour lists name artists), and `neighbours` (the
  artist's exact neighbour list, base64; see neighbour_lists.py).
- The tracks collection's metadata also holds the catalogue version (`CATALOGUE_VERSION_KEY`,
  a fresh token whenever any centroid changes) and the neighbour lists' record
  (`NEIGHBOUR_LISTS_KEY`: the catalogue version every stored list is exact for), and what
  soundalike wrote to media servers (`MEDIA_SERVER_RECORDS_KEY`: playlist ids, by server/user).
- The embedding spec is stored once, in the tracks collection's metadata under
  `SPEC_METADATA_KEY` (Edge: a JSON file beside the shard; server: collection metadata).
"""

from __future__ import annotations

from typing import NamedTuple

from soundalike.search.backend import IndexKind

TRACKS = "tracks"
ARTISTS = "artists"

F_ARTIST = "artist"
F_ARTIST_KEY = "artist_key"
F_TITLE = "title"
F_ALBUM = "album"
F_GENRE = "genre"
F_YEAR = "year"
F_PATH = "path"
F_DURATION = "duration_seconds"
F_CONTENT_HASH = "content_hash"
F_EXTRA = "extra"
F_SPEC = "spec"
F_TRACK_COUNT = "track_count"
F_GENRES = "genres"
F_ID64 = "id64"
F_NEIGHBOURS = "neighbours"
F_ITEM_ID = "item_id"
F_PRECISION = "precision"

TRACK_INDEXES: dict[str, IndexKind] = {
    F_ARTIST_KEY: "keyword",
    F_GENRE: "keyword",
    F_ALBUM: "keyword",
    F_YEAR: "integer",
    # Which point a file produced: a retagged or edited file's old point is found and retired.
    F_PATH: "keyword",
    # The media server's id of a track: how plugins name tracks.
    F_ITEM_ID: "keyword",
}
ARTIST_INDEXES: dict[str, IndexKind] = {
    F_ARTIST_KEY: "keyword",
    F_TRACK_COUNT: "integer",
    F_GENRES: "keyword",
    F_ID64: "integer",
}

# Track fields a search may filter on directly; any other filter name is an extra column.
DIRECT_FILTER_FIELDS = frozenset({F_GENRE, F_ALBUM, F_YEAR, F_TITLE, F_ARTIST, F_PATH})
NOT_FILTERABLE = frozenset({F_SPEC, F_EXTRA, "vector"})

SPEC_METADATA_KEY = "soundalike_spec"
# Artists whose centroid must be recomputed although their track count looks right (a track
# replaced by its retagged or edited version), kept until the recompute is durable.
PENDING_CENTROIDS_KEY = "soundalike_centroids_pending"

# A fresh token whenever a centroid changes; and the catalogue version the neighbour lists are
# exact for (their record: {"version": token or None while they are being written, "k": K}).
CATALOGUE_VERSION_KEY = "soundalike_catalogue_version"
NEIGHBOUR_LISTS_KEY = "soundalike_neighbour_lists"
# What soundalike wrote to media servers, by server and user ({owner: record}): the playlists
# it may replace or delete (never one it did not write) and its last mixes run.
MEDIA_SERVER_RECORDS_KEY = "soundalike_media_server_records"

UPSERT_BATCH = 256
RETRIEVE_BATCH = 1024
SCROLL_BATCH = 2048
NAME_SCROLL_BATCH = SCROLL_BATCH * 4
CENTROID_KEY_BATCH = 256


class CollectionNames(NamedTuple):
    """A store's two collections, by name."""

    tracks: str
    artists: str


def collection_names(prefix: str = "") -> CollectionNames:
    """(tracks, artists) collection names for a collection prefix."""
    return CollectionNames(f"{prefix}{TRACKS}", f"{prefix}{ARTISTS}")
