"""POST /search/audio: valid clips, bad files, size cap, bounded embedding pool, temp files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from soundalike.api.deps import get_upload_embedder
from soundalike.api.services import Services
from soundalike.api.uploads import UploadEmbedder
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.devtools.synth import WrittenTrack, synth_track, write_audio

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


def post_file(client: TestClient, name: str, data: bytes, **params: Any) -> Any:
    return client.post("/search/audio", params=params, files={"file": (name, data)})


@pytest.mark.parametrize("index", [0, 5, 10])
def test_catalogue_file_finds_itself_and_its_artist(
    client: TestClient, api_catalogue: list[WrittenTrack], upload_tmp: Path, index: int
) -> None:
    written = api_catalogue[index]
    response = post_file(client, written.path.name, written.path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"tracks", "artists"}
    top_track = body["tracks"][0]
    assert top_track["title"] == written.title and top_track["artist"] == written.artist
    assert top_track["score"] == pytest.approx(1.0, abs=1e-4)
    assert body["artists"][0]["artist"] == written.artist
    assert {a["artist"] for a in body["artists"]} == {t.artist for t in api_catalogue}
    artist_scores = [a["score"] for a in body["artists"]]
    assert artist_scores == sorted(artist_scores, reverse=True)
    assert list(upload_tmp.iterdir()) == []


def test_upload_limit_and_cap(client: TestClient, api_catalogue: list[WrittenTrack]) -> None:
    written = api_catalogue[1]
    body = client.post(
        "/search/audio",
        params={"limit": 3, "max_per_artist": 1},
        files={"file": (written.path.name, written.path.read_bytes())},
    ).json()
    assert len(body["tracks"]) == 3 and len(body["artists"]) == 3
    assert len({t["artist"] for t in body["tracks"]}) == 3


def test_upload_without_a_file_name_is_accepted(
    client: TestClient, api_catalogue: list[WrittenTrack]
) -> None:
    wav = next(t for t in api_catalogue if t.path.suffix == ".wav")
    response = client.post("/search/audio", files={"file": ("", wav.path.read_bytes())})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("noise.mp3", os.urandom(200_000)),
        ("notes.txt", b"these are not the sounds you are looking for\n" * 200),
        ("empty.flac", b""),
        ("fake.flac", b"fLaC" + os.urandom(5000)),
    ],
)
def test_unreadable_audio_is_415(
    client: TestClient, upload_tmp: Path, name: str, data: bytes
) -> None:
    response = post_file(client, name, data)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert set(response.json()) == {"detail"}
    assert detail.startswith(f"{name}: ")
    assert "soundalike-upload-" not in detail and str(upload_tmp) not in detail
    assert list(upload_tmp.iterdir()) == []


def test_too_short_and_silent_audio_are_422(
    client: TestClient, tmp_path: Path, upload_tmp: Path
) -> None:
    short = write_audio(
        tmp_path / "short.wav",
        synth_track(artist_seed=1, track_seed=1, seconds=1.0, sample_rate=44100),
        44100,
    )
    response = post_file(client, "short.wav", short.read_bytes())
    assert response.status_code == 422
    assert response.json()["detail"].startswith("short.wav: ")
    assert "shorter than the minimum" in response.json()["detail"]

    silence = write_audio(tmp_path / "silence.wav", np.zeros((1, 44100 * 5), np.float32), 44100)
    response = post_file(client, "silence.wav", silence.read_bytes())
    assert response.status_code == 422 and "silent" in response.json()["detail"]
    assert list(upload_tmp.iterdir()) == []


def test_malformed_requests_are_422(client: TestClient) -> None:
    not_multipart = client.post(
        "/search/audio", content=b"RIFF....", headers={"content-type": "audio/wav"}
    )
    assert not_multipart.status_code == 422
    assert "multipart/form-data" in not_multipart.json()["detail"]
    no_file = client.post("/search/audio", data={"clip": "x"}, files={"other": ("a.wav", b"x")})
    assert no_file.status_code == 422 and "`file`" in no_file.json()["detail"]
    broken = client.post(
        "/search/audio",
        content=b"--xyz\r\nContent-Disposition: form-data",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 422 and set(broken.json()) == {"detail"}
    assert client.post("/search/audio?limit=0", files={"file": ("a", b"x")}).status_code == 422


def test_oversized_upload_is_413(
    make_client: ClientFactory, api_catalogue: list[WrittenTrack], upload_tmp: Path
) -> None:
    with make_client(max_upload_mb=0.05) as small:  # 52 KB
        big = next(t for t in api_catalogue if t.path.suffix == ".wav")  # ~800 KB
        response = post_file(small, big.path.name, big.path.read_bytes())
        assert response.status_code == 413
        assert response.json() == {"detail": "the upload is larger than the limit of 0.05 MB"}

        # Without Content-Length (chunked) the cap is enforced while reading.
        def chunks() -> Any:
            yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            yield b"\r\n"
            for _ in range(200):
                yield os.urandom(10_000)
            yield b"\r\n--bnd--\r\n"

        streamed = small.post(
            "/search/audio",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=bnd"},
        )
        assert streamed.status_code == 413
        ok = next(t for t in api_catalogue if t.path.suffix == ".ogg")
        if ok.path.stat().st_size < 0.05 * 1024 * 1024:
            assert post_file(small, ok.path.name, ok.path.read_bytes()).status_code == 200
    assert list(upload_tmp.iterdir()) == []


def test_empty_store_is_409(
    make_client: ClientFactory, tmp_path: Path, api_catalogue: list[WrittenTrack]
) -> None:
    with make_client(data_dir=tmp_path / "empty") as empty:
        response = post_file(empty, "a.flac", api_catalogue[0].path.read_bytes())
        assert response.status_code == 409
        assert response.json()["detail"].startswith("nothing ingested yet")
        assert empty.get("/artists").json()["total"] == 0
        assert empty.get("/readyz").json() == {
            "status": "ready",
            "artists": 0,
            "tracks": 0,
            "lookups_in_memory": False,  # nothing to look up yet
        }


def test_model_that_differs_from_the_catalogue_is_refused(
    make_client: ClientFactory, api_catalogue: list[WrittenTrack]
) -> None:
    with make_client() as other:
        services: Services = other.app.state.services  # type: ignore[attr-defined]
        real = services.embedder()
        services._embedder = _RenamedModel(real)  # noqa: SLF001 - a server started on another model
        response = post_file(other, "a.flac", api_catalogue[0].path.read_bytes())
    assert response.status_code == 409
    assert "model: loaded 'another-model'" in response.json()["detail"]


class _RenamedModel:
    """An embedder whose spec names another model."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sample_rate = real.sample_rate

    def build_spec(self, excerpt: str, window_seconds: float) -> EmbeddingSpec:
        spec = self.real.build_spec(excerpt, window_seconds)
        return EmbeddingSpec(**{**spec.to_dict(), "model": "another-model"})


class _BlockingEmbedder(UploadEmbedder):
    """Embeds nothing until released; tells when a request is being embedded."""

    def __init__(self, services: Services) -> None:
        super().__init__(services, services.settings.upload_limits())
        self.started = threading.Semaphore(0)
        self.unblock = threading.Event()

    def embed_file(self, path: Path, stored: EmbeddingSpec) -> tuple[np.ndarray, float]:
        self.started.release()
        assert self.unblock.wait(30)
        vector = np.zeros(stored.dim, np.float32)
        vector[0] = 1.0
        return vector, 9.0


def test_busy_embedding_pool_answers_503_with_retry_after(
    make_client: ClientFactory, api_catalogue: list[WrittenTrack]
) -> None:
    data = api_catalogue[0].path.read_bytes()
    with make_client(embed_concurrency=1, embed_queue=1) as busy:
        app = busy.app
        blocking = _BlockingEmbedder(app.state.services)  # type: ignore[attr-defined]
        app.dependency_overrides[get_upload_embedder] = lambda: blocking  # type: ignore[attr-defined]
        results: list[int] = []

        def upload() -> None:
            results.append(post_file(busy, "a.flac", data).status_code)

        running = threading.Thread(target=upload)
        running.start()
        assert blocking.started.acquire(timeout=30)  # one being embedded
        waiting = threading.Thread(target=upload)
        waiting.start()
        # The second upload must be admitted to the queue before the third is sent.
        deadline = time.monotonic() + 30
        while blocking.admitted < 2:
            assert time.monotonic() < deadline, "the second upload was never admitted"
            time.sleep(0.02)
        refused = post_file(busy, "a.flac", data)
        # Lookups are not held up by embedding.
        lookup = busy.get("/artists/eclair%20ensemble/similar")
        blocking.unblock.set()
        running.join(30)
        waiting.join(30)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "busy" in refused.json()["detail"]
    assert lookup.status_code == 200
    assert results == [200, 200]


def test_model_loads_lazily_or_at_start_up(make_client: ClientFactory) -> None:
    with make_client(load_model="lazy") as lazy:
        assert not lazy.app.state.services.embedder_loaded  # type: ignore[attr-defined]
    with make_client(load_model="startup") as eager:
        services: Services = eager.app.state.services  # type: ignore[attr-defined]
        assert services.embedder_loaded
        # Loaded with the stored collection's layer, so uploads embed like the catalogue.
        stored = services.store().spec()
        assert stored is not None
        assert services.embedder().build_spec(stored.excerpt, stored.window_seconds) == stored
