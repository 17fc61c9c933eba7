"""Point ids: a track's and an artist's identity, the same wherever the point is stored.

The namespace and the name strings are part of every stored point id: changing either would
orphan every vector already written, so they never change.
"""

from __future__ import annotations

import uuid

SOUNDALIKE_NAMESPACE = uuid.UUID("c902b414-f108-4d13-9b4a-6d1c4f571929")


def track_id(content_hash: str, artist_key: str) -> str:
    """A track's id: the same audio under the same artist is the same point, wherever it lives."""
    return str(uuid.uuid5(SOUNDALIKE_NAMESPACE, f"{content_hash}:{artist_key}"))


def artist_point_id(artist_key: str) -> str:
    """The id of an artist's centroid point."""
    return str(uuid.uuid5(SOUNDALIKE_NAMESPACE, artist_key))


def artist_id64(artist_key: str) -> int:
    """The first 8 bytes of the artist's point id as a signed 64-bit integer: how neighbour
    lists name an artist (half the bytes of the id; a collision needs ~4e9 artists to be
    likely, and is refused when lists are built)."""
    return int.from_bytes(uuid.UUID(artist_point_id(artist_key)).bytes[:8], "big", signed=True)


def is_uuid(value: str) -> bool:
    """Whether `value` can be a point id (Qdrant ids here are UUIDs)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
