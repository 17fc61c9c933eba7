"""A Subsonic server (Navidrome, Gonic, Airsonic, Supysonic, ...) as a catalogue source.

`soundalike ingest subsonic+http://USER@HOST:PORT[/base]` lists every song of the server
(getArtists → getArtist → getAlbum) and downloads the audio of the songs not yet stored. The
password comes from SOUNDALIKE_SUBSONIC_PASSWORD (or an OpenSubsonic API key from
SOUNDALIKE_SUBSONIC_API_KEY), never from the URL, and never reaches a log line, a report, a
stored payload or an error message.

Identity: a song is (server, song id); the store keeps its location as
`subsonic+http://USER@HOST:PORT/base?id=SONG_ID` (no secret in it) and the song id as the
track's `item_id`, so a rerun skips stored songs without downloading them, and `missing()`
names the stored songs the server no longer lists.

What is fetched, only for songs not yet stored, into a temporary file removed once it is
decoded: a few songs download at once, ahead of the decoder, and at most PREFETCH_AHEAD wait on
disk (never the library). The client (subsonic_client.py) lists the server and authenticates.
- PCM WAV (the largest format per minute), when the server honours HTTP Range: only the header,
  the tail and the bytes around each excerpt window, in a sparse file that decodes to exactly the
  windows of the whole file (subsonic_excerpt.py says why that is exact).
- Every other format, or a server that ignores Range: the whole file. A slice of a compressed
  file is not safely decodable: FLAC, MP4 and Ogg need their headers and frame/page structure
  found by seeking, and an MP3 prefix changes the duration the decoder estimates, so the
  centred window would move. Correct vectors first: the same bytes a folder ingest reads.
The front end's audio route streams a track through `stream_for_track`, passing the client's
Range header on to the server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

from soundalike.core.errors import AudioError
from soundalike.core.types import Track
from soundalike.ingest.excerpt import ExcerptRead
from soundalike.ingest.sources.base import AbstractAudioFile, Problem, SourceBase, SourceTrack
from soundalike.ingest.sources.subsonic_client import (
    DOWNLOAD_CHUNK,
    ServerAddress,
    Song,
    SubsonicClient,
    SubsonicError,
    SubsonicNotFound,
    SubsonicUnavailable,
    is_subsonic_url,
    parse_location,
    transport_reason,
)
from soundalike.ingest.sources.subsonic_excerpt import (
    HEADER_BYTES,
    WAV_SUFFIXES,
    excerpt_byte_ranges,
    parse_wav_header,
    worth_a_partial_read,
)

__all__ = [
    "DownloadFailed",
    "ServerAddress",
    "SubsonicClient",
    "SubsonicError",
    "SubsonicNotFound",
    "SubsonicSource",
    "SubsonicUnavailable",
    "UpstreamAudio",
    "is_subsonic_url",
    "parse_location",
    "stream_for_track",
]

# After this many songs in a row whose download failed for want of a server, the rest fail at
# once (a server that went down mid-ingest costs seconds, not minutes; the next run resumes).
GIVE_UP_AFTER_SONGS = 3
# Songs downloaded at once during an ingest, and how many may wait on disk for the decoder.
PARALLEL_DOWNLOADS = 3
PREFETCH_AHEAD = 4
logger = logging.getLogger(__name__)


class DownloadFailed(AudioError):
    """One song's audio could not be fetched; the run reports it and goes on."""


# --- the catalogue source ------------------------------------------------------------------


class ClientOptions(TypedDict, total=False):
    """SubsonicClient's connection keywords, handed through by the source (the defaults stay
    the client's)."""

    password: str | None
    api_key: str | None
    transport: httpx.BaseTransport | None
    attempts: int
    backoff_s: float


class SubsonicSource(SourceBase):
    """Every song of a Subsonic server: the server's artist is the artist; the audio of a song
    not yet stored is downloaded into a temporary file for decoding and removed after."""

    # The server lists every song it has: a stored song it no longer lists is removed.
    lists_everything = True

    def __init__(
        self, url: str, *, scratch_dir: Path | None = None, **client: Unpack[ClientOptions]
    ) -> None:
        self.address = ServerAddress.parse(url)
        self.client = SubsonicClient(self.address, **client)
        self.description = f"Subsonic server {self.address.display}"
        self._listed: set[str] | None = None
        self._excerpt: ExcerptRead | None = None
        self._durations: dict[str, int] = {}
        # Downloads: one scratch folder for this source (removed by close(), or when the source
        # is collected or the process exits), one subfolder per song.
        self._scratch = Path(tempfile.mkdtemp(prefix="soundalike-subsonic-", dir=scratch_dir))
        self._remove_scratch = weakref.finalize(
            self, shutil.rmtree, str(self._scratch), ignore_errors=True
        )
        self._pool = ThreadPoolExecutor(PARALLEL_DOWNLOADS, thread_name_prefix="subsonic-fetch")
        self._lock = threading.Lock()
        self._fetches: dict[str, Future[Path]] = {}
        self._taken: set[str] = set()  # songs the pipeline has asked for: never fetched again
        self._upcoming: list[SourceTrack] = []
        self._next_upcoming = 0
        self._songs_without_server = 0

    def prepare_fetch(self, tracks: Sequence[SourceTrack], excerpt: ExcerptRead) -> None:
        """The songs the pipeline will ask for, in its order, and what it will decode of them:
        downloads run ahead of the decoder (PARALLEL_DOWNLOADS at once, at most PREFETCH_AHEAD
        files waiting on disk), and a PCM WAV song is fetched as its excerpt only (HTTP Range,
        subsonic_excerpt.py). Without this call each song is downloaded whole, when asked."""
        self._excerpt = excerpt
        with self._lock:
            self._upcoming = list(tracks)
            self._next_upcoming = 0

    def close(self) -> None:
        """Stops downloads not yet asked for, removes their files, closes the connections."""
        with self._lock:
            waiting, self._fetches = list(self._fetches.values()), {}
            self._upcoming, self._next_upcoming = [], 0
        for future in waiting:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._remove_scratch()
        self.client.close()

    def check(self) -> None:
        """Raises SubsonicError unless the server answers and accepts the credentials."""
        self.client.call("ping")

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        listed: set[str] = set()
        for song in self.client.songs():
            listed.add(song.song_id)
            if song.duration is not None:
                self._durations[song.song_id] = song.duration
            location = self.address.location(song.song_id)
            if not song.artist:
                yield Problem(location, "the server lists no artist for this song")
                continue
            yield SourceTrack(
                source_id=song.song_id,
                location=location,
                artist=song.artist,
                title=song.title or (Path(song.path).stem if song.path else song.song_id),
                album=song.album,
                genre=song.genre,
                year=song.year,
                extra=_extra(song),
                item_id=song.song_id,
            )
        # Only a listing that went to the end says what the server no longer has.
        self._listed = listed

    def identity(self, track: SourceTrack) -> str:
        return self.address.identity(track.source_id)

    def _fetch(self, track: SourceTrack) -> Path:
        """Downloads one song into its own folder under the scratch folder; the file's path.
        Raises DownloadFailed (the folder removed)."""
        folder = Path(tempfile.mkdtemp(prefix="song-", dir=self._scratch))
        suffix = re.sub(r"[^A-Za-z0-9]", "", str(track.extra.get("suffix") or ""))[:8]
        target = folder / f"song.{suffix or 'audio'}"
        try:
            with self._lock:
                server_gone = self._songs_without_server >= GIVE_UP_AFTER_SONGS
            if server_gone:
                raise DownloadFailed(
                    track.location, "not downloaded: the server stopped answering; rerun to resume"
                )
            try:
                if not self._fetch_excerpt(track, target):
                    self.client.download(track.source_id, target)
            except SubsonicUnavailable as error:
                if error.code is None:  # no answer (not a refusal): count towards giving up
                    with self._lock:
                        self._songs_without_server += 1
                raise DownloadFailed(track.location, f"download failed: {error.message}") from None
            except SubsonicError as error:
                raise DownloadFailed(track.location, f"download failed: {error.message}") from None
            except OSError as error:
                raise DownloadFailed(
                    track.location, f"cannot write the download: {error.strerror or error}"
                ) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with self._lock:
            self._songs_without_server = 0
        return target

    def _start_ahead(self) -> None:
        """Starts the next announced songs' downloads while fewer than PREFETCH_AHEAD wait."""
        with self._lock:
            while len(self._fetches) < PREFETCH_AHEAD and self._next_upcoming < len(self._upcoming):
                track = self._upcoming[self._next_upcoming]
                self._next_upcoming += 1
                if track.source_id not in self._fetches and track.source_id not in self._taken:
                    self._fetches[track.source_id] = self._pool.submit(self._fetch, track)

    @contextlib.contextmanager
    def _downloaded(self, track: SourceTrack) -> Iterator[Path]:
        with self._lock:
            future = self._fetches.pop(track.source_id, None)
            if future is None:  # not announced, or not started yet: first in the pool's queue
                future = self._pool.submit(self._fetch, track)
            self._taken.add(track.source_id)
        self._start_ahead()
        try:
            target = future.result()
        finally:
            self._start_ahead()
        try:
            yield target
        finally:
            shutil.rmtree(target.parent, ignore_errors=True)

    def _fetch_excerpt(self, track: SourceTrack, target: Path) -> bool:
        """Writes a sparse copy of a PCM WAV song holding only what decoding its excerpt reads
        (header, tail, each window with margins); False when that does not apply (another
        format, a server that ignores Range, an excerpt that is most of the file)."""
        suffix = str(track.extra.get("suffix") or "").lower()
        excerpt = self._excerpt
        if excerpt is None or suffix not in WAV_SUFFIXES:
            return False
        listed_seconds = self._durations.get(track.source_id)
        if listed_seconds is not None and not worth_a_partial_read(
            listed_seconds, excerpt.policy, excerpt.window_seconds
        ):
            return False  # a short song: one whole download, not a header read first
        head = self.client.read_range(track.source_id, 0, HEADER_BYTES)
        if head is None:
            return False
        data, total = head
        layout = parse_wav_header(data, total)
        if layout is None:
            return False
        ranges = excerpt_byte_ranges(
            layout,
            total,
            policy=excerpt.policy,
            window_seconds=excerpt.window_seconds,
            sample_rate=excerpt.sample_rate,
        )
        if ranges is None:
            return False
        with open(target, "wb") as out:
            out.truncate(total)  # holes read as zeros and cost no disk
            out.write(data)
            for start, end in ranges:
                start = max(start, len(data))
                if start >= end:
                    continue
                part = self.client.read_range(track.source_id, start, end)
                if part is None or part[1] != total or len(part[0]) != end - start:
                    return False  # the file changed or the server stopped honouring Range
                out.seek(start)
                out.write(part[0])
        return True

    def audio_file(self, track: SourceTrack) -> AbstractAudioFile:
        return self._downloaded(track)

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        if self._listed is None:
            for _ in self.tracks():
                pass
        assert self._listed is not None
        gone: set[str] = set()
        for location in stored_locations:
            parsed = parse_location(location)
            if parsed is None:
                continue
            server, song_id = parsed
            if server.server_key == self.address.server_key and song_id not in self._listed:
                gone.add(location)
        return gone


def _extra(song: Song) -> dict[str, Any]:
    values: dict[str, Any] = {
        "artist_id": song.artist_id,
        "album_id": song.album_id,
        "album_artist": song.album_artist,
        "suffix": song.suffix,
        "server_path": song.path,
        "musicbrainz_id": song.musicbrainz_id,
        "isrc": song.isrc,
    }
    return {key: value for key, value in values.items() if value is not None}


# --- the front end's audio route -----------------------------------------------------------

PASSED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges")


@dataclass
class UpstreamAudio:
    """A Subsonic server's answer to a stream request: status (200, 206 or 416), the headers
    worth passing on, and the body as byte chunks. Iterating it iterates `chunks`; `close()`
    releases the connection (call it whether or not the body was read)."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    _close: Callable[[], None] = field(repr=False, default=lambda: None)

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self._close()


def stream_for_track(
    track: Track,
    password: str | None,
    api_key: str | None,
    range_header: str | None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> UpstreamAudio | None:
    """The audio of a track ingested from a Subsonic server, streamed from that server
    (`stream`, format=raw, so the original bytes and a Range the server honours), or None when
    the track does not come from a Subsonic server. Raises SubsonicUnavailable (server down,
    credentials refused: 503) and SubsonicNotFound (the server no longer has it: 404)."""
    parsed = parse_location(track.path)
    if parsed is None:
        return None
    address, song_id = parsed
    if password is None and api_key is None:
        # The server's configuration, not the caller's request, lacks something: 503, not 422.
        raise SubsonicUnavailable(
            f"{address.display}: no credentials to stream from it (set "
            "SOUNDALIKE_SUBSONIC_PASSWORD or SOUNDALIKE_SUBSONIC_API_KEY)"
        )
    client = SubsonicClient(address, password=password, api_key=api_key, transport=transport,
                            attempts=2)  # fmt: skip
    try:
        response = client.open_audio(song_id, range_header=range_header, raw_stream=True)
    except BaseException:
        client.close()
        raise
    headers = {
        name.title(): value
        for name, value in response.headers.items()
        if name.lower() in PASSED_HEADERS
    }

    def close() -> None:
        response.close()
        client.close()

    def chunks() -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(DOWNLOAD_CHUNK)
        except httpx.TransportError as error:
            logger.warning("subsonic stream of %s broke off: %s", song_id,
                           transport_reason(error))  # fmt: skip
        finally:
            close()

    return UpstreamAudio(response.status_code, headers, chunks(), close)
