"""`soundalike serve --library DIR` with a real watcher, a real uvicorn and real queries: every
change on disk converges in what the API answers, and queries never fail meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from soundalike.api.main import create_app
from soundalike.api.settings import Settings
from soundalike.ingest.devtools.synth import synth_track, write_audio

RATE = 24_000
API_KEY = "library-test-key-0123456789"


def write_song(path: Path, artist_seed: int, track_seed: int) -> Path:
    """A 4 s, 24 kHz mono FLAC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = synth_track(
        artist_seed=artist_seed, track_seed=track_seed, seconds=4.0, sample_rate=RATE, channels=1
    )
    return write_audio(path, audio, RATE)


def converge(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"did not converge: {what}"
        time.sleep(0.2)


class Querier:
    """Asks "artists like X", the artist list and the library state over and over in a thread,
    keeping every answer that was not a 200."""

    def __init__(self, http: httpx.Client, artist: str) -> None:
        self.http = http
        self.artist = artist
        self.failures: list[str] = []
        self.answered = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        routes = [f"/artists/{self.artist}/similar?limit=5", "/artists?limit=100", "/library"]
        while not self._stop.is_set():
            for route in routes:
                try:
                    response = self.http.get(route)
                except httpx.HTTPError as error:
                    self.failures.append(f"{route}: {error!r}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{route}: {response.status_code} {response.text}")
                self.answered += 1
            time.sleep(0.02)

    @classmethod
    @contextmanager
    def running(cls, http: httpx.Client, artist: str) -> Iterator[Querier]:
        """A Querier asking in its thread for as long as the `with` lasts."""
        querier = cls(http, artist)
        thread = threading.Thread(target=querier._run, daemon=True)
        thread.start()
        try:
            yield querier
        finally:
            querier._stop.set()
            thread.join(30)


@pytest.fixture
def served_library(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    serving: Callable[[FastAPI], AbstractContextManager[tuple[str, int]]],
) -> Callable[..., AbstractContextManager[httpx.Client]]:
    @contextmanager
    def serve(*roots: Path, **overrides: Any) -> Iterator[httpx.Client]:
        values: dict[str, Any] = {
            "library": list(roots),
            "library_debounce_seconds": 0.3,
            "workers": 1,
            "api_key": API_KEY,
        }
        values.update(overrides)
        settings = make_settings(tmp_path / "data", **values)
        with serving(create_app(settings)) as (host, port):
            headers = {"Authorization": f"Bearer {API_KEY}"} if values["api_key"] else {}
            with httpx.Client(
                base_url=f"http://{host}:{port}", headers=headers, timeout=30
            ) as http:
                yield http

    return serve


def artists(http: httpx.Client) -> dict[str, int]:
    response = http.get("/artists", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {a["artist"]: a["track_count"] for a in response.json()["artists"]}


def track_ids(http: httpx.Client, artist: str) -> dict[str, str]:
    """Title (the file name's stem for untagged files) -> track id of the artist's tracks."""
    response = http.get(f"/artists/{artist}", params={"limit": 1000})
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {t["title"]: t["track_id"] for t in response.json()["tracks"]}


def library(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/library")
    assert response.status_code == 200, response.text
    return response.json()


def settled(http: httpx.Client) -> bool:
    state = library(http)
    return state["state"] == "watching" and state["queued"] == 0


def test_a_served_library_follows_its_folder_while_answering_queries(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    root = tmp_path / "music"
    for track in range(3):
        write_song(root / "Ana Ruiz" / f"{track}.flac", 0, track)
    write_song(root / "Bo Lind" / "0.flac", 1, 0)
    with served_library(root) as http:
        assert http.get("/library", headers={"Authorization": ""}).status_code == 401
        converge(lambda: artists(http) == {"Ana Ruiz": 3, "Bo Lind": 1}, "the first scan")
        converge(lambda: settled(http), "watching after the scan")
        state = library(http)
        assert state["files_seen"] == 4 and state["ingested"] == 4
        assert state["roots"] == [str(root)] and state["last_scan_finished"] is not None

        with Querier.running(http, "Ana Ruiz") as querier:
            # A new artist folder, then 200 files at once (a folder moved in).
            write_song(root / "Cy Moss" / "0.flac", 2, 0)
            converge(lambda: artists(http).get("Cy Moss") == 1, "a new artist folder")
            staging = tmp_path / "staging" / "Many Voices"
            for track in range(200):
                write_song(staging / f"{track:03d}.flac", 3, track)
            os.rename(staging, root / "Many Voices")
            converge(lambda: artists(http).get("Many Voices") == 200, "200 files at once")

            # Moved and renamed: same ids, nothing re-embedded.
            before = track_ids(http, "Ana Ruiz")
            os.rename(root / "Ana Ruiz" / "0.flac", root / "Ana Ruiz" / "zero.flac")
            (root / "Ana Ruiz" / "Live").mkdir()
            os.rename(root / "Ana Ruiz" / "1.flac", root / "Ana Ruiz" / "Live" / "1.flac")
            expected = {"zero": before["0"], "1": before["1"], "2": before["2"]}
            converge(lambda: track_ids(http, "Ana Ruiz") == expected, "moved and renamed files")

            # Retagged: one new point replaces the old one.
            from mutagen.flac import FLAC

            tagged = FLAC(root / "Bo Lind" / "0.flac")
            tagged["title"] = "Retitled"
            tagged.save()
            old_id = track_ids(http, "Bo Lind")["0"]
            converge(lambda: list(track_ids(http, "Bo Lind")) == ["Retitled"], "a retagged file")
            assert track_ids(http, "Bo Lind")["Retitled"] != old_id
            assert artists(http)["Bo Lind"] == 1
            assert http.get(f"/tracks/{old_id}").status_code == 404

            # A file deleted, then a whole folder: the artist disappears.
            (root / "Many Voices" / "000.flac").unlink()
            converge(lambda: artists(http).get("Many Voices") == 199, "a deleted file")
            shutil.rmtree(root / "Many Voices")
            converge(lambda: "Many Voices" not in artists(http), "a deleted folder")
            assert http.get("/artists/Many Voices").status_code == 404

            # A corrupt file and a symlink escaping the root: reported, never stored.
            (root / "Cy Moss" / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 4000)
            secret = write_song(tmp_path / "elsewhere" / "secret.flac", 5, 5)
            (root / "Cy Moss" / "escape.flac").symlink_to(secret)

            def reported() -> bool:
                page = http.get("/library/failures", params={"limit": 10}).json()
                reasons = {Path(f["path"]).name: f["reason"] for f in page["failures"]}
                return "broken.flac" in reasons and "escape.flac" in reasons

            converge(reported, "failures reported")
            converge(lambda: settled(http), "settled")
            page = http.get("/library/failures", params={"limit": 1, "offset": 0}).json()
            assert page["total"] == 2 and len(page["failures"]) == 1
            assert "outside the library roots" in next(
                f["reason"] for f in library(http)["failures"] if "escape" in f["path"]
            )
            assert artists(http) == {"Ana Ruiz": 3, "Bo Lind": 1, "Cy Moss": 1}
            assert http.get("/readyz").json()["tracks"] == 5  # nothing duplicated

        assert querier.answered > 50
        assert querier.failures == []
        assert (
            library(http)["removed"] == 200
        )  # a retagged file's old point is replaced, not counted


@contextmanager
def polled_library(
    served_library: Callable[..., AbstractContextManager[httpx.Client]],
    root: Path,
    *,
    rescan_seconds: float,
) -> Iterator[httpx.Client]:
    """A server on a library of one song by Ana Ruiz, not watched (polled every
    `rescan_seconds`), once its first scan has found the song."""
    write_song(root / "Ana Ruiz" / "0.flac", 0, 0)
    with served_library(root, library_watch=False, library_rescan_seconds=rescan_seconds) as http:
        converge(lambda: artists(http) == {"Ana Ruiz": 1}, "the first scan")
        yield http


def test_polling_fallback_and_rescan_now(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    root = tmp_path / "music"
    with polled_library(served_library, root, rescan_seconds=3600) as http:
        converge(lambda: library(http)["state"] == "idle", "idle: no events followed")
        write_song(root / "Bo Lind" / "0.flac", 1, 0)
        time.sleep(1.5)
        assert "Bo Lind" not in artists(http)  # no events, no rescan due yet
        response = http.post("/library/scan")
        assert response.status_code == 202 and response.json()["state"] == "scanning"
        converge(lambda: artists(http) == {"Ana Ruiz": 1, "Bo Lind": 1}, "rescan now")
        outside = tmp_path / "other"
        outside.mkdir()
        refused = http.post("/library/scan", json={"path": str(outside)})
        assert refused.status_code == 422 and "not under" in refused.json()["detail"]


def test_periodic_rescan_without_events(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    root = tmp_path / "music"
    with polled_library(served_library, root, rescan_seconds=1.0) as http:
        write_song(root / "Bo Lind" / "0.flac", 1, 0)
        (root / "Ana Ruiz" / "0.flac").unlink()
        converge(lambda: artists(http) == {"Bo Lind": 1}, "the periodic rescan")


def test_progress_arrives_as_server_sent_events(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "0.flac", 0, 0)
    with served_library(root) as http:
        converge(lambda: settled(http), "the first scan")
        states: list[dict[str, Any]] = []
        with http.stream("GET", "/library/events", timeout=60) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    states.append(json.loads(line.removeprefix("data: ")))
                    if len(states) == 1:
                        write_song(root / "Bo Lind" / "0.flac", 1, 0)
                    elif states[-1]["ingested"] == 2 and states[-1]["state"] == "watching":
                        break
        assert states[0]["ingested"] == 1
        # The change arrived on the open stream, without asking again (a one-file batch may
        # start and end between two events, so "scanning" itself is not always seen).
        assert len(states) >= 2 and states[-1]["files_seen"] == 2
        assert set(states[0]) == set(library(http))


def test_a_server_without_library_folders_says_so(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    with served_library(api_key=None) as http:
        state = library(http)
        assert state["state"] == "off" and state["roots"] == []
        refused = http.post("/library/scan")
        assert refused.status_code == 409 and "SOUNDALIKE_LIBRARY" in refused.json()["detail"]
        response = http.get("/library/events", timeout=10)  # one event, then the end
        assert response.text.startswith("event: status\ndata: ")


def test_two_roots_and_adding_a_root_over_http(
    tmp_path: Path, served_library: Callable[..., AbstractContextManager[httpx.Client]]
) -> None:
    first, second, third = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    write_song(first / "Ana Ruiz" / "0.flac", 0, 0)
    write_song(second / "Bo Lind" / "0.flac", 1, 0)
    write_song(third / "Cy Moss" / "0.flac", 2, 0)
    with served_library(first, second, library_allow_new_roots=True) as http:
        converge(lambda: artists(http) == {"Ana Ruiz": 1, "Bo Lind": 1}, "two roots")
        response = http.post("/library/scan", json={"path": str(third)})
        assert response.status_code == 202
        assert str(third) in response.json()["roots"]
        converge(lambda: artists(http).get("Cy Moss") == 1, "a root added over HTTP")
        write_song(third / "Cy Moss" / "1.flac", 2, 1)
        converge(lambda: artists(http).get("Cy Moss") == 2, "the added root is watched")


def test_serve_flags_name_the_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from soundalike.api.cli import build_parser, main, settings_from

    args = build_parser().parse_args(
        ["serve", "--library", str(tmp_path / "a"), "--library", str(tmp_path / "b"),
         "--artist-from", "tags"]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.library == [tmp_path / "a", tmp_path / "b"]
    assert settings.library_artist_from == "tags"
    code = main(["serve", "--library", str(tmp_path), "--http-workers", "2", "--qdrant-url",
                 "http://127.0.0.1:1"])  # fmt: skip
    assert code == 2
    assert "--library needs --http-workers 1" in capsys.readouterr().err


def test_library_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDALIKE_LIBRARY", "/music/a, /music/b")
    monkeypatch.setenv("SOUNDALIKE_LIBRARY_EXCLUDE", "Podcasts,*.part")
    settings = Settings()
    assert settings.library == [Path("/music/a"), Path("/music/b")]
    assert settings.library_exclude == ["Podcasts", "*.part"]
