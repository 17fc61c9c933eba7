"""GET /tracks/{id}/audio for tracks ingested from a Subsonic server: proxied from the server's
`stream` (a real Supysonic, tests/supysonic_server.py), byte ranges passed through."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from soundalike.api.main import create_app
from soundalike.api.settings import Settings
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.engine import VectorEngine
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources import source_for
from soundalike.search.store import open_store


def test_subsonic_tracks_are_streamed_from_their_server_with_ranges(
    supysonic: Any,
    tiny_engine: VectorEngine,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    source = source_for(supysonic.url, subsonic_password=supysonic.password)
    with open_store(data_dir=data_dir) as store:
        summary = ingest(source, store=store, engine=tiny_engine, options=IngestOptions(workers=1))
    assert summary.ingested == len(supysonic.tracks)
    written = supysonic.tracks[0]
    original = written.path.read_bytes()

    settings = make_settings(data_dir, subsonic_password=supysonic.password)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        listed = client.get(f"/artists/{written.artist}").json()["tracks"]
        track = next(t for t in listed if t["title"] == written.title)
        url = f"/tracks/{track['track_id']}/audio"
        whole = client.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-type"].startswith("audio/")
        assert whole.content == original
        part = client.get(url, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1099/{len(original)}"
        assert part.content == original[100:1100]
        # The embedded excerpt of a server's track: fetched whole, decoded like ingest did.
        excerpt = client.get(url, params={"excerpt": "true"})
        assert excerpt.status_code == 200 and excerpt.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(excerpt.content)) as wav:
            served = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767.0
        expected = decode_excerpt(written.path, policy=ExcerptPolicy.parse("centre")).windows[0]
        assert served.size == expected.size
        assert np.max(np.abs(served - expected)) < 1e-4

    # Without credentials the server cannot reach its Subsonic source: a 503 that says so.
    with TestClient(create_app(make_settings(data_dir)), raise_server_exceptions=False) as client:
        refused = client.get(url)
    assert refused.status_code == 503
    assert supysonic.password not in refused.text
