"""Authentication paths Supysonic lacks (salted token, OpenSubsonic apiKey) and the server's
error codes, against a tiny fake OpenSubsonic server on loopback (a real HTTP server thread).
The main Subsonic tests use Supysonic itself (test_subsonic.py)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import synth_track, write_audio
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources.subsonic import SubsonicSource, SubsonicUnavailable
from soundalike.search.store import open_store

PASSWORD = "t0ken-Pass wörd"
API_KEY = "osk-0123456789abcdef"


@dataclass
class FakeServer:
    """What the fake server accepts, and every request it saw (query parameters)."""

    song_file: Path
    accept: str = "token"  # token | api_key | password-only (answers 41 to tokens)
    deny: set[str] = field(default_factory=set)  # methods answered with error 50
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def url(self, user: str | None = "alice") -> str:
        return f"subsonic+http://{user + '@' if user else ''}127.0.0.1:{self.port}"

    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]

    def auth_error(self, params: dict[str, str]) -> tuple[int, str] | None:
        if self.accept == "api_key":
            if "u" in params or "p" in params or "t" in params:
                return 43, "Multiple conflicting authentication mechanisms provided"
            if params.get("apiKey") != API_KEY:
                return 44, "Invalid API key"
            return None
        if params.get("u") != "alice":
            return 40, "Wrong username or password"
        if "t" in params:
            if self.accept == "password-only":
                return 41, "Token authentication not supported for LDAP users."
            expected = hashlib.md5((PASSWORD + params.get("s", "")).encode()).hexdigest()
            return None if params["t"] == expected else (40, "Wrong username or password")
        if self.accept == "password-only" and "p" in params:
            given = params["p"]
            if given.startswith("enc:"):
                given = bytes.fromhex(given[4:]).decode()
            return None if given == PASSWORD else (40, "Wrong username or password")
        return 10, "Required parameter is missing"

    def answer(self, method: str, params: dict[str, str]) -> tuple[dict[str, Any] | bytes, str]:
        error = self.auth_error(params)
        if error is None and method in self.deny:
            error = (50, "User is not authorized for the given operation.")
        if error is not None:
            code, message = error
            return {"status": "failed", "error": {"code": code, "message": message}}, ""
        song = {
            "id": "tr-1",
            "title": "Lantern",
            "artist": "Okapi Duo",
            "artistId": "ar-1",
            "album": "Plains",
            "albumId": "al-1",
            "genre": "folk",
            "year": 2011,
            "duration": 6,
            "suffix": "wav",
            "path": "Okapi Duo/Plains/Lantern.wav",
            "musicBrainzId": "a1b2c3d4-0000-4000-8000-000000000001",
            "isrc": ["USRC17607839"],
        }
        bodies: dict[str, dict[str, Any]] = {
            "ping": {},
            "getArtists": {"artists": {"index": [{"name": "O", "artist": [{"id": "ar-1"}]}]}},
            # One element as an object, not a list: some servers do that.
            "getArtist": {"artist": {"id": "ar-1", "album": {"id": "al-1"}}},
            "getAlbum": {"album": {"id": "al-1", "artist": "Okapi Duo", "song": [song]}},
        }
        if method in ("download", "stream"):
            return self.song_file.read_bytes(), "audio/x-wav"
        return {"status": "ok", **bodies[method]}, ""


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeServer]:
    audio = synth_track(artist_seed=3, track_seed=1, seconds=6.0, sample_rate=22050)
    fake = FakeServer(write_audio(tmp_path / "song.wav", audio, 22050))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            parts = urlsplit(self.path)
            method = parts.path.rsplit("/", 1)[-1].removesuffix(".view")
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            fake.requests.append((method, params))
            body, content_type = fake.answer(method, params)
            if isinstance(body, dict):
                body = json.dumps(
                    {"subsonic-response": {"version": "1.16.1", "openSubsonic": True, **body}}
                ).encode()
                content_type = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def ingest_from(source: SubsonicSource, tmp_path: Path, engine: VectorEngine) -> Any:
    with open_store(data_dir=tmp_path / "data") as store:
        try:
            summary = ingest(source, store=store, engine=engine, options=IngestOptions(workers=1))
        finally:
            source.close()
        return summary, store.tracks_by_item_ids(["tr-1"]).get("tr-1")


def test_a_token_server_gets_salted_tokens_and_never_the_password(
    fake_server: FakeServer, tmp_path: Path, tiny_engine: VectorEngine
) -> None:
    source = SubsonicSource(fake_server.url(), password=PASSWORD)
    summary, track = ingest_from(source, tmp_path, tiny_engine)
    assert (summary.ingested, summary.failed) == (1, [])
    assert fake_server.methods() == ["ping", "getArtists", "getArtist", "getAlbum", "download"]
    salts = [params["s"] for _, params in fake_server.requests]
    assert len(set(salts)) == len(salts)  # a fresh salt per request
    for _, params in fake_server.requests:
        assert "p" not in params and "apiKey" not in params
        assert params["v"] == "1.13.0" and params["c"] == "soundalike" and params["f"] == "json"
    assert track.title == "Lantern" and track.artist == "Okapi Duo" and track.year == 2011
    assert track.extra == {
        "artist_id": "ar-1",
        "album_id": "al-1",
        "album_artist": "Okapi Duo",
        "suffix": "wav",
        "server_path": "Okapi Duo/Plains/Lantern.wav",
        "musicbrainz_id": "a1b2c3d4-0000-4000-8000-000000000001",
        "isrc": ["USRC17607839"],
    }


def test_an_api_key_is_sent_alone(
    fake_server: FakeServer, tmp_path: Path, tiny_engine: VectorEngine
) -> None:
    fake_server.accept = "api_key"
    source = SubsonicSource(fake_server.url(user=None), api_key=API_KEY)
    summary, track = ingest_from(source, tmp_path, tiny_engine)
    assert summary.ingested == 1 and track is not None
    assert fake_server.methods() == ["getArtists", "getArtist", "getAlbum", "download"]
    for _, params in fake_server.requests:
        assert params["apiKey"] == API_KEY
        assert not {"u", "p", "t", "s"} & set(params)


def test_a_refused_api_key_is_a_clear_error(fake_server: FakeServer, tmp_path: Path) -> None:
    fake_server.accept = "api_key"
    source = SubsonicSource(fake_server.url(user=None), api_key="osk-wrong-key-000")
    with pytest.raises(SubsonicUnavailable, match="refused the API key") as raised:
        list(source.tracks())
    assert "osk-wrong-key-000" not in raised.value.message
    source.close()


def test_a_server_that_refuses_tokens_gets_the_encoded_password(
    fake_server: FakeServer, tmp_path: Path, tiny_engine: VectorEngine
) -> None:
    fake_server.accept = "password-only"
    source = SubsonicSource(fake_server.url(), password=PASSWORD)
    summary, _ = ingest_from(source, tmp_path, tiny_engine)
    assert summary.ingested == 1
    first, *rest = fake_server.requests
    assert first[0] == "ping" and "t" in first[1]
    assert rest and all(p["p"] == "enc:" + PASSWORD.encode().hex() for _, p in rest)
    assert all("t" not in p and p["v"] == "1.12.0" for _, p in rest)


def test_missing_rights_are_named_and_a_download_right_falls_back_to_stream(
    fake_server: FakeServer, tmp_path: Path, tiny_engine: VectorEngine
) -> None:
    fake_server.deny = {"download"}
    source = SubsonicSource(fake_server.url(), password=PASSWORD)
    summary, track = ingest_from(source, tmp_path, tiny_engine)
    assert summary.ingested == 1 and track is not None
    streamed = [p for m, p in fake_server.requests if m == "stream"]
    assert len(streamed) == 1 and streamed[0]["format"] == "raw" and streamed[0]["id"] == "tr-1"

    fake_server.deny = {"getArtists"}
    listing = SubsonicSource(fake_server.url(), password=PASSWORD)
    with pytest.raises(SubsonicUnavailable, match="lacks the rights"):
        list(listing.tracks())
    listing.close()


def test_a_vector_from_the_fake_server_is_the_files_vector(
    fake_server: FakeServer, tmp_path: Path, tiny_engine: VectorEngine
) -> None:
    source = SubsonicSource(fake_server.url(), password=PASSWORD)
    with open_store(data_dir=tmp_path / "data") as store:
        ingest(source, store=store, engine=tiny_engine, options=IngestOptions(workers=1))
        source.close()
        [track] = store.tracks_of_artist("okapi duo", with_vectors=True)
    vector, _ = tiny_engine.embed_file(fake_server.song_file)
    assert np.allclose(track.vector, vector, atol=1e-6)
