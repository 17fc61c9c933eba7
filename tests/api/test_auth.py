"""Optional API key and CORS, as configured by settings."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from fastapi.testclient import TestClient

from soundalike.ingest.devtools.synth import WrittenTrack

ClientFactory = Callable[..., AbstractContextManager[TestClient]]
KEY = "s3cret-key-for-tests-é"  # non-ASCII: clients send its UTF-8 bytes
AUTHORIZED = {"Authorization": f"Bearer {KEY}".encode()}


@pytest.fixture(scope="module")
def locked(make_client: ClientFactory) -> TestClient:
    with make_client(api_key=KEY) as client:
        yield client


PROTECTED = [
    "/artists",
    "/artists/eclair%20ensemble",
    "/artists/eclair%20ensemble/similar",
    "/tracks/00000000-0000-5000-8000-000000000000",
    "/similarity?artist=eclair%20ensemble",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_or_wrong_key_is_401(locked: TestClient, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}".encode()},
        {"Authorization": f"Bearer {KEY}x".encode()},
    ):
        response = locked.get(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["www-authenticate"] == "Bearer"
        assert list(response.json()) == ["detail"]


@pytest.mark.parametrize("path", PROTECTED)
def test_right_key_passes(locked: TestClient, path: str) -> None:
    response = locked.get(path, headers=AUTHORIZED)
    assert response.status_code in (200, 404)  # 404: the made-up track id
    assert response.status_code == 200 or "unknown track" in response.json()["detail"]


def test_upload_needs_the_key_before_anything_is_read(
    locked: TestClient, api_catalogue: list[WrittenTrack]
) -> None:
    data = api_catalogue[0].path.read_bytes()
    refused = locked.post("/search/audio", files={"file": ("a.flac", data)})
    assert refused.status_code == 401
    allowed = locked.post(
        "/search/audio",
        files={"file": ("a.flac", data)},
        headers=AUTHORIZED,
    )
    assert allowed.status_code == 200


def test_health_stays_open(locked: TestClient) -> None:
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/readyz").status_code == 200


def test_no_key_configured_means_open(client: TestClient) -> None:
    assert client.get("/artists").status_code == 200
    assert client.get("/artists", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_cors_allows_only_configured_origins(make_client: ClientFactory) -> None:
    with make_client(cors_origins=["https://front.example"]) as client:
        preflight = client.options(
            "/artists",
            headers={
                "Origin": "https://front.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://front.example"
        simple = client.get("/artists", headers={"Origin": "https://front.example"})
        assert simple.headers["access-control-allow-origin"] == "https://front.example"
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        stranger = client.get("/artists", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
