"""8 client threads x a few hundred mixed requests while uploads are embedded: no 5xx, and every
answer is the one a single client gets."""

from __future__ import annotations

import random
import threading
from typing import Any

from fastapi.testclient import TestClient

from soundalike.ingest.devtools.synth import WrittenTrack

THREADS = 8
REQUESTS_PER_THREAD = 150


def test_mixed_load_with_uploads_in_flight(
    client: TestClient,
    api_catalogue: list[WrittenTrack],
    tracks_by_artist: dict[str, list[dict[str, Any]]],
) -> None:
    track_ids = [t["track_id"] for tracks in tracks_by_artist.values() for t in tracks]
    artists = list(tracks_by_artist)
    paths = (
        [
            "/healthz",
            "/readyz",
            "/artists",
            "/artists?q=se",
            "/artists/nobody",
            "/artists?limit=0",
            "/tracks/not-a-uuid",
            "/similarity?" + "&".join(f"artist={a}" for a in artists),
        ]
        + [f"/artists/{a}/similar" for a in artists]
        + [f"/artists/{a}/similar?explain=true" for a in artists]
        + [f"/artists/{a}" for a in artists]
        + [f"/tracks/{t}" for t in track_ids]
        + [f"/tracks/{t}/similar" for t in track_ids]
    )
    # What each path answers with one client, to compare under load.
    expected = {}
    for path in paths:
        response = client.get(path)
        expected[path] = (response.status_code, response.json())

    failures: list[str] = []
    upload_statuses: list[int] = []
    stop_uploads = threading.Event()

    def uploader() -> None:
        clip = api_catalogue[3]
        data = clip.path.read_bytes()
        while not stop_uploads.is_set():
            response = client.post("/search/audio", files={"file": (clip.path.name, data)})
            upload_statuses.append(response.status_code)
            if (
                response.status_code == 200
                and response.json()["artists"][0]["artist"] != clip.artist
            ):
                failures.append(f"upload answered {response.json()['artists'][0]}")

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(REQUESTS_PER_THREAD):
            path = rng.choice(paths)
            try:
                response = client.get(path)
                got = (response.status_code, response.json())
            except Exception as error:  # noqa: BLE001 - every failure is collected and reported
                failures.append(f"{path}: {error!r}")
                continue
            if got != expected[path]:
                failures.append(f"{path}: {got} != {expected[path]}")

    uploads = threading.Thread(target=uploader)
    uploads.start()
    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop_uploads.set()
    uploads.join(120)
    assert not failures, failures[:5]
    assert upload_statuses and set(upload_statuses) == {200}
