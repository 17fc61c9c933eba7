"""soundalike's own vocabulary: what the store holds and what queries answer.

Nothing here knows about Qdrant, torch or HTTP; every floor speaks these types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class EmbeddingSpec:
    """Everything that makes two vectors comparable. A collection never mixes specs."""

    model: str
    revision: str | None
    layer: int
    window_seconds: float
    excerpt: str
    pooling: str
    sample_rate: int
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingSpec:
        return cls(
            model=str(data["model"]),
            revision=data.get("revision"),
            layer=int(data["layer"]),
            window_seconds=float(data["window_seconds"]),
            excerpt=str(data["excerpt"]),
            pooling=str(data["pooling"]),
            sample_rate=int(data["sample_rate"]),
            dim=int(data["dim"]),
        )

    def differences(self, other: EmbeddingSpec) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as {field: (self_value, other_value)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


@dataclass
class Track:
    """One embedded track. `vector` is a unit vector of `spec.dim` floats."""

    track_id: str
    artist: str
    artist_key: str
    vector: list[float] | None
    title: str | None = None
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    path: str | None = None
    duration_seconds: float | None = None
    content_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The id a media server knows the track by (a Subsonic song id, a Jellyfin item GUID).
    item_id: str | None = None
    # The compute precision that made `vector` ('fp32' or 'bf16'); vectors of both precisions
    # share a catalogue (it is not part of the EmbeddingSpec). None: not recorded.
    precision: str | None = None


@dataclass
class Artist:
    """One artist: its display name and centroid (mean of unit track vectors, re-normalised)."""

    name: str
    artist_key: str
    track_count: int
    centroid: list[float] | None = None
    genres: list[str] = field(default_factory=list)


@dataclass
class TrackHit:
    track: Track
    score: float


@dataclass
class ArtistHit:
    artist: Artist
    score: float
