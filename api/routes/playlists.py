"""Radio and paths saved as playlists: written to the media server the catalogue came from
(SOUNDALIKE_MIXES_URL), or downloaded as an M3U8 file for players on this machine."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from soundalike.api.deps import ServicesDep, SettingsDep, StoreDep
from soundalike.api.errors import error_responses
from soundalike.api.routes.mixes import MixSong
from soundalike.api.schemas import ErrorBody
from soundalike.core.errors import InvalidRequest, TrackNotFound
from soundalike.core.types import Track
from soundalike.mixes.m3u8 import MEDIA_TYPE, m3u8_text
from soundalike.mixes.plan import PlannedSong
from soundalike.mixes.run import write_seed_playlist
from soundalike.mixes.taste import ServerCatalogue
from soundalike.search.store import Store

router = APIRouter(tags=["mixes and playlists"])

MAX_PLAYLIST_TRACKS = 200


class PlaylistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"\S", description="The name.")
    track_ids: list[UUID] = Field(
        min_length=1, max_length=MAX_PLAYLIST_TRACKS, description="Tracks, in playlist order."
    )


class SavedPlaylist(BaseModel):
    playlist_id: str = Field(description="The playlist's id on the media server.")
    name: str
    server: str = Field(description="The media server (no credentials).")
    replaced: bool = Field(description="An earlier playlist of that name was replaced in place.")
    songs: list[MixSong]
    left_out: int = Field(
        description="Tracks left out: not songs of that server, or songs it no longer knows."
    )


_CONFLICT = {
    "model": ErrorBody,
    "description": "No media server set (SOUNDALIKE_MIXES_URL), or a playlist of that name that "
    "soundalike did not write is there (left alone).",
}


def _tracks_in_order(store: Store, track_ids: list[UUID]) -> list[Track]:
    wanted = list(dict.fromkeys(str(t) for t in track_ids))
    found = {t.track_id: t for t in store.get_tracks(wanted)}
    missing = [t for t in wanted if t not in found]
    if missing:
        raise TrackNotFound(missing[0])
    return [found[t] for t in wanted]


@router.post(
    "/playlists",
    status_code=201,
    response_model=SavedPlaylist,
    responses={
        **error_responses(400, 401, 404, 422, 502, 503, not_found=ErrorBody),
        409: _CONFLICT,
    },
)
def save_playlist(
    request: Annotated[PlaylistRequest, Body()], store: StoreDep, services: ServicesDep
) -> SavedPlaylist:
    """Writes the tracks as a playlist of the media server's user (SOUNDALIKE_MIXES_URL); a
    playlist of that name that soundalike wrote is replaced in place, keeping its id."""
    with services.media_server() as server:  # 409 first when no media server is set
        tracks = _tracks_in_order(store, request.track_ids)
        catalogue = ServerCatalogue(store, server.address)
        songs = [
            PlannedSong(song_id, track)
            for track in tracks
            if (song_id := catalogue.song_id(track)) is not None
        ]
        if not songs:
            raise InvalidRequest(f"none of these tracks is a song of {server.display}")
        written = write_seed_playlist(server, store, request.name, songs)
    return SavedPlaylist(
        playlist_id=written.playlist_id,
        name=written.name,
        server=server.display,
        replaced=written.replaced,
        songs=[MixSong.model_validate(song.to_dict()) for song in written.songs],
        left_out=len(request.track_ids) - len(written.songs),
    )


@router.post(
    "/playlists/m3u8",
    response_class=Response,
    responses={
        200: {
            "description": "An M3U8 playlist: each entry the file's path relative to the "
            "library folder it lies in (save the file there), else its absolute path.",
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 404, 422, not_found=ErrorBody),
    },
)
def playlist_m3u8(
    request: Annotated[PlaylistRequest, Body()], store: StoreDep, settings: SettingsDep
) -> Response:
    """The tracks as an M3U8 file to download, for players on the machine with the music."""
    tracks = _tracks_in_order(store, request.track_ids)
    text, left_out = m3u8_text(request.name, tracks, settings.library)
    if len(tracks) == left_out:
        raise InvalidRequest("none of these tracks is a file on this machine")
    filename = "".join(c if c.isalnum() or c in " -_." else "_" for c in request.name.strip())
    return Response(
        text.encode("utf-8"),
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": 'attachment; filename="playlist.m3u8"; '
            f"filename*=UTF-8''{quote(filename or 'playlist')}.m3u8"
        },
    )
