"""`soundalike serve --library` as a real process: killed with SIGKILL in the middle of its scan
and started again, it ends complete with nothing duplicated; while it runs, `soundalike ingest`
on its data dir names it and hands it the folder with `--server`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
from served import answering, converge, free_port, serve_process

from soundalike.ingest.devtools.synth import synth_track, write_audio

RATE = 24_000
# Enough files that the scan outlasts several of the writer's 2 s flush intervals: tracks are
# reported (and counted in the status) only once flushed, and the kill must land mid-scan.
PER_ARTIST = 80
ARTISTS = ("Ana Ruiz", "Bo Lind", "Cy Moss")


def write_song(path: Path, artist_seed: int, track_seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = synth_track(
        artist_seed=artist_seed, track_seed=track_seed, seconds=4.0, sample_rate=RATE, channels=1
    )
    write_audio(path, audio, RATE)


def environment(tiny_mert_dir: Path, data_dir: Path, root: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}
    env.update(
        SOUNDALIKE_MODEL=str(tiny_mert_dir),
        SOUNDALIKE_DEVICE="cpu",
        # The fp32 path: with the tiny model, bf16 (auto on a CPU with native bf16) ingests the
        # 120 files within one flush interval, and the kill must land mid-scan.
        SOUNDALIKE_PRECISION="fp32",
        SOUNDALIKE_DATA_DIR=str(data_dir),
        SOUNDALIKE_LIBRARY=str(root),
        SOUNDALIKE_LIBRARY_DEBOUNCE_SECONDS="0.3",
        SOUNDALIKE_WORKERS="1",
        SOUNDALIKE_HOST="127.0.0.1",
        SOUNDALIKE_PORT=str(port),
        SOUNDALIKE_LOG_LEVEL="warning",
    )
    return env


def server(env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """`soundalike serve` in its own process group, killed (SIGKILL) at the end."""
    return serve_process(env, signal.SIGKILL)


def library(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/library", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def catalogue(url: str) -> dict[str, list[str]]:
    """Artist -> its track ids."""
    listed = httpx.get(f"{url}/artists", params={"limit": 1000}, timeout=10).json()["artists"]
    found: dict[str, list[str]] = {}
    for artist in listed:
        page = httpx.get(f"{url}/artists/{artist['artist']}", params={"limit": 1000}, timeout=10)
        found[artist["artist"]] = [t["track_id"] for t in page.json()["tracks"]]
    return found


def soundalike(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`soundalike ARGS` run to its end in a child process with `env`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "soundalike.api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_killed_mid_scan_a_server_resumes_and_ends_complete(
    tmp_path: Path, tiny_mert_dir: Path
) -> None:
    root = tmp_path / "music"
    for seed, artist in enumerate(ARTISTS):
        for track in range(PER_ARTIST):
            write_song(root / artist / f"{track:02d}.flac", seed, track)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = environment(tiny_mert_dir, tmp_path / "data", root, port)

    with server(env) as first:
        converge(answering(url), "the server answers at once")
        converge(lambda: library(url)["ingested"] >= 10, "the scan is under way", 300)
        state = library(url)
        assert state["state"] == "scanning", state  # still going: the kill lands mid-scan
        assert state["eta_seconds"] is not None and state["eta_seconds"] >= 0, state
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)

    with server(env):
        converge(answering(url), "the restarted server answers")
        converge(
            lambda: (
                {a: len(ids) for a, ids in catalogue(url).items()}
                == dict.fromkeys(ARTISTS, PER_ARTIST)
            ),
            "the resumed scan ends complete",
            300,
        )
        ids = [i for track_ids in catalogue(url).values() for i in track_ids]
        assert len(ids) == len(set(ids)) == len(ARTISTS) * PER_ARTIST
        assert httpx.get(f"{url}/readyz").json()["tracks"] == len(ARTISTS) * PER_ARTIST
        converge(lambda: library(url)["state"] == "watching", "watching after the scan")

        # `soundalike ingest` on the served data dir names the server and offers --server.
        new_folder = root / "Dee Vo"
        write_song(new_folder / "a.flac", 7, 0)
        write_song(new_folder / "b.flac", 7, 1)
        refused = soundalike(env, "ingest", str(new_folder))
        assert refused.returncode == 1
        assert "soundalike serve" in refused.stderr and f"--server {url}" in refused.stderr
        assert f"pid {refused.stderr.split('(pid ')[1].split(')')[0]}" in refused.stderr
        handed = soundalike(env, "ingest", str(new_folder), "--server", url)
        assert handed.returncode == 0, handed.stderr
        assert "handed" in handed.stdout
        converge(lambda: len(catalogue(url).get("Dee Vo", [])) == 2, "the handed-over folder")
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        refused_outside = soundalike(env, "ingest", str(outside), "--server", url)
        assert refused_outside.returncode == 1
        assert "not under the server's library folders" in refused_outside.stderr

        status = soundalike(env, "library", "status")
        assert status.returncode == 0, status.stderr
        assert "library: watching" in status.stdout and str(root) in status.stdout
