"""POST /search/audio against hostile clients and hostile files: never a 500, never a hang.

Slow clients and early refusals need a real HTTP server (the test client reads a request body
in one piece), so those tests run uvicorn in a thread and speak HTTP over a socket.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import hostile
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hostile import (
    misbehaving_decode,
    watch_opens,
    write_float_wav,
    write_hls_playlist,
)

from soundalike.api.deps import get_upload_embedder
from soundalike.api.main import create_app
from soundalike.api.settings import Settings
from soundalike.api.uploads import UploadEmbedder
from soundalike.ingest.devtools.synth import WrittenTrack

ClientFactory = Callable[..., AbstractContextManager[TestClient]]
BOUNDARY = "hardening-boundary"


def post_file(client: TestClient, name: str, data: bytes) -> Any:
    return client.post("/search/audio", files={"file": (name, data)})


def _tone(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[np.newaxis]


# --- hostile files -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [math.nan, math.inf])
def test_float_wav_with_a_non_finite_sample_is_415_not_500(
    client: TestClient, tmp_path: Path, upload_tmp: Path, bad_value: float
) -> None:
    samples = _tone(12.0)
    samples[0, 6 * 44100] = bad_value
    data = write_float_wav(tmp_path / "x.wav", samples, 44100).read_bytes()
    response = post_file(client, "poisoned.wav", data)
    assert response.status_code == 415, response.text
    assert response.json() == {
        "detail": "poisoned.wav: the audio contains non-finite samples (NaN/Inf)"
    }
    assert list(upload_tmp.iterdir()) == []


def _truncated(track: WrittenTrack) -> bytes:
    data = track.path.read_bytes()
    return data[: len(data) // 3]


@pytest.mark.parametrize(
    ("name", "make_data", "statuses"),
    [
        ("zero.wav", lambda catalogue: b"", {415}),
        ("random.flac", lambda catalogue: os.urandom(300_000), {415}),
        ("random.wav", lambda catalogue: b"RIFF" + os.urandom(100_000), {415}),
        # A third of a 9 s track is still 3 s of audio: embedded, or too short, never a crash.
        ("cut.flac", lambda catalogue: _truncated(catalogue[0]), {200, 415, 422}),
        ("cut.mp3", lambda catalogue: _truncated(catalogue[1]), {200, 415, 422}),
    ],
)
def test_broken_files_get_a_readable_4xx(
    client: TestClient,
    api_catalogue: list[WrittenTrack],
    upload_tmp: Path,
    name: str,
    make_data: Callable[[list[WrittenTrack]], bytes],
    statuses: set[int],
) -> None:
    response = post_file(client, name, make_data(api_catalogue))
    assert response.status_code in statuses, response.text
    if response.status_code != 200:
        assert response.json()["detail"].startswith(f"{name}: ")
    assert list(upload_tmp.iterdir()) == []


@pytest.mark.parametrize("name", ["x.mp3", "x.m3u8"])
def test_hls_playlist_upload_is_415_and_never_opens_the_named_file(
    client: TestClient, tmp_path: Path, upload_tmp: Path, name: str
) -> None:
    segment = tmp_path / "secret.mp3"
    with watch_opens(segment) as opened:
        playlist = write_hls_playlist(tmp_path / "playlist.m3u8", segment).read_bytes()
        response = post_file(client, name, playlist)
    assert opened == [], "the server opened a file named inside the upload"
    assert response.status_code == 415, response.text
    assert response.json()["detail"].startswith(f"{name}: ")
    assert list(upload_tmp.iterdir()) == []


@pytest.fixture
def hostile_client(
    make_client: ClientFactory, api_catalogue: list[WrittenTrack]
) -> Iterator[tuple[TestClient, UploadEmbedder]]:
    """An app whose upload decoder misbehaves on marked files, with a 2 s decode limit."""
    with hostile.importable_by_workers(), make_client() as client:
        app: Any = client.app
        services = app.state.services
        embedder = UploadEmbedder(
            services,
            services.settings.upload_limits(),
            decode=misbehaving_decode,
            decode_timeout_s=2.0,
        )
        app.dependency_overrides[get_upload_embedder] = lambda: embedder
        try:
            yield client, embedder
        finally:
            embedder.close()


def test_hung_decode_is_cut_off_and_the_next_upload_works(
    hostile_client: tuple[TestClient, UploadEmbedder],
    api_catalogue: list[WrittenTrack],
    upload_tmp: Path,
) -> None:
    client, _ = hostile_client
    good = api_catalogue[2].path.read_bytes()
    started = time.monotonic()
    response = post_file(client, "stuck.flac", hostile.HANG.encode() + good)
    assert time.monotonic() - started < 15
    assert response.status_code == 415, response.text
    assert response.json() == {"detail": "stuck.flac: decoding took longer than 2 s"}
    assert post_file(client, "fine.flac", good).status_code == 200
    assert list(upload_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("marker", "detail"),
    [
        (hostile.SEGFAULT, "the decoder process crashed (killed by SIGSEGV)"),
        (hostile.RAISE, "the decoder failed: RuntimeError: the codec library blew up"),
    ],
)
def test_decoder_crash_is_415_and_the_server_keeps_serving(
    hostile_client: tuple[TestClient, UploadEmbedder],
    api_catalogue: list[WrittenTrack],
    marker: str,
    detail: str,
) -> None:
    client, embedder = hostile_client
    good = api_catalogue[3].path.read_bytes()
    response = post_file(client, "boom.flac", marker.encode() + good)
    assert response.status_code == 415, response.text
    assert response.json()["detail"].startswith(f"boom.flac: {detail}")
    assert post_file(client, "fine.flac", good).status_code == 200


def test_decoder_processes_stop_when_the_embedder_closes(
    make_client: ClientFactory, api_catalogue: list[WrittenTrack]
) -> None:
    with make_client() as client:
        embedder: UploadEmbedder = client.app.state.upload_embedder  # type: ignore[attr-defined]
        assert post_file(client, "a.flac", api_catalogue[0].path.read_bytes()).status_code == 200
        pids = embedder.decode_pool().worker_pids()
        assert pids
        embedder.close()
        refused = post_file(client, "a.flac", api_catalogue[0].path.read_bytes())
    assert refused.status_code == 503
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- hostile clients (a real server) -----------------------------------------------------------


def _upload_head(address: tuple[str, int], body_length: int) -> socket.socket:
    """A connection that has sent the request line and headers of an upload, no body."""
    connection = socket.create_connection(address, timeout=30)
    connection.sendall(
        (
            "POST /search/audio HTTP/1.1\r\n"
            f"Host: {address[0]}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {body_length}\r\n\r\n"
        ).encode()
    )
    return connection


def _part_head(name: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _multipart(name: str, data: bytes) -> bytes:
    return _part_head(name) + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _response(connection: socket.socket, timeout: float) -> tuple[int, dict[str, str], Any]:
    connection.settimeout(timeout)
    response = http.client.HTTPResponse(connection)
    response.begin()
    body = response.read()
    return response.status, dict(response.getheaders()), json.loads(body)


@pytest.fixture
def small_server(
    copy_data_dir: Callable[[], Path],
    make_settings: Callable[..., Settings],
    serving: Callable[[FastAPI], AbstractContextManager[tuple[str, int]]],
    upload_tmp: Path,
) -> Iterator[tuple[tuple[str, int], FastAPI]]:
    """Room for one upload at a time (no queue) and one second to send a body."""
    settings = make_settings(
        copy_data_dir(), embed_concurrency=1, embed_queue=0, upload_read_seconds=1.0
    )
    app = create_app(settings)
    try:
        with serving(app) as address:
            yield address, app
    finally:
        app.state.upload_embedder.close()


def test_upload_past_capacity_is_refused_before_its_body_is_sent(
    small_server: tuple[tuple[str, int], FastAPI], api_catalogue: list[WrittenTrack]
) -> None:
    address, _ = small_server
    data = api_catalogue[0].path.read_bytes()
    body = _multipart("a.flac", data)
    # The first upload holds the only slot while it sends its body slowly.
    holder = _upload_head(address, len(body))
    holder.sendall(body[:1000])
    time.sleep(0.3)
    # The second has sent no byte of its body: the answer must not wait for it.
    second = _upload_head(address, len(body))
    started = time.monotonic()
    status, headers, payload = _response(second, timeout=5)
    assert status == 503 and headers["retry-after"] == "5"
    assert "busy" in payload["detail"]
    assert time.monotonic() - started < 1.0  # before the first upload's read deadline
    second.close()
    holder.close()


def test_slow_client_is_cut_off_after_the_read_deadline(
    small_server: tuple[tuple[str, int], FastAPI],
    api_catalogue: list[WrittenTrack],
    upload_tmp: Path,
) -> None:
    address, _ = small_server
    data = api_catalogue[0].path.read_bytes()
    body = _multipart("slow.flac", data)
    slow = _upload_head(address, len(body))
    slow.sendall(body[:5000])  # then nothing more
    started = time.monotonic()
    status, _, payload = _response(slow, timeout=10)
    waited = time.monotonic() - started
    slow.close()
    assert status == 422
    assert payload["detail"].startswith("the upload was not received within 1 s")
    assert 0.5 < waited < 5
    assert list(upload_tmp.iterdir()) == []
    # The slot is free again: a client that sends its body gets its answer.
    fast = _upload_head(address, len(body))
    fast.sendall(body)
    status, _, payload = _response(fast, timeout=60)
    fast.close()
    assert status == 200, payload
    assert payload["tracks"][0]["title"] == api_catalogue[0].title
    assert list(upload_tmp.iterdir()) == []
