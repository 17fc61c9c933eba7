"""End to end: `soundalike serve` as a subprocess on loopback, spoken to over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.common import (
    environment_without_settings,
    free_port,
    running_server,
    serve_command,
)
from soundalike.ingest.devtools.synth import WrittenTrack

pytestmark = pytest.mark.slow

UPLOAD_LIMIT_MB = 1


@pytest.fixture(scope="module")
def server(
    copy_data_dir: Callable[[], Path], tiny_mert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = environment_without_settings() | {
        "HF_HUB_OFFLINE": "1",
        "SOUNDALIKE_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
        "SOUNDALIKE_DEVICE": "cpu",
    }
    log_path = tmp_path_factory.mktemp("e2e") / "server.log"
    command = serve_command(copy_data_dir(), port, "--model", str(tiny_mert_dir))
    with running_server(command, port, log_path=log_path, ready_timeout_s=60, env=env):
        yield f"http://127.0.0.1:{port}"
    # One JSON access-log line per request reached the server's log (the readiness polls too).
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(json.loads(line)["path"] == "/readyz" for line in lines)


def test_lookups_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        # The artists are read into memory in the background after start-up.
        deadline = time.monotonic() + 30
        while not http.get("/readyz").json()["lookups_in_memory"]:
            assert time.monotonic() < deadline, "the lists never reached memory"
            time.sleep(0.05)
        assert http.get("/readyz").json() == {
            "status": "ready",
            "artists": 4,
            "tracks": 12,
            "lookups_in_memory": True,
        }
        similar = http.get("/artists/eclair ensemble/similar", headers={"X-Request-ID": "e2e-1"})
        assert similar.status_code == 200 and similar.headers["x-request-id"] == "e2e-1"
        assert similar.json()["artist"] == "Éclair Ensemble"
        assert len(similar.json()["results"]) == 3
        missing = http.get("/artists/eclair ensembel")
        assert missing.status_code == 404 and missing.json()["suggestions"] == ["Éclair Ensemble"]
        assert http.get("/artists?limit=1001").status_code == 422
        assert "/search/audio" in http.get("/openapi.json").json()["paths"]


def test_upload_over_http(server: str, api_catalogue: list[WrittenTrack]) -> None:
    clip = next(t for t in api_catalogue if t.path.suffix == ".mp3")
    with httpx.Client(base_url=server, timeout=60) as http:
        response = http.post(
            "/search/audio", files={"file": (clip.path.name, clip.path.read_bytes())}
        )
        assert response.status_code == 200, response.text
        assert response.json()["artists"][0]["artist"] == clip.artist
        garbage = http.post("/search/audio", files={"file": ("x.ogg", os.urandom(50_000))})
        assert garbage.status_code == 415


def test_oversized_stream_is_cut_off_early(server: str) -> None:
    """A chunked upload far over the limit gets 413 after about the limit, not the whole body."""
    host, port = server.removeprefix("http://").split(":")
    head = (
        "POST /search/audio HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=cut\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    chunk = os.urandom(64 * 1024)
    sent = 0
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        sock.settimeout(0.05)
        try:
            deadline = time.monotonic() + 60
            # Up to 200 MB if the server never stopped reading.
            while sent < 200 * 1024 * 1024 and not answer and time.monotonic() < deadline:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                except TimeoutError:  # the server stopped reading
                    pass
                with contextlib.suppress(TimeoutError):
                    answer = sock.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(4096)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * UPLOAD_LIMIT_MB * 1024 * 1024
