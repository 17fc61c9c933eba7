"""The ids media servers know tracks and artists by, and the tracks and artists they name.

A track's media-server id is its `item_id` (a Subsonic song id, a Jellyfin item GUID, an LMS
track number) when its source gave one, else our own track id. Jellyfin sends GUIDs as 32 hex
digits without dashes and other clients with them, so a GUID is looked up in both spellings.
An artist's media-server id is the `artist_id` its tracks carry in `extra` (Subsonic sources
store it), else its display name.
"""

from __future__ import annotations

import re

from soundalike.core.artist_names import key_prefix, suggest
from soundalike.core.errors import ArtistNotFound, TrackNotFound
from soundalike.core.identity import is_uuid
from soundalike.core.types import Artist, Track
from soundalike.search.queries import resolve_artist
from soundalike.search.store import Store

ARTIST_ID_COLUMN = "artist_id"
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_DASHED = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def media_id(track: Track) -> str:
    """The id a media server knows this track by."""
    return track.item_id if track.item_id else track.track_id


def id_spellings(raw: str) -> list[str]:
    """`raw` and, for a GUID, its other spellings (dashed / 32 hex digits, lower case)."""
    spellings = [raw]
    if _HEX32.match(raw):
        hexed = raw.lower()
        spellings += [
            hexed,
            f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}",
        ]
    elif _DASHED.match(raw):
        spellings += [raw.lower(), raw.replace("-", "").lower()]
    return list(dict.fromkeys(spellings))


def track_by_media_id(store: Store, raw: str, *, with_vector: bool = True) -> Track:
    """The stored track a media server names `raw` (its item id, in any GUID spelling, or our
    track id); TrackNotFound (404) otherwise."""
    spellings = id_spellings(raw.strip())
    found = store.tracks_by_item_ids(spellings)
    for spelling in spellings:
        if spelling in found:
            if not with_vector:
                return found[spelling]
            track = store.get_track(found[spelling].track_id, with_vector=True)
            if track is not None:
                return track
    for spelling in spellings:
        if is_uuid(spelling) and "-" in spelling:
            track = store.get_track(spelling.lower(), with_vector=with_vector)
            if track is not None:
                return track
    raise TrackNotFound(raw)


def artist_by_media_id(store: Store, raw: str, *, with_centroid: bool = False) -> Artist:
    """The artist a media server names `raw`: the artist whose tracks carry that `artist_id`,
    else the artist of that name; ArtistNotFound (404, with suggestions) otherwise."""
    text = raw.strip()
    if text:
        keys = store.artist_keys_with({ARTIST_ID_COLUMN: text})
        if len(keys) == 1:
            artist = store.get_artist(next(iter(keys)), with_centroid=with_centroid)
            if artist is not None:
                return artist
    if not key_prefix(text):
        raise ArtistNotFound(raw, suggest(raw, store.artist_names()))
    return resolve_artist(store, text, with_centroid=with_centroid)


def artist_media_ids(store: Store, artists: list[Artist]) -> dict[str, str]:
    """Each artist's media-server id (the `artist_id` of one of its tracks, else its display
    name), by artist key: one single-track read per artist."""
    ids: dict[str, str] = {}
    for artist in artists:
        page = store.artist_track_page(artist.artist_key, limit=1)
        server_id = page[0].extra.get(ARTIST_ID_COLUMN) if page else None
        ids[artist.artist_key] = str(server_id) if server_id not in (None, "") else artist.name
    return ids
