"""The listener's sonic mixes, kept as playlists on their media server by `soundalike serve`
(SOUNDALIKE_MIXES_URL): the last refresh, and a refresh now."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from soundalike.api.deps import MixesDep
from soundalike.api.errors import error_responses
from soundalike.api.schemas import ErrorBody
from soundalike.core.errors import FeatureOff

router = APIRouter(tags=["mixes and playlists"])


class MixSong(BaseModel):
    id: str = Field(description="The media server's song id.")
    artist: str
    title: str | None


class MixSeed(BaseModel):
    kind: Literal["song", "album", "artist"]
    id: str = Field(description="The media server's id of the song, album or artist.")
    name: str


class Mix(BaseModel):
    playlist_id: str | None = Field(description="The playlist's id on the server.")
    name: str
    songs: list[MixSong] = Field(description="In playlist order.")
    seeds: list[MixSeed] = Field(
        description="What the listener starred or played that it grew from."
    )


class MixesRun(BaseModel):
    started_at: str
    finished_at: str | None
    trigger: str = Field(description="`schedule`, `library` (a big enough change), `request`.")
    ok: bool
    error: str | None = Field(
        description="Why the run failed; the playlists were left as they were."
    )
    dry_run: bool
    mixes: list[Mix]
    removed: list[str] = Field(description="Mixes deleted because fewer were needed.")
    failures: list[str] = Field(description="What went wrong without failing the run.")
    seconds: float | None


class MixesState(BaseModel):
    enabled: bool = Field(description="Whether this server keeps mixes (SOUNDALIKE_MIXES_URL).")
    server: str | None = Field(description="The media server (no credentials), when enabled.")
    every_seconds: float | None = Field(description="The refresh interval; null: none.")
    after_tracks: int | None = Field(
        description="A refresh follows this many ingested tracks; null: none."
    )
    running: bool
    requested: bool = Field(description="A refresh is asked for and starts next.")
    next_run_at: str | None
    tracks_since_last_run: int
    last_run: MixesRun | None


_OFF_STATE = MixesState(
    enabled=False,
    server=None,
    every_seconds=None,
    after_tracks=None,
    running=False,
    requested=False,
    next_run_at=None,
    tracks_since_last_run=0,
    last_run=None,
)
_OFF = {"model": ErrorBody, "description": "The server keeps no mixes (SOUNDALIKE_MIXES_URL)."}


@router.get("/mixes", response_model=MixesState, responses=error_responses(401))
def mixes_state(mixes: MixesDep) -> MixesState:
    """The mixes: where they are written, when the next refresh is due, the last run."""
    if mixes is None:
        return _OFF_STATE
    return MixesState.model_validate(mixes.state())


@router.post(
    "/mixes/refresh",
    status_code=202,
    response_model=MixesState,
    responses={**error_responses(401), 409: _OFF},
)
def mixes_refresh(mixes: MixesDep) -> MixesState:
    """Refreshes the mixes now, in the background (`GET /mixes` follows it)."""
    if mixes is None:
        raise FeatureOff(
            "this server keeps no mixes: set SOUNDALIKE_MIXES_URL to the listener's Subsonic "
            "server (subsonic+http(s)://USER@HOST:PORT) and SOUNDALIKE_SUBSONIC_PASSWORD"
        )
    mixes.request("request")
    return MixesState.model_validate(mixes.state())
