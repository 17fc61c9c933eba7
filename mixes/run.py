"""The two jobs on a listener's server, as the CLI and the served schedule run them: a playlist
from seeds one names (`playlist`) and the mixes from the listener's taste (`mixes`).

Every song list is built before the first write: a failure while planning (an unknown seed, an
empty taste, a server that does not answer) changes nothing on the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soundalike.core.errors import InvalidRequest, SoundalikeError
from soundalike.core.types import Track
from soundalike.mixes.media_server import MediaServer
from soundalike.mixes.plan import MixOptions, PlannedMix, PlannedSong, plan_mixes
from soundalike.mixes.playlists import PlaylistBook, WrittenPlaylist
from soundalike.mixes.taste import ServerCatalogue, read_taste
from soundalike.search.radio import MAX_RADIO_LIMIT, Seed, radio
from soundalike.search.sonic_paths import path_from_seeds
from soundalike.search.store import Store

log = logging.getLogger("soundalike.mixes")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class MixesReport:
    """One mixes run: when, what was written (or planned, on a dry run), what failed."""

    started_at: str
    finished_at: str | None = None
    trigger: str = "cli"
    dry_run: bool = False
    mixes: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "trigger": self.trigger,
            "ok": self.ok,
            "error": self.error,
            "dry_run": self.dry_run,
            "mixes": self.mixes,
            "removed": self.removed,
            "failures": self.failures,
            "seconds": self.seconds,
        }


def _mix_document(mix: PlannedMix, written: WrittenPlaylist | None) -> dict[str, Any]:
    songs = written.songs if written is not None else mix.songs
    return {
        "playlist_id": written.playlist_id if written is not None else None,
        "name": mix.name,
        "songs": [song.to_dict() for song in songs],
        "seeds": [seed.to_dict() for seed in mix.seeds],
    }


def run_mixes(
    server: MediaServer,
    store: Store,
    options: MixOptions,
    *,
    dry_run: bool = False,
    trigger: str = "cli",
) -> MixesReport:
    """Reads the listener's taste, plans the mixes, and (unless `dry_run`) writes them and
    deletes the earlier mixes no longer needed. Errors propagate (the report is for success);
    `MixesSchedule` records a failed run's message itself."""
    started = time.monotonic()
    report = MixesReport(started_at=now_iso(), trigger=trigger, dry_run=dry_run)
    catalogue = ServerCatalogue(store, server.address)
    taste = read_taste(server, catalogue)
    plan = plan_mixes(catalogue, taste, options)
    planned = plan.mixes
    if not planned:
        raise InvalidRequest(catalogue.unknown_message())
    for seeds in plan.unfilled:
        names = ", ".join(seed.name for seed in seeds[:3])
        report.failures.append(
            f"no mix for the seeds {names}{' and more' if len(seeds) > 3 else ''}: the earlier "
            "mixes took every song left near them (fewer or smaller mixes, or a larger "
            "catalogue, give them one)"
        )
    if taste.not_in_catalogue:
        report.failures.append(
            f"{taste.not_in_catalogue} starred or played songs, albums or artists are not in "
            "the catalogue (not ingested yet?) and did not seed any mix"
        )
    if dry_run:
        report.mixes = [_mix_document(mix, None) for mix in planned]
    else:
        book = PlaylistBook(server, store)
        written = book.write_mixes(planned)
        report.mixes = [
            _mix_document(m, w) for m, w in zip(planned, written.playlists, strict=True)
        ]
        report.removed = written.removed
        report.failures += _left_out_failures(written.playlists)
    report.finished_at = now_iso()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def refresh_mixes(
    open_server: Callable[[], MediaServer],
    store_of: Callable[[], Store],
    options: MixOptions,
    trigger: str,
) -> MixesReport:
    """One served refresh: `run_mixes`, its outcome (a failure's message included) noted in
    the store beside the playlists it wrote, so a restarted server knows when it last ran."""
    started_at = now_iso()
    with open_server() as server:
        store = store_of()
        try:
            report = run_mixes(server, store, options, trigger=trigger)
        except SoundalikeError as error:
            report = MixesReport(started_at=started_at, trigger=trigger, error=error.message)
            report.finished_at = now_iso()
        try:
            PlaylistBook(server, store).note_run(report.to_dict())
        except SoundalikeError as error:  # the run itself is over; say why it is not noted
            log.warning("the mixes run could not be noted in the store: %s", error.message)
    return report


def _left_out_failures(playlists: Sequence[WrittenPlaylist]) -> list[str]:
    return [
        f"{p.name}: {len(p.left_out)} songs the server no longer knows were left out "
        "(ingest the server again to retire them)"
        for p in playlists
        if p.left_out
    ]


def seed_playlist_songs(
    store: Store,
    catalogue: ServerCatalogue,
    *,
    like: Sequence[Seed] = (),
    unlike: Sequence[Seed] = (),
    path: tuple[Seed, Seed] | None = None,
    limit: int = 25,
    max_per_artist: int | None = 2,
) -> list[PlannedSong]:
    """A radio of `like`/`unlike` (or the sonic path from path[0] to path[1], `limit` steps),
    as the server's songs in order. Tracks from other sources are left out; none at all from
    this server: InvalidRequest saying the catalogue does not know the server's songs."""
    if not 1 <= limit <= MAX_RADIO_LIMIT:
        raise InvalidRequest(f"a playlist holds 1 to {MAX_RADIO_LIMIT} songs")
    tracks: list[Track]
    if path is not None:
        found = path_from_seeds(store, path[0], path[1], steps=limit, max_per_artist=max_per_artist)
        tracks = [step.track for step in found.steps]
    else:
        # Read more than asked: tracks of other sources are dropped below.
        hits = radio(
            store,
            like,
            unlike,
            limit=min(MAX_RADIO_LIMIT, 2 * limit),
            max_per_artist=max_per_artist,
        )
        tracks = [hit.track for hit in hits]
    songs = [
        PlannedSong(song_id, track)
        for track in tracks
        if (song_id := catalogue.song_id(track)) is not None
    ][:limit]
    if not songs:
        raise InvalidRequest(catalogue.unknown_message())
    return songs


def write_seed_playlist(
    server: MediaServer, store: Store, name: str, songs: Sequence[PlannedSong]
) -> WrittenPlaylist:
    """Writes (or replaces in place) the playlist `name` that soundalike wrote."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidRequest("a playlist name is 1 to 200 characters")
    return PlaylistBook(server, store).write(name, songs)
