"""`soundalike serve` keeps the mixes fresh: a real server process with SOUNDALIKE_MIXES_URL
refreshes them on its schedule and when asked, against a real Subsonic server (Supysonic), and
a restart remembers when the last run was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from served import answering, converge, free_port, serve_process
from subsonic_listener import IngestedServer, Listener

from soundalike.api.main import create_app
from soundalike.api.settings import Settings


@contextmanager
def serving(ingested: IngestedServer, every: str) -> Iterator[str]:
    """`soundalike serve` in its own process group, stopped (children included) at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}
    env.update(
        SOUNDALIKE_MODEL=str(ingested.model_dir),
        SOUNDALIKE_DEVICE="cpu",
        SOUNDALIKE_DATA_DIR=str(ingested.data_dir),
        SOUNDALIKE_HOST="127.0.0.1",
        SOUNDALIKE_PORT=str(port),
        SOUNDALIKE_LOG_LEVEL="warning",
        SOUNDALIKE_MIXES_URL=ingested.server.url,
        SOUNDALIKE_SUBSONIC_PASSWORD=ingested.server.password,
        SOUNDALIKE_MIXES_EVERY=every,
        SOUNDALIKE_MIXES_COUNT="2",
        SOUNDALIKE_MIXES_SIZE="4",
    )
    url = f"http://127.0.0.1:{port}"
    with serve_process(env):
        converge(answering(url), "the server answers")
        yield url


def mixes(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/mixes", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def last_run(url: str) -> dict[str, Any]:
    return mixes(url)["last_run"] or {}


def test_the_server_refreshes_the_mixes_on_schedule_on_request_and_after_a_restart(
    ingested_server: IngestedServer, listener: Listener
) -> None:
    songs = listener.songs()
    listener.star(song=songs[0]["id"])
    listener.star(artist=songs[-1]["artistId"])

    with serving(ingested_server, every="3s") as url:
        converge(lambda: last_run(url).get("ok") is True, "the first scheduled run")
        first = last_run(url)
        assert first["trigger"] == "schedule"
        assert [m["name"] for m in first["mixes"]] == ["Sonic Mix 1", "Sonic Mix 2"]
        for mix in first["mixes"]:
            assert listener.playlist_songs(mix["playlist_id"]) == [s["id"] for s in mix["songs"]]
        state = mixes(url)
        assert state["enabled"] and state["server"] == ingested_server.server.url
        assert state["every_seconds"] == 3.0

        converge(lambda: last_run(url)["started_at"] != first["started_at"], "a second run")
        assert [m["playlist_id"] for m in last_run(url)["mixes"]] == [
            m["playlist_id"] for m in first["mixes"]
        ]

        asked = httpx.post(f"{url}/mixes/refresh", timeout=10)
        assert asked.status_code == 202
        converge(lambda: last_run(url).get("trigger") == "request", "the requested run")
        names = [str(p["name"]) for p in listener.playlists()]
        assert names.count("Sonic Mix 1") == names.count("Sonic Mix 2") == 1
        finished = last_run(url)["finished_at"]

    # Restarted with a day's interval: the last run is read back, the next is a day after it.
    with serving(ingested_server, every="24h") as url:
        state = mixes(url)
        assert state["last_run"]["finished_at"] == finished
        due = datetime.fromisoformat(state["next_run_at"]) - datetime.fromisoformat(finished)
        assert 24 * 3600 - 5 <= due.total_seconds() <= 24 * 3600 + 5
        assert not state["running"]


def test_a_server_without_mixes_says_so(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_key=None, mixes_url=None)
    with TestClient(create_app(settings)) as client:
        state = client.get("/mixes").json()
        assert state["enabled"] is False and state["last_run"] is None
        refused = client.post("/mixes/refresh")
        assert refused.status_code == 409
        assert "SOUNDALIKE_MIXES_URL" in refused.json()["detail"]
        saved = client.post("/playlists", json={"name": "x", "track_ids": [
            "e3e70682-c209-4cac-a29f-6fbed82c07cd"]})  # fmt: skip
        assert saved.status_code == 409
        assert "SOUNDALIKE_MIXES_URL" in saved.json()["detail"]
