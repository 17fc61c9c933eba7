"""Filtering similarity searches on manifest columns the server declares filterable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soundalike.api.main import create_app
from soundalike.api.settings import Settings


# artist -> label of each of its three tracks: only "Ana Ruiz" has a track on Verve.
@pytest.fixture(scope="module")
def labelled_client(
    copy_labelled_dir: Callable[[], Path], make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    """Ana Ruiz: Blue Note, Blue Note, Verve; Bo Lind: Blue Note, ECM, ECM; Cy Moss: ECM x3."""
    app = create_app(make_settings(copy_labelled_dir(), filterable_columns=["label"]))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_artists_like_keeps_artists_with_a_track_passing_the_column_filter(
    labelled_client: TestClient,
) -> None:
    response = labelled_client.get("/artists/Cy Moss/similar", params={"filter": "label:Verve"})
    assert response.status_code == 200, response.text
    assert [r["artist"] for r in response.json()["results"]] == ["Ana Ruiz"]

    both = labelled_client.get(
        "/artists/Cy Moss/similar", params=[("filter", "label:Verve"), ("filter", "label:ECM")]
    )
    assert {r["artist"] for r in both.json()["results"]} == {"Ana Ruiz", "Bo Lind"}


def test_tracks_like_returns_only_tracks_passing_the_column_filter(
    labelled_client: TestClient,
) -> None:
    track_id = labelled_client.get("/artists/Cy Moss").json()["tracks"][0]["track_id"]
    response = labelled_client.get(
        f"/tracks/{track_id}/similar", params={"filter": "label:Blue Note", "max_per_artist": 5}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    assert all(r["extra"]["label"] == "Blue Note" for r in results)


@pytest.mark.parametrize(
    ("value", "message"),
    [("mood:calm", "not a filterable column"), ("label", "expected column:value")],
)
def test_undeclared_or_malformed_column_filter_is_422(
    labelled_client: TestClient, value: str, message: str
) -> None:
    response = labelled_client.get("/artists/Cy Moss/similar", params={"filter": value})
    assert response.status_code == 422
    assert message in response.json()["detail"]
