"""The AudioMuse-AI routes under /api, called the way the media-server plugins call them.

The catalogue is a manifest with an `item_id` column, as a media server's ids come in: Jellyfin
GUIDs stored with dashes and without, LMS track numbers, Navidrome ids, and one artist with no
ids at all (our own track ids are then the ids). Requests copy the plugins' own code:
- Navidrome (AudioMuse-AI-NV-plugin, main.go): `GET /api/similar_tracks?eliminate_duplicates=
  true&item_id=ID&n=N&radius_similarity=true` (Go's sorted url.Values), `GET /api/similar_artists?
  artist=ID&include_component_matches=BOOL&n=10`, `Authorization: Bearer TOKEN` when set;
- Jellyfin (audiomuse-ai-plugin, AudioMuseService.cs / InstantMixController.cs): `GET
  /api/similar_tracks?n=N&item_id=<Guid.ToString("N")>` (32 hex digits), `find_path?
  start_song_id=&end_song_id=&max_steps=`, `search_tracks?title=&artist=`, `POST /api/alchemy`;
- LMS (lms-audiomuse-mixer, API.pm): `similar_tracks?item_id=&n=&eliminate_duplicates=true&
  radius_similarity=true&mood_similarity=true`, `find_path`, alchemy with `type: song`, headers
  `Accept: application/json` and the bearer.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from apps import ingest_into
from fastapi.testclient import TestClient

from soundalike.api.settings import Settings
from soundalike.ingest.devtools.synth import WrittenTrack, write_catalogue
from tests.api.conftest import copier

API_KEY = "m" * 24
ARTISTS = 5
TRACKS_PER_ARTIST = 4


def _item_id(artist_index: int, track_index: int) -> str | None:
    """Artist 0: Jellyfin GUIDs with dashes; 1: without (Guid "N"); 2: LMS numbers;
    3: Navidrome-style ids; 4: none (our track ids stand in)."""
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"item-{artist_index}-{track_index}")
    return [
        str(guid),
        guid.hex,
        str(100 + track_index),
        f"nd{artist_index}x{track_index}AbCdEf",
        None,
    ][artist_index]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenTrack]:
    root = tmp_path_factory.mktemp("audiomuse-catalogue")
    return write_catalogue(
        root, artists=ARTISTS, tracks_per_artist=TRACKS_PER_ARTIST, seconds=6.0, formats=("wav",)
    )


@pytest.fixture(scope="module")
def media(written: list[WrittenTrack]) -> dict[str, Any]:
    """What the media server knows: item ids by (artist, title), artist ids by artist."""
    artists = sorted({t.artist for t in written}, key=[t.artist for t in written].index)
    items: dict[tuple[str, str], str | None] = {}
    for t in written:
        a = artists.index(t.artist)
        n = [w.title for w in written if w.artist == t.artist].index(t.title)
        items[(t.artist, t.title)] = _item_id(a, n)
    artist_ids = {name: f"ar-{i}" for i, name in enumerate(artists) if i != 4}
    return {"artists": artists, "items": items, "artist_ids": artist_ids}


@pytest.fixture(scope="module")
def copy_audiomuse_dir(
    written: list[WrittenTrack],
    media: dict[str, Any],
    tiny_embedder: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[], Path]:
    """A fresh copy per call of the media catalogue, ingested once."""
    manifest = written[0].path.parent.parent / "catalogue.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "artist", "title", "album", "genre", "item_id", "artist_id"])
        for t in written:
            writer.writerow(
                [
                    str(t.path),
                    t.artist,
                    t.title,
                    t.album,
                    t.genre,
                    media["items"][(t.artist, t.title)] or "",
                    media["artist_ids"].get(t.artist, ""),
                ]
            )
    audiomuse_dir = ingest_into(
        tmp_path_factory.mktemp("audiomuse-ingested"),
        manifest,
        tiny_embedder,
        expected=ARTISTS * TRACKS_PER_ARTIST,
    )
    return copier(audiomuse_dir, tmp_path_factory, "audiomuse-data")


@pytest.fixture(scope="module")
def am(
    copy_audiomuse_dir: Callable[[], Path], make_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    """The app on the media catalogue, with an API key (plugins send it as a bearer)."""
    from soundalike.api.main import create_app

    app = create_app(make_settings(copy_audiomuse_dir(), api_key=API_KEY))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


@pytest.fixture(scope="module")
def catalogue(am: TestClient) -> dict[str, dict[str, Any]]:
    """Every track by its media id: our track id, artist, title and vector (read from the store
    through the app's own services)."""
    store = am.app.state.services.store()  # type: ignore[attr-defined]
    by_media: dict[str, dict[str, Any]] = {}
    for key in store.artist_names():
        for track in store.tracks_of_artist(key, with_vectors=True):
            media_id = track.item_id or track.track_id
            by_media[media_id] = {
                "track_id": track.track_id,
                "artist": track.artist,
                "title": track.title,
                "vector": np.asarray(track.vector, dtype=np.float64),
            }
    assert len(by_media) == ARTISTS * TRACKS_PER_ARTIST
    return by_media


def _ids_of_artist(catalogue: dict[str, dict[str, Any]], artist: str) -> list[str]:
    return [media_id for media_id, t in catalogue.items() if t["artist"] == artist]


def _cos(catalogue: dict[str, dict[str, Any]], a: str, b: str) -> float:
    return float(catalogue[a]["vector"] @ catalogue[b]["vector"])


# --- health and auth ----------------------------------------------------------------------


def test_health_needs_no_key(am: TestClient) -> None:
    response = am.get("/api/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/similar_tracks?item_id=101&n=5"),
        ("GET", "/api/find_path?start_song_id=101&end_song_id=102"),
        ("GET", "/api/similar_artists?artist=ar-0"),
        ("GET", "/api/search_tracks?search_query=a"),
        ("POST", "/api/alchemy"),
        ("GET", "/api/max_distance?item_id=101"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-wrong-key", f"Basic {API_KEY}"])
def test_a_missing_or_wrong_bearer_is_401_in_the_contract_shape(
    am: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization or ""}
    body = {"items": [{"id": "101", "op": "ADD", "type": "song"}]}
    response = am.request(method, path, headers=headers, json=body if method == "POST" else None)
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_our_own_routes_keep_their_error_shape(am: TestClient) -> None:
    response = am.get(f"/tracks/{uuid.uuid4()}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


# --- similar tracks -----------------------------------------------------------------------


def _expected_similar(
    catalogue: dict[str, dict[str, Any]], seed: str, n: int, cap: int | None
) -> list[str]:
    ranked = sorted((m for m in catalogue if m != seed), key=lambda m: -_cos(catalogue, seed, m))
    per_artist: dict[str, int] = {}
    answer = []
    for media_id in ranked:
        artist = catalogue[media_id]["artist"]
        if cap is not None and per_artist.get(artist, 0) >= cap:
            continue
        per_artist[artist] = per_artist.get(artist, 0) + 1
        answer.append(media_id)
    return answer[:n]


def test_navidrome_similar_tracks(am: TestClient, catalogue: dict[str, dict[str, Any]]) -> None:
    seed = "nd3x1AbCdEf"
    response = am.get(
        "/api/similar_tracks?eliminate_duplicates=true&item_id=nd3x1AbCdEf&n=12"
        "&radius_similarity=true"
    )
    assert response.status_code == 200, response.text
    rows = response.json()
    assert isinstance(rows, list)
    assert [r["item_id"] for r in rows] == _expected_similar(catalogue, seed, 12, 3)
    for row in rows:
        assert set(row) == {"item_id", "title", "author", "album", "album_artist", "distance"}
        track = catalogue[row["item_id"]]
        assert (row["title"], row["author"]) == (track["title"], track["artist"])
        assert row["distance"] == pytest.approx(1 - _cos(catalogue, seed, row["item_id"]), abs=1e-5)
    distances = [r["distance"] for r in rows]
    assert distances == sorted(distances)
    assert seed not in {r["item_id"] for r in rows}


def test_eliminate_duplicates_false_lifts_the_artist_cap(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    seed = "101"
    capped = am.get(f"/api/similar_tracks?item_id={seed}&n=19").json()
    uncapped = am.get(f"/api/similar_tracks?item_id={seed}&n=19&eliminate_duplicates=false").json()
    assert len(uncapped) == 19
    assert [r["item_id"] for r in uncapped] == _expected_similar(catalogue, seed, 19, None)
    counts: dict[str, int] = {}
    for row in capped:
        counts[row["author"]] = counts.get(row["author"], 0) + 1
    assert max(counts.values()) == 3
    # Every artist gives 3: four others, and the seed's own (its 3 other tracks).
    assert len(capped) == 3 * ARTISTS


def test_jellyfin_sends_guids_without_dashes(
    am: TestClient, catalogue: dict[str, dict[str, Any]], media: dict[str, Any]
) -> None:
    dashed = _item_id(0, 2)
    assert dashed is not None and "-" in dashed
    dashless = uuid.UUID(dashed).hex
    response = am.get(f"/api/similar_tracks?n=199&item_id={dashless}")  # InstantMix, limit 200
    assert response.status_code == 200, response.text
    ids = [r["item_id"] for r in response.json()]
    assert ids == _expected_similar(catalogue, dashed, 199, 3)
    # Jellyfin parses each item_id as a Guid: every GUID answered parses.
    for media_id in ids:
        if len(media_id.replace("-", "")) == 32:
            uuid.UUID(media_id)
    # And an id stored without dashes is found from its dashed spelling.
    stored_dashless = _item_id(1, 0)
    assert stored_dashless is not None
    spelled = str(uuid.UUID(stored_dashless))
    assert am.get(f"/api/similar_tracks?item_id={spelled}&n=3").status_code == 200


def test_lms_similar_tracks_with_every_flag(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    response = am.get(
        "/api/similar_tracks?item_id=102&n=20&eliminate_duplicates=true&radius_similarity=true"
        "&mood_similarity=true",
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert [r["item_id"] for r in response.json()] == _expected_similar(catalogue, "102", 20, 3)


def test_tracks_without_a_server_id_answer_with_ours(
    am: TestClient, catalogue: dict[str, dict[str, Any]], media: dict[str, Any]
) -> None:
    seed = _ids_of_artist(catalogue, media["artists"][4])[0]
    assert uuid.UUID(seed)  # our track id
    response = am.get(f"/api/similar_tracks?item_id={seed}&n=5&eliminate_duplicates=false")
    assert [r["item_id"] for r in response.json()] == _expected_similar(catalogue, seed, 5, None)


def test_similar_tracks_by_title_and_artist(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    seed = "nd3x2AbCdEf"
    track = catalogue[seed]
    response = am.get(
        "/api/similar_tracks",
        params={"title": track["title"].upper(), "artist": track["artist"], "n": 4},
    )
    assert response.status_code == 200, response.text
    assert [r["item_id"] for r in response.json()] == _expected_similar(catalogue, seed, 4, 3)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),  # nothing to go on
        ("?title=only%20a%20title", 400),
        ("?artist=only", 400),
        ("?item_id=101&title=x&artist=y", 400),  # contradictory
        ("?item_id=101&n=0", 400),
        ("?item_id=101&n=lots", 400),
        ("?item_id=101&eliminate_duplicates=perhaps", 400),
        ("?item_id=no-such-item", 404),
        ("?title=no%20such%20title&artist=nobody", 404),
        (f"?item_id={uuid.uuid4().hex}", 404),
    ],
)
def test_similar_tracks_errors(am: TestClient, query: str, status: int) -> None:
    response = am.get(f"/api/similar_tracks{query}")
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]


# --- find path ----------------------------------------------------------------------------


def test_find_path_ends_length_and_no_repeats(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    start, end = _item_id(0, 0), "nd3x3AbCdEf"
    assert start is not None
    jellyfin_start = uuid.UUID(start).hex  # Jellyfin's spelling
    response = am.get(
        f"/api/find_path?start_song_id={jellyfin_start}&end_song_id={end}&max_steps=8"
        "&path_fix_size=true"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [song["item_id"] for song in body["path"]]
    assert len(ids) == 8
    assert ids[0] == start and ids[-1] == end
    assert len(set(ids)) == len(ids)
    assert set(body["path"][0]) == {"item_id", "title", "author", "album"}
    hops = [1 - _cos(catalogue, a, b) for a, b in zip(ids, ids[1:], strict=False)]
    assert body["total_distance"] == pytest.approx(sum(hops), abs=1e-4)


def test_find_path_without_fixed_size_never_hops_further_than_the_direct_distance(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    ids = list(catalogue)
    pairs = [(a, b) for a in ids[::3] for b in ids[1::4] if a != b][:8]
    for start, end in pairs:
        response = am.get(
            "/api/find_path", params={"start_song_id": start, "end_song_id": end}
        )  # LMS/Jellyfin defaults: no path_fix_size, max_steps 25
        assert response.status_code == 200, response.text
        path = [song["item_id"] for song in response.json()["path"]]
        assert path[0] == start and path[-1] == end
        assert 2 <= len(path) <= 25 and len(set(path)) == len(path)
        direct = 1 - _cos(catalogue, start, end)
        for a, b in zip(path, path[1:], strict=False):
            assert 1 - _cos(catalogue, a, b) <= direct + 1e-5


@pytest.mark.parametrize(
    ("route", "query", "status"),
    [
        ("find_path", "?start_song_id=101", 400),
        ("find_path", "?end_song_id=101", 400),
        ("find_path", "?start_song_id=101&end_song_id=101", 400),
        ("find_path", "?start_song_id=101&end_song_id=102&max_steps=1", 400),
        ("find_path", "?start_song_id=101&end_song_id=nope", 404),
        ("similar_artists", "", 400),
        ("similar_artists", "?artist=ar-0&artist_id=ar-1", 400),
        ("similar_artists", "?artist=nobody%20we%20know", 404),
        ("similar_artists", "?artist_id=ar-99", 404),
        ("similar_artists", "?artist=ar-0&n=0", 400),
    ],
)
def test_find_path_and_similar_artists_errors(
    am: TestClient, route: str, query: str, status: int
) -> None:
    response = am.get(f"/api/{route}{query}")
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


def test_find_path_same_track_in_two_spellings_is_400(am: TestClient) -> None:
    dashed = _item_id(0, 1)
    assert dashed is not None
    response = am.get(f"/api/find_path?start_song_id={dashed}&end_song_id={uuid.UUID(dashed).hex}")
    assert response.status_code == 400
    assert "same track" in response.json()["error"]


# --- similar artists ----------------------------------------------------------------------


def test_navidrome_similar_artists_by_artist_id(am: TestClient, media: dict[str, Any]) -> None:
    response = am.get("/api/similar_artists?artist=ar-1&include_component_matches=false&n=10")
    assert response.status_code == 200, response.text
    rows = response.json()
    names = [r["artist"] for r in rows]
    assert media["artists"][1] not in names
    assert sorted(names) == sorted(a for a in media["artists"] if a != media["artists"][1])
    for row in rows:
        assert set(row) == {"artist", "artist_id", "divergence", "track_count"}
        assert row["artist_id"] == media["artist_ids"].get(row["artist"], row["artist"])
        assert row["track_count"] == TRACKS_PER_ARTIST
    divergences = [r["divergence"] for r in rows]
    assert divergences == sorted(divergences)


def test_component_matches_name_tracks_of_both_artists(
    am: TestClient, catalogue: dict[str, dict[str, Any]], media: dict[str, Any]
) -> None:
    asked = media["artists"][2]
    response = am.get(
        "/api/similar_artists", params={"artist": asked, "include_component_matches": "true"}
    )
    assert response.status_code == 200, response.text
    for row in response.json():
        assert row["component_matches"]
        for match in row["component_matches"]:
            (mine,) = match["artist1_representative_songs"]
            (theirs,) = match["artist2_representative_songs"]
            assert catalogue[mine["item_id"]]["artist"] == asked
            assert catalogue[theirs["item_id"]]["artist"] == row["artist"]
            assert mine["title"] == catalogue[mine["item_id"]]["title"]
            expected = 1 - _cos(catalogue, mine["item_id"], theirs["item_id"])
            assert match["distance"] == pytest.approx(expected, abs=1e-4)


def test_similar_artists_cli_http_and_audiomuse_agree(
    am: TestClient,
    media: dict[str, Any],
    copy_audiomuse_dir: Callable[[], Path],
) -> None:
    asked = media["artists"][0]
    # The precomputed exact lists are valid, so all three answer by the lookup path.
    assert am.app.state.services.store().neighbour_lists_version() is not None  # type: ignore[attr-defined]
    ours = am.get(f"/artists/{asked}/similar", params={"limit": 4}).json()["results"]
    theirs = am.get("/api/similar_artists", params={"artist": asked, "n": 4}).json()
    by_id = am.get("/api/similar_artists", params={"artist_id": "ar-0", "n": 4}).json()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}
    done = subprocess.run(
        [sys.executable, "-m", "soundalike.api.cli", "similar", asked, "--limit", "4", "--json"]
        + ["--data-dir", str(copy_audiomuse_dir())],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    assert (
        [r["artist"] for r in ours] == [r["artist"] for r in theirs] == [r["artist"] for r in cli]
    )
    assert theirs == by_id
    for http_row, am_row, cli_row in zip(ours, theirs, cli, strict=True):
        assert am_row["divergence"] == pytest.approx(1 - http_row["score"], abs=1e-6)
        assert cli_row["score"] == http_row["score"]


# --- search -------------------------------------------------------------------------------


def test_search_tracks(am: TestClient, catalogue: dict[str, dict[str, Any]]) -> None:
    track = catalogue["nd3x0AbCdEf"]
    word = track["title"].split()[-1]
    rows = am.get("/api/search_tracks", params={"search_query": word.lower()}).json()
    assert "nd3x0AbCdEf" in {r["item_id"] for r in rows}
    assert all(word.lower() in (r["title"] + r["author"] + r["album"]).lower() for r in rows)
    assert set(rows[0]) == {"item_id", "title", "author", "album", "album_artist"}
    # Jellyfin: title and artist
    rows = am.get(
        "/api/search_tracks", params={"title": track["title"], "artist": track["artist"]}
    ).json()
    assert [r["item_id"] for r in rows] == ["nd3x0AbCdEf"]
    # Paging with start/end
    every = am.get("/api/search_tracks", params={"search_query": " "}).json()
    assert every == []
    everything = am.get("/api/search_tracks", params={"search_query": "0"}).json()
    page = am.get("/api/search_tracks", params={"search_query": "0", "start": 1, "end": 3}).json()
    assert page == everything[1:3]


@pytest.mark.parametrize(
    "query",
    ["?search_query=a&title=b", "?search_query=a&start=5&end=2", "?search_query=a&end=501"],
)
def test_search_tracks_errors(am: TestClient, query: str) -> None:
    response = am.get(f"/api/search_tracks{query}")
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


# --- alchemy ------------------------------------------------------------------------------


def test_lms_alchemy_adds_and_subtracts_songs(
    am: TestClient, catalogue: dict[str, dict[str, Any]]
) -> None:
    added, subtracted = ["101", "nd3x0AbCdEf"], ["103"]
    body = {
        "items": [{"id": i, "op": "ADD", "type": "song"} for i in added]
        + [{"id": i, "op": "SUBTRACT", "type": "song"} for i in subtracted],
        "n": 8,
    }
    response = am.post("/api/alchemy", json=body, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    query = sum(catalogue[i]["vector"] for i in added) - catalogue[subtracted[0]]["vector"]
    query = query / np.linalg.norm(query)
    ranked = sorted(
        (m for m in catalogue if m not in added + subtracted),
        key=lambda m: -float(catalogue[m]["vector"] @ query),
    )
    assert [r["item_id"] for r in results] == ranked[:8]
    for row in results:
        expected = 1 - float(catalogue[row["item_id"]]["vector"] @ query)
        assert row["distance"] == pytest.approx(expected, abs=1e-4)


def test_alchemy_with_artists(am: TestClient, media: dict[str, Any]) -> None:
    body = {
        "items": [
            {"id": "ar-0", "op": "ADD", "type": "artist"},
            {"id": media["artists"][2], "op": "SUBTRACT", "type": "artist"},
        ],
        "n": 10,
    }
    response = am.post("/api/alchemy", json=body)
    assert response.status_code == 200, response.text
    authors = {r["author"] for r in response.json()["results"]}
    assert media["artists"][2] not in authors
    assert len(response.json()["results"]) == 10


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"items": []}, 400),
        ({"items": [{"id": "101", "op": "SUBTRACT", "type": "song"}]}, 400),
        ({"items": [{"id": "101", "op": "MULTIPLY", "type": "song"}]}, 400),
        ({"items": [{"id": "101", "op": "ADD", "type": "song"}], "n": 201}, 400),
        ({"items": [{"id": "no-such", "op": "ADD", "type": "song"}]}, 404),
        ({"items": [{"id": "ar-77", "op": "ADD", "type": "artist"}]}, 404),
        ("not json", 400),
    ],
)
def test_alchemy_errors(am: TestClient, body: Any, status: int) -> None:
    if isinstance(body, str):
        response = am.post(
            "/api/alchemy", content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = am.post("/api/alchemy", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


# --- max distance -------------------------------------------------------------------------


def test_max_distance(am: TestClient, catalogue: dict[str, dict[str, Any]]) -> None:
    seed = "101"
    body = am.get(f"/api/max_distance?item_id={seed}").json()
    farthest = max((m for m in catalogue if m != seed), key=lambda m: 1 - _cos(catalogue, seed, m))
    assert body["farthest_item_id"] == farthest
    assert body["max_distance"] == pytest.approx(1 - _cos(catalogue, seed, farthest), abs=1e-5)
    assert am.get("/api/max_distance?item_id=nope").status_code == 404
    assert am.get("/api/max_distance").status_code == 400


def test_an_empty_server_answers_404_and_empty_lists(
    make_client: Callable[..., AbstractContextManager[TestClient]], tmp_path: Path
) -> None:
    with make_client(data_dir=tmp_path / "empty") as client:
        assert client.get("/api/similar_tracks?item_id=101").status_code == 404
        assert client.get("/api/search_tracks?search_query=x").json() == []
        assert client.get("/api/similar_artists?artist=x").status_code == 404
