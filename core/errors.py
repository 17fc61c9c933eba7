"""The domain errors of soundalike, one module for all floors.

Each error carries a message a user can act on. The HTTP layer maps classes to statuses in one
handler (api/errors.py); the CLI prints the message and picks an exit code.
"""

from __future__ import annotations


class SoundalikeError(Exception):
    """Base of every error soundalike raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- audio -------------------------------------------------------------------------------


class AudioError(SoundalikeError):
    """A file could not be turned into a usable window; `detail` says why."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Decoding runs in worker processes: errors must survive pickling with their fields.
        return (type(self), (self.path, self.detail))


class UndecodableAudio(AudioError):
    """Not audio FFmpeg can decode (or not an audio container at all)."""


class AudioTooShort(AudioError):
    """Shorter than the minimum duration."""


class SilentAudio(AudioError):
    """The excerpt's RMS is below the silence threshold."""


# --- model -------------------------------------------------------------------------------


class ModelError(SoundalikeError):
    """A checkpoint could not be found, read or represented exactly."""


class UnsupportedModelConfig(ModelError):
    """The checkpoint's config asks for something HubertModel cannot compute exactly."""


class CheckpointMismatch(ModelError):
    """Missing or unexpected tensors in a checkpoint."""


class ModelUnavailable(ModelError):
    """The weights are not on disk and cannot be downloaded (offline, no such repo)."""


class UnusableVector(ModelError):
    """The model produced a zero or non-finite vector for a track."""


# --- store -------------------------------------------------------------------------------


class StoreError(SoundalikeError):
    """Base of store failures."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (server down, timeout)."""


class StoreLocked(StoreError):
    """The embedded data dir is owned by another soundalike process."""


class SpecMismatch(StoreError):
    """Writing or querying with an embedding spec different from the collection's."""


class NotFound(SoundalikeError):
    """Base for unknown things a user asked for by name or id."""


class ArtistNotFound(NotFound):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown artist {name!r}.{hint}")
        self.name = name
        self.suggestions = suggestions


class TrackNotFound(NotFound):
    def __init__(self, track_id: str) -> None:
        super().__init__(f"unknown track {track_id!r}")
        self.track_id = track_id


class InvalidRequest(SoundalikeError):
    """A well-typed request that still makes no sense (too many artists, bad filter)."""


class CapacityExhausted(SoundalikeError):
    """All embedding workers are busy; retry later."""

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Conflict(SoundalikeError):
    """The request clashes with what is there (a playlist of that name that soundalike did not
    write); nothing was changed."""


class EmptyTaste(SoundalikeError):
    """Nothing to seed mixes with: no stars and no plays on the media server, or none of them
    in the catalogue. The message says how to seed."""


class FeatureOff(SoundalikeError):
    """A capability this server was not configured for (the message names the setting)."""
