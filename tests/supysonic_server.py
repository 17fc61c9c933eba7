"""A real Subsonic server for the tests: Supysonic on loopback, from its own virtualenv.

`make test` builds `.venv-supysonic` (Supysonic + waitress, kept apart from soundalike's
Flask/Pillow-free environment); SOUNDALIKE_TEST_SUPYSONIC_VENV points elsewhere. Each server has
its own working folder (supysonic.conf, SQLite database, cache), music folder, user and free
port; every process started here is stopped, with its children, when the session ends.

Fixtures (imported by tests/conftest.py, so every test package can use them):
- `supysonic`: one shared server over a small generated catalogue (read-only use).
- `supysonic_factory`: `start(name, artists=..., tracks_per_artist=...)` for a private server a
  test may change (remove songs, stop and restart it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from soundalike.ingest.devtools.synth import WrittenTrack, write_catalogue

REPO = Path(__file__).resolve().parent.parent
SUPYSONIC_VENV = Path(os.environ.get("SOUNDALIKE_TEST_SUPYSONIC_VENV", REPO / ".venv-supysonic"))
START_TIMEOUT_S = 60.0
USERNAME = "listener"
# Not a word the catalogue or any message could contain by chance: tests look for it in logs.
PASSWORD = "pw-Zq8!x7 ünïcode"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SupysonicServer:
    """One Supysonic instance: its folders, its user, its port and its process."""

    home: Path
    music: Path
    port: int
    tracks: list[WrittenTrack]
    username: str = USERNAME
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """What a user types after `soundalike ingest`."""
        return f"subsonic+http://{self.username}@127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        # HOME keeps ~/.supysonic of whoever runs the tests out of the configuration.
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "LANG": "C.UTF-8"}

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(SUPYSONIC_VENV / "bin" / "supysonic-cli"), *args],
            cwd=self.home,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"supysonic-cli {args[0]} failed: {done.stderr or done.stdout}")
        return done.stdout

    def scan(self) -> None:
        """Rescans the music folder (after files were added or removed)."""
        self.cli("folder", "scan", "--foreground", "music")

    def start(self) -> None:
        if self.process is not None:
            return
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - the process writes it
        self.process = subprocess.Popen(
            [
                str(SUPYSONIC_VENV / "bin" / "supysonic-server"),
                *("-S", "waitress", "-h", "127.0.0.1", "-p", str(self.port)),
            ],
            cwd=self.home,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"supysonic-server exited with {self.process.returncode}: "
                    f"{(self.home / 'server.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                params = {"u": "x", "p": "x", "c": "t", "v": "1.12.0"}
                ping = f"http://127.0.0.1:{self.port}/rest/ping.view"
                answer = httpx.get(ping, params=params, timeout=2.0)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"supysonic-server did not answer on port {self.port} in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)

    def song_file(self, title: str) -> Path:
        return next(t.path for t in self.tracks if t.title == title)


class SupysonicFactory:
    """Starts Supysonic servers over generated catalogues; stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[SupysonicServer] = []

    def start(
        self,
        name: str,
        *,
        artists: int = 3,
        tracks_per_artist: int = 2,
        seconds: float = 6.0,
        formats: tuple[str, ...] = ("wav", "flac"),
        sample_rate: int = 44100,
    ) -> SupysonicServer:
        for tool in ("supysonic-cli", "supysonic-server"):
            if not (SUPYSONIC_VENV / "bin" / tool).exists():
                pytest.fail(
                    f"{SUPYSONIC_VENV}/bin/{tool} is missing: run `make .venv-supysonic/.installed`"
                    " (make test does) or set SOUNDALIKE_TEST_SUPYSONIC_VENV"
                )
        home = self.base / name
        music = home / "music"
        music.mkdir(parents=True)
        tracks = write_catalogue(
            music,
            artists=artists,
            tracks_per_artist=tracks_per_artist,
            seconds=seconds,
            formats=formats,
            seed=len(self.servers),
            sample_rate=sample_rate,
        )
        (home / "cache").mkdir()
        (home / "supysonic.conf").write_text(
            "[base]\n"
            f"database_uri = sqlite:///{home / 'supysonic.db'}\n"
            "[webapp]\n"
            f"cache_dir = {home / 'cache'}\n"
            "mount_webui = no\n"
            "log_level = WARNING\n"
            "[daemon]\n"
            f"socket = {home / 'daemon.sock'}\n"
            "run_watcher = no\n"
        )
        server = SupysonicServer(home=home, music=music, port=_free_port(), tracks=tracks)
        self.servers.append(server)
        server.cli("user", "add", server.username, "-p", server.password)
        server.cli("folder", "add", "music", str(music))
        server.scan()
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def supysonic_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupysonicFactory]:
    factory = SupysonicFactory(tmp_path_factory.mktemp("supysonic"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def supysonic(supysonic_factory: SupysonicFactory) -> SupysonicServer:
    """A shared Supysonic server: 3 artists x 2 songs (WAV and FLAC, tagged). Do not change it;
    use `supysonic_factory.start(...)` for a server a test alters."""
    return supysonic_factory.start("shared")
