"""Playback: GET /tracks/{id}/audio serves catalogue audio a browser can play, with byte ranges.

Built on a catalogue of its own with a format browsers do not play (AIFF), ingested through the
public path; the files served are compared with the files on disk.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from apps import ingest_into
from fastapi.testclient import TestClient

from soundalike.api.main import create_app
from soundalike.api.routes.audio import ByteRange, Unsatisfiable, parse_range
from soundalike.api.settings import Settings
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.devtools.synth import WrittenTrack, write_catalogue
from soundalike.ingest.engine import Decoding
from soundalike.ingest.excerpt import ExcerptPolicy

SECONDS = 6.0
KEY = "a-key-for-audio-tests-0123"


@pytest.fixture(scope="module")
def audio_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenTrack]:
    return write_catalogue(
        tmp_path_factory.mktemp("audio-catalogue"),
        artists=2,
        tracks_per_artist=2,
        seconds=SECONDS,
        formats=("aiff", "mp3", "flac", "wav"),
    )


@pytest.fixture(scope="module")
def audio_client(
    audio_catalogue: list[WrittenTrack],
    tiny_embedder: Any,
    make_settings: Callable[..., Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    data_dir = ingest_into(
        tmp_path_factory.mktemp("audio-data") / "data",
        audio_catalogue[0].path.parent.parent,
        tiny_embedder,
        expected=len(audio_catalogue),
        # A 4 s window (shorter than the 6 s tracks), so the excerpt is a part of each track.
        decoding=Decoding(excerpt=ExcerptPolicy.parse("centre"), window_seconds=4.0),
    )
    app = create_app(make_settings(data_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def track_ids(audio_client: TestClient, audio_catalogue: list[WrittenTrack]) -> dict[str, str]:
    """File suffix -> the id of the stored track of that format."""
    ids: dict[str, str] = {}
    for artist in sorted({t.artist for t in audio_catalogue}):
        for track in audio_client.get(f"/artists/{artist}").json()["tracks"]:
            written = next(w for w in audio_catalogue if w.title == track["title"])
            ids[written.path.suffix] = track["track_id"]
    assert set(ids) == {".aiff", ".mp3", ".flac", ".wav"}
    return ids


def _path_of(catalogue: list[WrittenTrack], suffix: str) -> Path:
    return next(w.path for w in catalogue if w.path.suffix == suffix)


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [(".mp3", "audio/mpeg"), (".flac", "audio/flac"), (".wav", "audio/wav")],
)
def test_playable_files_are_sent_byte_for_byte_with_their_type(
    audio_client: TestClient,
    track_ids: dict[str, str],
    audio_catalogue: list[WrittenTrack],
    suffix: str,
    content_type: str,
) -> None:
    response = audio_client.get(f"/tracks/{track_ids[suffix]}/audio")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == _path_of(audio_catalogue, suffix).read_bytes()


def test_a_range_request_gets_206_with_exactly_those_bytes(
    audio_client: TestClient, track_ids: dict[str, str], audio_catalogue: list[WrittenTrack]
) -> None:
    original = _path_of(audio_catalogue, ".flac").read_bytes()
    url = f"/tracks/{track_ids['.flac']}/audio"
    middle = audio_client.get(url, headers={"Range": "bytes=100-1099"})
    assert middle.status_code == 206
    assert middle.headers["content-range"] == f"bytes 100-1099/{len(original)}"
    assert middle.content == original[100:1100]
    assert middle.headers["content-length"] == "1000"
    tail = audio_client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == original[-500:]
    open_ended = audio_client.get(url, headers={"Range": f"bytes={len(original) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == original[-10:]
    past_end = audio_client.get(url, headers={"Range": "bytes=0-999999999"})
    assert past_end.status_code == 206 and past_end.content == original


def test_a_range_past_the_end_is_416_and_says_the_size(
    audio_client: TestClient, track_ids: dict[str, str], audio_catalogue: list[WrittenTrack]
) -> None:
    size = _path_of(audio_catalogue, ".wav").stat().st_size
    response = audio_client.get(
        f"/tracks/{track_ids['.wav']}/audio", headers={"Range": f"bytes={size}-"}
    )
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert "range" in response.json()["detail"]


def test_a_malformed_range_is_ignored_and_the_whole_file_sent(
    audio_client: TestClient, track_ids: dict[str, str], audio_catalogue: list[WrittenTrack]
) -> None:
    original = _path_of(audio_catalogue, ".mp3").read_bytes()
    for header in ("bytes=abc", "items=0-10", "bytes=10-5", "bytes=0-1,5-9"):
        response = audio_client.get(f"/tracks/{track_ids['.mp3']}/audio", headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == original, header


def test_aiff_is_converted_to_mp3_that_decodes_to_the_same_length(
    audio_client: TestClient, track_ids: dict[str, str]
) -> None:
    url = f"/tracks/{track_ids['.aiff']}/audio"
    response = audio_client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.codec.canonical_name == "mp3"
        samples = sum(frame.samples for frame in container.decode(stream))
        seconds = samples / stream.codec_context.sample_rate
    assert abs(seconds - SECONDS) < 0.1
    # Ranges work on the converted bytes too (the conversion is cached, so they agree).
    part = audio_client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == response.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(response.content)}"


def test_the_excerpt_is_exactly_the_embedded_window(
    audio_client: TestClient, track_ids: dict[str, str], audio_catalogue: list[WrittenTrack]
) -> None:
    response = audio_client.get(f"/tracks/{track_ids['.flac']}/audio?excerpt=true")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 24000)
        served = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767.0
    # The catalogue's spec: a 4 s centred window, as ingest decoded it.
    expected = decode_excerpt(
        _path_of(audio_catalogue, ".flac"),
        policy=ExcerptPolicy.parse("centre"),
        sample_rate=24000,
        window_seconds=4.0,
    ).windows[0]
    assert served.size == expected.size == 4 * 24000
    assert np.max(np.abs(served - expected)) < 1e-4


def test_unknown_tracks_and_bad_ids_are_clear_errors(audio_client: TestClient) -> None:
    missing = audio_client.get("/tracks/00000000-0000-4000-8000-000000000000/audio")
    assert missing.status_code == 404 and "unknown track" in missing.json()["detail"]
    bad = audio_client.get("/tracks/..%2F..%2Fetc%2Fpasswd/audio")
    assert bad.status_code in (404, 422)
    assert "root:" not in bad.text


def test_a_track_whose_file_disappeared_is_404_not_500(
    make_settings: Callable[..., Settings],
    tiny_embedder: Any,
    tmp_path: Path,
) -> None:
    written = write_catalogue(tmp_path / "gone", artists=1, tracks_per_artist=1, seconds=4.0)
    data_dir = ingest_into(tmp_path / "data", tmp_path / "gone", tiny_embedder, expected=1)
    written[0].path.unlink()
    with TestClient(create_app(make_settings(data_dir)), raise_server_exceptions=False) as client:
        (track,) = client.get(f"/artists/{written[0].artist}").json()["tracks"]
        response = client.get(f"/tracks/{track['track_id']}/audio")
    assert response.status_code == 404
    assert "no longer where it was ingested from" in response.json()["detail"]
    assert str(tmp_path) not in response.text


def test_audio_needs_the_key_when_the_server_has_one(
    make_settings: Callable[..., Settings], copy_data_dir: Callable[[], Path]
) -> None:
    with TestClient(create_app(make_settings(copy_data_dir(), api_key=KEY))) as client:
        artist = client.get("/artists", headers={"Authorization": f"Bearer {KEY}"}).json()
        name = artist["artists"][0]["artist"]
        tracks = client.get(f"/artists/{name}", headers={"Authorization": f"Bearer {KEY}"}).json()[
            "tracks"
        ]
        url = f"/tracks/{tracks[0]['track_id']}/audio"
        assert client.get(url).status_code == 401
        allowed = client.get(url, headers={"Authorization": f"Bearer {KEY}"})
        assert allowed.status_code == 200 and allowed.headers["content-type"].startswith("audio/")


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=5-", 10, ByteRange(5, 9)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-30", 10, ByteRange(0, 9)),
        ("bytes=2-100", 10, ByteRange(2, 9)),
        ("bytes=7-3", 10, None),
        ("bytes=-", 10, None),
        ("pages=1-2", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)
