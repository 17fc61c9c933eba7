"""POST /radio, GET /tracks/{a}/path/{b} and POST /paths over the shared API catalogue."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

API_KEY = "r" * 24


def _all_ids(tracks_by_artist: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [t["track_id"] for tracks in tracks_by_artist.values() for t in tracks]


def test_radio_from_tracks_and_artists(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    names = sorted(tracks_by_artist)
    liked = tracks_by_artist[names[0]][0]["track_id"]
    unliked_artist = names[1]
    played = tracks_by_artist[names[2]][0]["track_id"]
    response = client.post(
        "/radio",
        json={
            "like": [{"track_id": liked}, {"artist": names[3].upper()}],
            "unlike": [{"artist": unliked_artist}],
            "limit": 20,
            "max_per_artist": 2,
            "exclude_track_ids": [played],
        },
    )
    assert response.status_code == 200, response.text
    tracks = response.json()["tracks"]
    ids = [t["track_id"] for t in tracks]
    assert liked not in ids and played not in ids
    assert unliked_artist not in {t["artist"] for t in tracks}
    counts: dict[str, int] = {}
    for track in tracks:
        counts[track["artist"]] = counts.get(track["artist"], 0) + 1
    assert max(counts.values()) <= 2
    assert len(tracks) == 2 * 3  # three artists left, two each
    scores = [t["score"] for t in tracks]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= s <= 1 for s in scores)


def test_radio_without_a_cap_fills_the_limit(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    seed = _all_ids(tracks_by_artist)[0]
    response = client.post(
        "/radio", json={"like": [{"track_id": seed}], "limit": 11, "max_per_artist": None}
    )
    assert response.status_code == 200
    ids = [t["track_id"] for t in response.json()["tracks"]]
    assert len(ids) == 11 and seed not in ids and len(set(ids)) == 11


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"like": []}, 422),
        ({"like": [{"track_id": str(uuid.uuid4())}]}, 404),
        ({"like": [{"artist": "nobody we know"}]}, 404),
        ({"like": [{"artist": "a", "track_id": str(uuid.uuid4())}]}, 422),
        ({"like": [{"artist": "x"}], "limit": 0}, 422),
        ({"like": [{"artist": "x"}], "surprise": 1}, 422),
    ],
)
def test_radio_bad_requests(client: TestClient, body: dict[str, Any], status: int) -> None:
    response = client.post("/radio", json=body)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_path_between_two_tracks(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    ids = _all_ids(tracks_by_artist)
    start, end = ids[0], ids[-1]
    response = client.get(f"/tracks/{start}/path/{end}", params={"steps": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    path = [t["track_id"] for t in body["tracks"]]
    assert len(path) == 6 and path[0] == start and path[-1] == end
    assert len(set(path)) == 6
    assert body["tracks"][0]["hop_score"] is None
    hops = [t["hop_score"] for t in body["tracks"][1:]]
    assert body["total_distance"] == pytest.approx(sum(1 - h for h in hops), abs=1e-4)
    capped = client.get(f"/tracks/{start}/path/{end}", params={"steps": 12, "max_per_artist": 1})
    artists = [t["artist"] for t in capped.json()["tracks"]]
    assert len(artists) == len(set(artists))


def test_paths_from_artist_seeds(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    names = sorted(tracks_by_artist)
    response = client.post(
        "/paths", json={"start": {"artist": names[0]}, "end": {"artist": names[1]}, "steps": 5}
    )
    assert response.status_code == 200, response.text
    tracks = response.json()["tracks"]
    assert tracks[0]["artist"] == names[0] and tracks[-1]["artist"] == names[1]
    assert len(tracks) == 5


@pytest.mark.parametrize(
    ("make_path", "status"),
    [
        (lambda a, b: f"/tracks/{a}/path/{a}", 422),
        (lambda a, b: f"/tracks/{a}/path/{uuid.uuid4()}", 404),
        (lambda a, b: f"/tracks/{a}/path/{b}?steps=1", 422),
        (lambda a, b: f"/tracks/{a}/path/not-an-id", 422),
    ],
)
def test_path_bad_requests(
    client: TestClient,
    tracks_by_artist: dict[str, list[dict[str, Any]]],
    make_path: Callable[[str, str], str],
    status: int,
) -> None:
    a, b = _all_ids(tracks_by_artist)[:2]
    response = client.get(make_path(a, b))
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_a_bad_bearer_is_401_before_the_body_is_read(
    make_client: Callable[..., AbstractContextManager[TestClient]],
) -> None:
    with make_client(api_key=API_KEY) as client:
        for path in ("/radio", "/paths"):
            for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}):
                response = client.post(
                    path, content=b"\xff not json", headers={**headers, "Content-Type": "x"}
                )
                assert response.status_code == 401, (path, response.text)
                assert set(response.json()) == {"detail"}
        some = str(uuid.uuid4())
        assert client.get(f"/tracks/{some}/path/{uuid.uuid4()}").status_code == 401
        assert (
            client.post(
                "/radio",
                json={"like": [{"artist": "x"}]},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ).status_code
            == 404
        )


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    from soundalike.api.cli import main

    capsys.readouterr()
    code = main(list(argv))
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


def test_cli_path_and_radio_answer_like_http(
    client: TestClient,
    tracks_by_artist: dict[str, list[dict[str, Any]]],
    copy_data_dir: Callable[[], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("SOUNDALIKE_")]:
        monkeypatch.delenv(name)
    names = sorted(tracks_by_artist)
    start, end = tracks_by_artist[names[0]][1]["track_id"], names[2]
    data_dir = str(copy_data_dir())
    code, cli_path = _cli_json(
        capsys, "path", start, end, "--steps", "5", "--data-dir", data_dir, "--json"
    )
    assert code == 0
    http_path = client.post(
        "/paths", json={"start": {"track_id": start}, "end": {"artist": end}, "steps": 5}
    ).json()
    assert [t["track_id"] for t in cli_path["tracks"]] == [
        t["track_id"] for t in http_path["tracks"]
    ]
    assert cli_path["total_distance"] == http_path["total_distance"]

    code, cli_radio = _cli_json(
        capsys,
        "radio",
        "--like",
        start,
        "--like",
        names[1],
        "--unlike",
        names[3],
        "--limit",
        "6",
        "--data-dir",
        data_dir,
        "--json",
    )
    assert code == 0
    http_radio = client.post(
        "/radio",
        json={
            "like": [{"track_id": start}, {"artist": names[1]}],
            "unlike": [{"artist": names[3]}],
            "limit": 6,
        },
    ).json()
    assert [(t["track_id"], t["score"]) for t in cli_radio["tracks"]] == [
        (t["track_id"], t["score"]) for t in http_radio["tracks"]
    ]


def test_cli_unknown_seed_exits_1(
    copy_data_dir: Callable[[], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from soundalike.api.cli import main

    data_dir = str(copy_data_dir())
    assert main(["radio", "--like", "nobody we know", "--data-dir", data_dir]) == 1
    assert "nobody we know" in capsys.readouterr().err
    assert main(["path", "a", "b", "--steps", "1", "--data-dir", data_dir]) == 2
