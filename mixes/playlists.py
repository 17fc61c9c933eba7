"""Playlists written to a listener's server, and the note of which ones soundalike wrote.

soundalike replaces or deletes only playlists it wrote: their ids are noted in the store, per
server and user (`Store.media_server_record`), as they are written. A name held by a playlist
it did not write is never touched: the write is refused before anything changes. Each
playlist is written whole, in one request (createPlaylist, with the playlist's id to replace
its songs in place), so a run that fails leaves every playlist either as it was or as planned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from soundalike.core.errors import Conflict
from soundalike.ingest.sources.subsonic_client import SubsonicNotFound
from soundalike.mixes.media_server import MediaServer, ServerPlaylist
from soundalike.mixes.plan import PlannedMix, PlannedSong
from soundalike.search.store import Store

PlaylistKind = Literal["playlist", "mix"]


@dataclass(frozen=True)
class WrittenPlaylist:
    playlist_id: str
    name: str
    songs: list[PlannedSong]
    replaced: bool
    # Songs the server no longer knows, left out of the playlist (their ids).
    left_out: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playlist_id": self.playlist_id,
            "name": self.name,
            "songs": [song.to_dict() for song in self.songs],
        }


@dataclass(frozen=True)
class MixesWritten:
    playlists: list[WrittenPlaylist]
    removed: list[str]  # names of mixes deleted because fewer were needed


class PlaylistBook:
    """One server user's playlists as soundalike wrote them, and the writing of more."""

    def __init__(self, server: MediaServer, store: Store) -> None:
        self.server = server
        self.store = store
        self.record = store.media_server_record(server.owner)

    @property
    def written(self) -> dict[str, dict[str, str]]:
        """{playlist id: {"name", "kind"}} of the playlists soundalike wrote there."""
        return _written(self.record)

    def _note(self, playlist_id: str, name: str, kind: PlaylistKind) -> None:
        def change(record: dict[str, Any]) -> dict[str, Any]:
            written = {**_written(record), playlist_id: {"name": name, "kind": kind}}
            return {**record, "playlists": written}

        self.record = self.store.update_media_server_record(self.server.owner, change)

    def _forget(self, playlist_ids: Iterable[str]) -> None:
        gone = set(playlist_ids)

        def change(record: dict[str, Any]) -> dict[str, Any]:
            kept = {k: v for k, v in _written(record).items() if k not in gone}
            return {**record, "playlists": kept}

        self.record = self.store.update_media_server_record(self.server.owner, change)

    def note_run(self, run: dict[str, Any]) -> None:
        """Keeps the last mixes run's summary with the record (GET /mixes after a restart)."""
        self.record = self.store.update_media_server_record(
            self.server.owner, lambda record: {**record, "last_mixes_run": run}
        )

    def _mine_on_server(self) -> tuple[dict[str, ServerPlaylist], list[ServerPlaylist]]:
        """(the playlists soundalike wrote that the server still lists, by id; the others)."""
        listed = self.server.playlists()
        written = self.written
        mine = {p.playlist_id: p for p in listed if p.playlist_id in written}
        gone = set(written) - set(mine)
        if gone:  # deleted on the server by the listener: nothing left to replace
            self._forget(gone)
        return mine, [p for p in listed if p.playlist_id not in written]

    def _refuse_taken(self, names: Iterable[str], others: Sequence[ServerPlaylist]) -> None:
        user = self.server.address.username
        taken = {
            p.name for p in others if p.owner is None or user is None or p.owner == user
        } & set(names)
        if taken:
            listed = ", ".join(repr(n) for n in sorted(taken))
            raise Conflict(
                f"{self.server.display} already has a playlist named {listed} that soundalike "
                "did not write; it was left alone and nothing was written. Rename it, or choose "
                "another name"
            )

    def write(self, name: str, songs: Sequence[PlannedSong]) -> WrittenPlaylist:
        """The playlist `name`: the one of that name soundalike wrote, replaced in place, or a
        new one. Conflict when a playlist of that name that soundalike did not write exists."""
        mine, others = self._mine_on_server()
        self._refuse_taken([name], others)
        same_name = [p for p in mine.values() if p.name == name]
        if any(self.written[p.playlist_id]["kind"] == "mix" for p in same_name):
            raise Conflict(
                f"{name!r} is one of soundalike's mixes on {self.server.display} (`soundalike "
                "mixes` rewrites it); pick another name"
            )
        replace_id = same_name[0].playlist_id if same_name else None
        return self._write_one(name, songs, replace_id, "playlist")

    def write_mixes(self, mixes: Sequence[PlannedMix]) -> MixesWritten:
        """Each planned mix written (its earlier playlist replaced in place: by name first, else
        any mix no longer needed, renamed), then the mixes no longer needed deleted."""
        mine, others = self._mine_on_server()
        self._refuse_taken([mix.name for mix in mixes], others)
        earlier = [p for p in mine.values() if self.written[p.playlist_id]["kind"] == "mix"]
        names = {mix.name for mix in mixes}
        saved = sorted({p.name for p in mine.values() if p not in earlier} & names)
        if saved:
            raise Conflict(
                f"{', '.join(repr(n) for n in saved)} on {self.server.display} is a playlist "
                "soundalike saved from seeds, not a mix; nothing was written. Rename it, or give "
                "the mixes another prefix"
            )
        by_name = {p.name: p.playlist_id for p in earlier}
        spare = [p.playlist_id for p in earlier if p.name not in names]
        written: list[WrittenPlaylist] = []
        for mix in mixes:
            replace_id = by_name.get(mix.name) or (spare.pop(0) if spare else None)
            written.append(self._write_one(mix.name, mix.songs, replace_id, "mix"))
        removed = []
        for playlist_id in spare:
            self.server.delete_playlist(playlist_id)
            removed.append(mine[playlist_id].name)
            self._forget([playlist_id])
        return MixesWritten(written, removed)

    def _write_one(
        self,
        name: str,
        songs: Sequence[PlannedSong],
        replace_id: str | None,
        kind: PlaylistKind,
    ) -> WrittenPlaylist:
        """One request; when the server says a song id is unknown, the songs it no longer knows
        are found, left out, and the playlist written once more."""
        kept = list(songs)
        left_out: list[str] = []
        try:
            playlist_id = self.server.write_playlist(
                name, [s.song_id for s in kept], replace_id=replace_id
            )
        except SubsonicNotFound:
            gone = self.server.unknown_songs(s.song_id for s in kept)
            if replace_id is not None and not gone:
                # The playlist itself went away between the listing and the write.
                self._forget([replace_id])
                replace_id = None
            elif not gone:
                raise
            kept = [s for s in kept if s.song_id not in gone]
            left_out = sorted(gone)
            playlist_id = self.server.write_playlist(
                name, [s.song_id for s in kept], replace_id=replace_id
            )
        self._note(playlist_id, name, kind)
        return WrittenPlaylist(playlist_id, name, kept, replace_id is not None, left_out)


def _written(record: dict[str, Any]) -> dict[str, dict[str, str]]:
    written = record.get("playlists")
    return dict(written) if isinstance(written, dict) else {}
