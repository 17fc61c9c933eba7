"""The catalogue map (GET /map, search/projection.py) and track search by text (GET /tracks?q=)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from soundalike.core.artist_names import artist_key
from soundalike.ingest.devtools.synth import WrittenTrack
from soundalike.search import projection
from soundalike.search.projection import project


def test_the_map_places_every_artist_with_its_count_and_genre(
    client: TestClient, api_catalogue: list[WrittenTrack]
) -> None:
    response = client.get("/map")
    assert response.status_code == 200
    body = response.json()
    assert body["projection"] == "pca"
    by_name = {a["artist"]: a for a in body["artists"]}
    assert set(by_name) == {t.artist for t in api_catalogue}
    for name, placed in by_name.items():
        written = [t for t in api_catalogue if t.artist == name]
        assert placed["track_count"] == len(written)
        assert placed["genre"] == written[0].genre
        assert -1.0 <= placed["x"] <= 1.0 and -1.0 <= placed["y"] <= 1.0
    xs = [a["x"] for a in body["artists"]]
    assert max(map(abs, xs)) == pytest.approx(1.0)  # scaled to fill the frame
    # Distinct artists land on distinct points.
    assert len({(round(a["x"], 6), round(a["y"], 6)) for a in body["artists"]}) == len(by_name)


def test_the_map_is_cached_until_the_catalogue_changes(
    make_client: Callable[..., AbstractContextManager[TestClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[int] = []
    real = projection.catalogue_map

    def counting(store: Any) -> Any:
        computed.append(1)
        return real(store)

    monkeypatch.setattr("soundalike.api.routes.map.catalogue_map", counting)
    with make_client() as client:
        first = client.get("/map").json()
        assert client.get("/map").json() == first
        assert len(computed) == 1
        gone = first["artists"][0]["artist"]
        client.app.state.services.store().delete_artist(artist_key(gone))  # type: ignore[attr-defined]
        after = client.get("/map").json()
    assert len(computed) == 2
    assert gone not in {a["artist"] for a in after["artists"]}
    assert len(after["artists"]) == len(first["artists"]) - 1


def test_an_empty_store_has_an_empty_map(
    make_client: Callable[..., AbstractContextManager[TestClient]], tmp_path: Any
) -> None:
    with make_client(data_dir=tmp_path / "empty") as client:
        response = client.get("/map")
    assert response.status_code == 200
    assert response.json() == {"artists": [], "projection": "pca"}


def test_projection_follows_the_two_main_axes_of_variation() -> None:
    rng = np.random.default_rng(7)
    # Points spread mostly along two known directions, with a little noise elsewhere.
    dim = 32
    a, b = np.eye(dim)[3], np.eye(dim)[11]
    coefficients = rng.normal(size=(500, 2)) * [5.0, 2.0]
    vectors = coefficients @ np.stack([a, b]) + rng.normal(scale=0.05, size=(500, dim))
    xy = project(vectors.astype(np.float32))
    assert xy.shape == (500, 2)
    assert np.abs(xy).max() == pytest.approx(1.0)
    # The first map axis is the direction of widest spread, the second the next one.
    assert abs(np.corrcoef(xy[:, 0], coefficients[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(xy[:, 1], coefficients[:, 1])[0, 1]) > 0.99
    # Deterministic, including the axes' signs.
    assert np.array_equal(project(vectors.astype(np.float32)), xy)


def test_projection_of_tiny_catalogues() -> None:
    assert project(np.zeros((0, 8), np.float32)).shape == (0, 2)
    assert project(np.ones((1, 8), np.float32)).tolist() == [[0.0, 0.0]]
    two = project(np.eye(8, dtype=np.float32)[:2])
    assert two.shape == (2, 2) and np.isfinite(two).all()


def test_tracks_by_title_artist_or_album_accents_ignored(
    client: TestClient, api_catalogue: list[WrittenTrack]
) -> None:
    wanted = next(t for t in api_catalogue if t.artist == "Éclair Ensemble")
    word = wanted.title.split()[1]
    response = client.get("/tracks", params={"q": word.lower()})
    assert response.status_code == 200
    body = response.json()
    assert body["limit"] == 50 and body["offset"] == 0
    titles = {t["title"] for t in body["tracks"]}
    assert wanted.title in titles
    assert all(
        word.lower()
        in (t["title"] or "").lower() + t["artist"].lower() + (t["album"] or "").lower()
        for t in body["tracks"]
    )
    by_artist = client.get("/tracks", params={"q": "eclair ensemble", "limit": 2}).json()
    assert len(by_artist["tracks"]) == 2
    assert {t["artist"] for t in by_artist["tracks"]} == {"Éclair Ensemble"}
    nothing = client.get("/tracks", params={"q": "zzzz-no-such-title"}).json()
    assert nothing["tracks"] == []


def test_track_search_rejects_bad_parameters(client: TestClient) -> None:
    for params in ({}, {"q": ""}, {"q": "a", "limit": 0}, {"q": "a", "offset": -1}):
        response = client.get("/tracks", params=params)
        assert response.status_code == 422, params
        assert isinstance(response.json()["detail"], str)


def test_projection_matches_a_full_eigendecomposition_in_high_dimensions() -> None:
    rng = np.random.default_rng(3)
    # Clusters in 128 dimensions, as centroids are: the iterative path (dim > 64) is taken.
    centres = rng.normal(size=(12, 128)) * np.linspace(3.0, 0.1, 128)
    vectors = (centres[rng.integers(0, 12, 2000)] + rng.normal(scale=0.3, size=(2000, 128))).astype(
        np.float32
    )
    xy = project(vectors)
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    values, axes = np.linalg.eigh(centred.T @ centred)
    reference = centred @ axes[:, np.argsort(values)[::-1][:2]]
    for column in range(2):
        assert abs(np.corrcoef(xy[:, column], reference[:, column])[0, 1]) > 0.9999


def test_a_large_catalogue_takes_its_axes_from_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    # Two clearly leading directions (a sample cannot tell near-equal axes apart, nor can PCA).
    centres = rng.normal(size=(40, 96)) * np.r_[6.0, 3.0, np.full(94, 0.3)]
    vectors = (centres[rng.integers(0, 40, 3000)] + rng.normal(scale=0.3, size=(3000, 96))).astype(
        np.float32
    )
    full = project(vectors)
    monkeypatch.setattr(projection, "SAMPLE_ROWS", 1000)
    sampled = project(vectors)
    assert sampled.shape == (3000, 2)
    for column in range(2):
        assert abs(np.corrcoef(sampled[:, column], full[:, column])[0, 1]) > 0.999
    assert np.array_equal(project(vectors), sampled)  # the sample is fixed: same map again


def test_an_unchanged_map_revalidates_without_a_body(client: TestClient) -> None:
    first = client.get("/map")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = client.get("/map", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    stale = client.get("/map", headers={"If-None-Match": '"an-older-map"'})
    assert stale.status_code == 200 and stale.json() == first.json()
