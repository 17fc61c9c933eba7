"""What a catalogue source is: it lists tracks and says which stored tracks it no longer has.

A source yields `SourceTrack`s (a stable source id, the artist, metadata, and where the audio
is) and `Problem`s (things that cannot become a track, with the reason). The pipeline never
looks inside a source: folders, tag-read folders and manifests are sources, and a new kind (a
music server, a watched folder) is one more class here, not a change to the pipeline's stages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from soundalike.ingest.excerpt import ExcerptRead


def displayable(text: str) -> str:
    """A file name as valid, printable text: bytes that are not UTF-8 (names copied from old NAS
    boxes and Windows shares, e.g. Latin-1 `Beyonc\\xe9`), which Python keeps as surrogate
    escapes, become visible `\\xNN` escapes. Lossless, so the same name always maps to the same
    text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class SourceTrack:
    """One track as its source lists it.

    `source_id` is stable for the source and opens the audio (a file's path, exactly as the OS
    gave it; a server's song id); `location` is what a person reads and what the store keeps
    (a path as displayable text, a URL without credentials)."""

    source_id: str
    location: str
    artist: str
    title: str | None = None
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The id a media server knows the track by, given back by the AudioMuse-compatible routes.
    item_id: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something the source found that cannot become a track, and why."""

    location: str
    reason: str


@runtime_checkable
class CatalogueSource(Protocol):
    """A catalogue the pipeline can ingest. `SourceBase` gives the optional hooks
    (`lists_everything`, `prepare_fetch`, `check`, `missing`) no-op defaults, so a new source
    declares only what it does."""

    description: str
    # True for a source that lists everything it owns (a music server): the stored tracks it
    # no longer lists are removed after each run. A folder of an unmounted disk lists nothing,
    # and a manifest lists a subset of its folder, so they keep theirs.
    lists_everything: bool

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        """Every track, and every problem, in a stable order."""
        ...

    def identity(self, track: SourceTrack) -> str:
        """What makes two listings the same recording for this source (a file's content
        hash: a moved file keeps its id). Raises OSError when it cannot be read."""
        ...

    def audio_file(self, track: SourceTrack) -> AbstractAudioFile:
        """A context manager giving a local file to decode (a remote source downloads it
        and removes it on exit)."""
        ...

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        """Of the stored tracks' locations, those this source owns but no longer lists."""
        ...

    def prepare_fetch(self, tracks: Sequence[SourceTrack], excerpt: ExcerptRead) -> None:
        """The tracks the flow will ask `audio_file` for, in order, and which excerpt it
        decodes (a remote source downloads ahead and fetches only the excerpt)."""
        ...

    def check(self) -> None:
        """Raises when the source cannot be used (a wrong password); called before the model
        loads, so a bad setting fails in a second, not after minutes."""
        ...


class SourceBase:
    """The optional hooks' defaults: a source inherits them and overrides what it does."""

    lists_everything: bool = False

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        return set()

    def prepare_fetch(self, tracks: Sequence[SourceTrack], excerpt: ExcerptRead) -> None:
        return None  # a local file is read when it is decoded: nothing to fetch ahead

    def check(self) -> None:
        return None  # nothing to check before the model loads


class AbstractAudioFile(Protocol):
    def __enter__(self) -> Path: ...
    # As contextlib's managers declare it (True would swallow the exception).
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool | None: ...


def content_hash(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of the file's bytes, hex; read in chunks so big files cost no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class LocalFiles(SourceBase):
    """Shared behaviour of sources whose tracks are files on this machine."""

    def identity(self, track: SourceTrack) -> str:
        return content_hash(track.source_id)

    @contextmanager
    def _local(self, path: Path) -> Iterator[Path]:
        yield path

    def audio_file(self, track: SourceTrack) -> AbstractAudioFile:
        return self._local(Path(track.source_id))
