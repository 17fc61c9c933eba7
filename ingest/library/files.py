"""What a library root contains, and the catalogue source over a list of its files.

Rules, the same for a full scan and for a batch of changed paths:
- hidden files and folders (a leading dot) are skipped, like `soundalike ingest` does;
- exclude globs match the path relative to its root (`Podcasts/*`, `*.part`) or any one of its
  names (`Podcasts`), so a folder can be excluded by name;
- symlinks are not followed unless asked; a symlink whose target lies outside every configured
  root is refused and reported whatever the setting, so nothing outside the roots is ever read;
  with symlinks followed, a loop (or a second link to a folder already walked) is reported once
  and not walked again.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from soundalike.ingest.audio import AUDIO_EXTENSIONS
from soundalike.ingest.defaults import DEFAULT_WORKERS
from soundalike.ingest.sources.base import Problem, SourceTrack, content_hash, displayable
from soundalike.ingest.sources.folder import ArtistFrom, FolderSource


@dataclass(frozen=True)
class LibraryConfig:
    """A library's folders and how they are followed (from the server's settings)."""

    roots: tuple[Path, ...] = ()
    artist_from: ArtistFrom = "folders"
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    # File-system events (inotify, FSEvents); off: only the periodic rescan sees changes.
    watch: bool = True
    rescan_seconds: float = 3600.0
    # Quiet time before a batch of changes is ingested; a file modified more recently than
    # this is still being written and waits.
    debounce_seconds: float = 2.0
    # POST /library/scan with a path outside the roots adds that folder as a root.
    allow_new_roots: bool = False
    workers: int = DEFAULT_WORKERS

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(absolute(r) for r in self.roots))


def absolute(path: Path | str) -> Path:
    """`path` made absolute without resolving symlinks (locations keep the user's spelling)."""
    return Path(os.path.abspath(os.fspath(path)))


def is_within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it (lexically; both absolute)."""
    return path == folder or path.startswith(os.path.join(folder, ""))


@dataclass
class Listing:
    """The audio files found (paths under their root, as the OS spells them) and the problems."""

    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class RootRules:
    """The listing rules for one root, knowing every root of the library (symlink targets may
    lie in another root)."""

    def __init__(self, root: Path, config: LibraryConfig) -> None:
        self.root = root
        self.config = config
        self._real_roots = [os.path.realpath(r) for r in config.roots] or [os.path.realpath(root)]

    def inside_roots(self, real_path: str) -> bool:
        return any(is_within(real_path, real_root) for real_root in self._real_roots)

    def excluded(self, path: Path) -> bool:
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return True
        text = relative.as_posix()
        for pattern in self.config.exclude:
            if fnmatch.fnmatch(text, pattern):
                return True
            if any(fnmatch.fnmatch(name, pattern) for name in relative.parts):
                return True
            # `Podcasts/*` excludes the folder's contents however deep.
            parts = relative.parts
            if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts))):
                return True
        return False

    def list_tree(self, folder: Path | None = None) -> Listing:
        """Every admissible audio file under `folder` (default: the root), sorted."""
        listing = Listing()
        self._walk_all(folder or self.root, listing)
        listing.files.sort(key=lambda p: p.relative_to(self.root).parts)
        return listing

    def _walk_all(self, start: Path, listing: Listing) -> None:
        """Real folders first, then the symlinked ones, each at most once: a link to a folder
        already walked (or to one of its own ancestors: a loop) is reported, not followed."""
        walked: set[str] = set()
        links: list[Path] = []
        self._walk(start, listing, walked, links)
        while links:
            link = links.pop(0)
            real = os.path.realpath(link)
            if real in walked or is_within(os.path.realpath(link.parent), real):
                listing.problems.append(
                    Problem(
                        displayable(str(link)),
                        "symlink loop (or a second link to a folder already walked): "
                        "not walked again",
                    )
                )
                continue
            self._walk(link, listing, walked, links)

    def _walk(self, folder: Path, listing: Listing, walked: set[str], links: list[Path]) -> None:
        walked.add(os.path.realpath(folder))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            listing.problems.append(
                Problem(displayable(str(folder)), f"unreadable folder: {error.strerror or error}")
            )
            return
        for entry in entries:
            path = folder / entry.name
            if entry.name.startswith(".") or self.excluded(path):
                continue
            if entry.is_symlink():
                followed = self._symlink(path, listing)
                if followed is None:
                    continue
                if os.path.isdir(path):
                    links.append(path)  # walked after every real folder (see _walk_links)
                elif self._is_audio(path):
                    listing.files.append(path)
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                self._walk(path, listing, walked, links)
            elif self._is_audio(path):
                listing.files.append(path)

    def _symlink(self, path: Path, listing: Listing) -> Path | None:
        """The link when it may be followed; None (reported when it escapes) otherwise."""
        real = os.path.realpath(path)
        if not self.inside_roots(real):
            listing.problems.append(
                Problem(
                    displayable(str(path)),
                    f"symlink to {displayable(real)}, outside the library roots: refused",
                )
            )
            return None
        if not self.config.follow_symlinks or not os.path.exists(path):
            return None
        return path

    @staticmethod
    def _is_audio(path: Path) -> bool:
        return path.suffix.lower() in AUDIO_EXTENSIONS

    def admit(self, path: Path) -> Path | Problem | None:
        """A single changed file: the file when it is an admissible audio file now, a Problem
        when it is refused, None when it is not (or no longer) a library file."""
        blocked = self._blocked(path)
        if blocked is not None:
            return blocked or None
        if not self._is_audio(path) or not os.path.isfile(path):
            return None
        if not self.inside_roots(os.path.realpath(path)):
            return Problem(displayable(str(path)), "resolves outside the library roots: refused")
        return path

    def changed(self, path: Path) -> Listing:
        """What a changed path (file or folder, present or gone) holds now."""
        listing = Listing()
        blocked = self._blocked(path)
        if blocked is not None:
            if blocked:
                listing.problems.append(blocked)
            return listing
        if os.path.isdir(path):
            self._walk_all(path, listing)
            return listing
        admitted = self.admit(path)
        if isinstance(admitted, Path):
            listing.files.append(admitted)
        elif admitted is not None:
            listing.problems.append(admitted)
        return listing

    def _blocked(self, path: Path) -> Problem | Literal[False] | None:
        """Why `path` cannot be listed: a Problem (reported), False (silently: outside the
        root, hidden, excluded, behind a symlink not followed), None when it may be."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in relative.parts) or self.excluded(path):
            return False
        # Every component from the root down: a symlinked folder on the way counts too.
        current = self.root
        for part in relative.parts:
            current = current / part
            if current.is_symlink():
                listing = Listing()
                if self._symlink(current, listing) is None:
                    return listing.problems[0] if listing.problems else False
        return None


def stat_signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, or None when it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


class LibrarySource(FolderSource):
    """A catalogue source over an explicit list of a root's files (a full scan's listing or a
    batch of changed files), with the artist from folders or tags like `FolderSource`.

    A batch speaks for its `scope` (folders and files): it lists everything there, so a stored
    track inside the scope whose file is not `present` is gone (`missing`). Files modified less
    than `settle_seconds` ago are still being written: they are `deferred`, not listed, and
    still present. A file's identity (its content hash) is cached against its size and
    modification time, so a rescan does not read unchanged files again; a file rewritten in
    place gets a new mtime and is hashed again."""

    lists_everything = True

    def __init__(
        self,
        root: Path,
        files: Iterable[Path],
        *,
        artist_from: ArtistFrom,
        hashes: dict[str, tuple[tuple[int, int], str]],
        scope: Iterable[str] = (),
        problems: Iterable[Problem] = (),
        unchanged: Iterable[str] = (),
        settle_seconds: float = 0.0,
    ) -> None:
        super().__init__(root, artist_from=artist_from)
        self.files = list(files)
        self._hashes = hashes
        self.description = f"library folder {root}"
        self.scope = [displayable(s) for s in scope]
        self.problems = list(problems)
        self.settle_seconds = settle_seconds
        # Locations of every admissible file, ready or not, listed or known unchanged.
        self.present: set[str] = set(unchanged)
        self.deferred: list[Path] = []
        self._paths: dict[str, Path] = {}

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        yield from self.problems
        now = time.time()
        for path in self.files:
            location = displayable(str(path))
            self.present.add(location)
            self._paths[location] = path
            signature = stat_signature(path)
            if signature is not None and now - signature[1] / 1e9 < self.settle_seconds:
                self.deferred.append(path)  # still being written: read it once it is quiet
                continue
            yield self._track(path)

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        return {
            location
            for location in stored_locations
            if location not in self.present and any(is_within(location, s) for s in self.scope)
        }

    def signature(self, location: str) -> tuple[int, int]:
        """(size, mtime) of a listed file, (0, 0) when it cannot be stat'ed any more."""
        path = self._paths.get(location, Path(location))
        return stat_signature(path) or (0, 0)

    def identity(self, track: SourceTrack) -> str:
        signature = stat_signature(Path(track.source_id))
        cached = self._hashes.get(track.source_id)
        if signature is not None and cached is not None and cached[0] == signature:
            return cached[1]
        digest = content_hash(track.source_id)
        after = stat_signature(Path(track.source_id))
        if after is not None and after == signature:
            self._hashes[track.source_id] = (after, digest)
        return digest
