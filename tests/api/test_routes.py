"""Every route and field of the HTTP reference (README) over the ingested test catalogue."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from soundalike.api.deps import get_store
from soundalike.core.errors import StoreUnavailable
from soundalike.ingest.devtools.synth import WrittenTrack

ECLAIR = "Éclair Ensemble"


# --- health ------------------------------------------------------------------------------


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.app.state.services.wait_until_in_memory()  # type: ignore[attr-defined]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "artists": 4,
        "tracks": 12,
        "lookups_in_memory": True,
    }


def test_readiness_is_503_when_the_store_is_down(client: TestClient) -> None:
    def store_down() -> None:
        raise StoreUnavailable("qdrant at http://qdrant:6333 refused the connection")

    client.app.dependency_overrides[get_store] = store_down  # type: ignore[attr-defined]
    try:
        ready = client.get("/readyz")
        lookup = client.get("/artists")
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert ready.status_code == 503 and lookup.status_code == 503
    for response in (ready, lookup):
        request_id = response.headers["x-request-id"]
        assert response.json() == {
            "detail": f"the store is not reachable; retry shortly (request id {request_id})"
        }
        assert response.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200


# --- artists -----------------------------------------------------------------------------


def test_list_artists_with_counts_and_total(
    client: TestClient, api_catalogue: list[WrittenTrack]
) -> None:
    body = client.get("/artists").json()
    assert body["total"] == 4 and body["limit"] == 50 and body["offset"] == 0
    assert sorted(a["artist"] for a in body["artists"]) == sorted({t.artist for t in api_catalogue})
    assert all(a["track_count"] == 3 for a in body["artists"])


def test_list_artists_pages(client: TestClient) -> None:
    everyone = [a["artist"] for a in client.get("/artists").json()["artists"]]
    first = client.get("/artists?limit=2").json()
    second = client.get("/artists?limit=2&offset=2").json()
    assert first["total"] == second["total"] == 4
    assert [a["artist"] for a in first["artists"] + second["artists"]] == everyone
    assert client.get("/artists?offset=10").json()["artists"] == []


@pytest.mark.parametrize("prefix", ["ecl", "ÉCL", "éclair ens"])
def test_prefix_search_ignores_case_and_accents(client: TestClient, prefix: str) -> None:
    body = client.get("/artists", params={"q": prefix}).json()
    assert [a["artist"] for a in body["artists"]] == [ECLAIR]
    assert body["total"] == 1


def test_prefix_search_without_match_is_empty(client: TestClient) -> None:
    assert client.get("/artists?q=zzz").json() == {
        "artists": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }


@pytest.mark.parametrize("spelling", ["Éclair Ensemble", "eclair ensemble", "ECLAIR  ensemble"])
def test_one_artist_with_its_tracks(
    client: TestClient, api_catalogue: list[WrittenTrack], spelling: str
) -> None:
    response = client.get(f"/artists/{quote(spelling)}")
    assert response.status_code == 200
    body = response.json()
    written = [t for t in api_catalogue if t.artist == ECLAIR]
    assert body["artist"] == ECLAIR and body["track_count"] == 3
    assert body["genres"] == [written[0].genre]
    assert sorted(t["title"] for t in body["tracks"]) == sorted(t.title for t in written)
    for track in body["tracks"]:
        assert track["artist"] == ECLAIR and track["album"] == written[0].album
        assert track["duration_seconds"] == pytest.approx(9.0, abs=0.1)
        assert set(track) == {
            "track_id",
            "artist",
            "title",
            "album",
            "genre",
            "year",
            "duration_seconds",
            "extra",
        }


def test_similar_artists_excludes_the_artist_best_first(client: TestClient) -> None:
    response = client.get("/artists/eclair%20ensemble/similar")
    assert response.status_code == 200
    body = response.json()
    assert body["artist"] == ECLAIR
    names = [r["artist"] for r in body["results"]]
    assert len(names) == 3 and ECLAIR not in names
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    for result in body["results"]:
        assert set(result) == {"artist", "score", "track_count"}
        assert result["track_count"] == 3


def test_similar_artists_limit(client: TestClient) -> None:
    full = client.get("/artists/eclair%20ensemble/similar").json()["results"]
    one = client.get("/artists/eclair%20ensemble/similar?limit=1").json()["results"]
    assert one == full[:1]


def test_similar_artists_explain_adds_closest_track_pairs(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    body = client.get("/artists/Éclair Ensemble/similar", params={"explain": "true"}).json()
    own_ids = {t["track_id"]: t["title"] for t in tracks_by_artist[ECLAIR]}
    assert body["results"]
    for result in body["results"]:
        pairs = result["closest_pairs"]
        other_ids = {t["track_id"]: t["title"] for t in tracks_by_artist[result["artist"]]}
        assert 1 <= len(pairs) <= 3
        assert [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
        for pair in pairs:
            assert own_ids[pair["track"]["track_id"]] == pair["track"]["title"]
            assert other_ids[pair["other_track"]["track_id"]] == pair["other_track"]["title"]
        # Each track is used once per result.
        assert len({p["track"]["track_id"] for p in pairs}) == len(pairs)


def test_similar_artists_filters(client: TestClient, api_catalogue: list[WrittenTrack]) -> None:
    harbour = next(t for t in api_catalogue if t.artist == "The Quiet Harbour")
    by_genre = client.get("/artists/eclair ensemble/similar", params={"genre": harbour.genre})
    assert [r["artist"] for r in by_genre.json()["results"]] == ["The Quiet Harbour"]
    by_album = client.get("/artists/eclair ensemble/similar", params={"album": harbour.album})
    assert [r["artist"] for r in by_album.json()["results"]] == ["The Quiet Harbour"]
    year = client.get("/artists/The Quiet Harbour").json()["tracks"][0]["year"]
    by_year = client.get("/artists/eclair ensemble/similar", params={"year": year})
    assert [r["artist"] for r in by_year.json()["results"]] == ["The Quiet Harbour"]
    nobody = client.get("/artists/eclair ensemble/similar", params={"genre": "polka"})
    assert nobody.json() == {"artist": ECLAIR, "results": []}
    assert client.get("/artists/eclair ensemble/similar?min_tracks=4").json()["results"] == []


def test_unknown_artist_is_404_with_suggestions(client: TestClient) -> None:
    for path in ("/artists/eclair%20ensembel/similar", "/artists/eclair%20ensembel"):
        response = client.get(path)
        assert response.status_code == 404
        body = response.json()
        assert set(body) == {"detail", "suggestions"}
        assert isinstance(body["detail"], str) and "eclair ensembel" in body["detail"]
        assert body["suggestions"][0] == ECLAIR


def test_artist_names_with_a_slash_route(client: TestClient) -> None:
    response = client.get("/artists/AC%2FDC/similar")
    assert response.status_code == 404
    assert "'AC/DC'" in response.json()["detail"]


# --- tracks ------------------------------------------------------------------------------


def test_track_metadata(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    listed = tracks_by_artist["Señora Luna"][0]
    response = client.get(f"/tracks/{listed['track_id']}")
    assert response.status_code == 200
    assert response.json() == listed


def test_similar_tracks_never_itself_at_most_two_per_artist(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    query = tracks_by_artist[ECLAIR][0]
    body = client.get(f"/tracks/{query['track_id']}/similar?limit=100").json()
    assert body["track"] == query
    ids = [r["track_id"] for r in body["results"]]
    assert query["track_id"] not in ids and len(ids) == len(set(ids))
    per_artist: dict[str, int] = {}
    for result in body["results"]:
        per_artist[result["artist"]] = per_artist.get(result["artist"], 0) + 1
    assert per_artist and max(per_artist.values()) == 2  # default max_per_artist
    assert len(ids) == 8  # 4 artists x 2, the query's own artist has 2 others left
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_similar_tracks_options(
    client: TestClient, tracks_by_artist: dict[str, list[dict[str, Any]]]
) -> None:
    query = tracks_by_artist[ECLAIR][1]["track_id"]
    uncapped = client.get(f"/tracks/{query}/similar?limit=100&max_per_artist=3").json()
    assert len(uncapped["results"]) == 11
    others = client.get(f"/tracks/{query}/similar?exclude_same_artist=true&max_per_artist=3")
    assert {r["artist"] for r in others.json()["results"]} == set(tracks_by_artist) - {ECLAIR}
    assert len(others.json()["results"]) == 9
    three = client.get(f"/tracks/{query}/similar?limit=3").json()["results"]
    assert len(three) == 3
    folk = client.get(f"/tracks/{query}/similar", params={"genre": "folk", "max_per_artist": 3})
    assert {r["genre"] for r in folk.json()["results"]} <= {"folk"}


def test_unknown_and_malformed_track_ids(client: TestClient) -> None:
    unknown = client.get("/tracks/00000000-0000-5000-8000-000000000000")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown track '00000000-0000-5000-8000-000000000000'"}
    assert client.get("/tracks/00000000-0000-5000-8000-000000000000/similar").status_code == 404
    for bad in ("not-a-uuid", "1234", "%00", "../../etc"):
        response = client.get(f"/tracks/{bad}")
        assert response.status_code in (404, 422), (bad, response.text)
        assert set(response.json()) == {"detail"}


# --- similarity matrix -------------------------------------------------------------------


def test_similarity_matrix(client: TestClient) -> None:
    names = ["eclair ensemble", "señora luna", "The Quiet Harbour"]
    body = client.get("/similarity", params=[("artist", n) for n in names]).json()
    assert body["artists"] == [ECLAIR, "Señora Luna", "The Quiet Harbour"]
    matrix = body["matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    for i in range(3):
        assert matrix[i][i] == pytest.approx(1.0, abs=1e-5)
        for j in range(3):
            assert matrix[i][j] == pytest.approx(matrix[j][i], abs=1e-6)
    similar = client.get("/artists/eclair ensemble/similar").json()["results"]
    luna = next(r["score"] for r in similar if r["artist"] == "Señora Luna")
    assert matrix[0][1] == pytest.approx(luna, abs=1e-5)


def test_similarity_matrix_errors(client: TestClient) -> None:
    unknown = client.get("/similarity?artist=eclair%20ensemble&artist=nobody%20here")
    assert unknown.status_code == 404 and "nobody here" in unknown.json()["detail"]
    assert client.get("/similarity").status_code == 422
    too_many = client.get("/similarity", params=[("artist", ECLAIR)] * 51)
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("artist:")


# --- bad parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("min_tracks=-1", "min_tracks"),
        ("min_tracks=0", "min_tracks"),
        ("explain=maybe", "explain"),
        ("year=nineteen", "year"),
    ],
)
def test_bad_parameters_are_422_with_a_readable_detail(
    client: TestClient, query: str, field: str
) -> None:
    response = client.get(f"/artists/eclair%20ensemble/similar?{query}")
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"detail"} and body["detail"].startswith(f"{field}: ")


def test_limit_detail_names_the_bound(client: TestClient) -> None:
    response = client.get("/artists/eclair%20ensemble/similar?limit=1000")
    assert response.json() == {"detail": "limit: Input should be less than or equal to 100"}


def test_a_name_that_folds_to_nothing_is_an_unknown_artist(client: TestClient) -> None:
    response = client.get("/artists/%20%20/similar")
    assert response.status_code == 404 and response.json()["suggestions"] == []


def test_track_route_parameters(client: TestClient) -> None:
    some = client.get("/artists").json()["artists"][0]["artist"]
    track = client.get(f"/artists/{some}").json()["tracks"][0]["track_id"]
    for query in ("limit=0", "limit=101", "max_per_artist=0", "exclude_same_artist=perhaps"):
        response = client.get(f"/tracks/{track}/similar?{query}")
        assert response.status_code == 422, query
        assert response.json()["detail"].startswith(query.split("=")[0] + ": ")


# --- error shapes, request ids, access log, 500s -----------------------------------------


def test_error_shape_is_exactly_detail(client: TestClient) -> None:
    for path in ("/tracks/00000000-0000-5000-8000-000000000000", "/artists?limit=0", "/nowhere"):
        body = client.get(path).json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str), path


def test_request_id_is_returned_and_honoured(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    given = client.get("/healthz", headers={"X-Request-ID": "front-end-42"})
    assert given.headers["x-request-id"] == "front-end-42"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "a b\tc"})
    assert unsafe.headers["x-request-id"] not in ("a b\tc", "")


def test_access_log_is_one_json_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="soundalike.access"):
        client.get("/artists/eclair%20ensemble/similar", headers={"X-Request-ID": "abc-123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "soundalike.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "abc-123" and line["method"] == "GET" and line["status"] == 200
    assert line["path"] == "/artists/eclair ensemble/similar"
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


def test_unexpected_failure_is_a_generic_500(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_store() -> None:
        raise RuntimeError("password=hunter2 at db.internal:5432")

    # Broken where both the route and the artists-like-X fast path get their store.
    services = client.app.state.services  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "opened_store", broken_store)
        with caplog.at_level(logging.ERROR, logger="soundalike.api"):
            response = client.get("/artists/eclair%20ensemble/similar")
    assert response.status_code == 500
    body = response.json()
    assert list(body) == ["detail"]
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id in body["detail"]
    # The operator gets the traceback, keyed by the same id.
    logged = [r for r in caplog.records if r.name == "soundalike.api" and r.exc_info]
    assert logged and request_id in logged[0].getMessage()


def test_openapi_lists_every_route_and_error(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/healthz",
        "/readyz",
        "/artists",
        "/artists/{artist}",
        "/artists/{artist}/similar",
        "/tracks/{track_id}",
        "/tracks/{track_id}/similar",
        "/search/audio",
        "/similarity",
    }
    similar = paths["/artists/{artist}/similar"]["get"]
    assert {"200", "404", "422"} <= set(similar["responses"])
    not_found = similar["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    assert not_found.endswith("/ArtistNotFoundBody")
    assert {p["name"] for p in similar["parameters"]} >= {
        "artist",
        "limit",
        "min_tracks",
        "genre",
        "album",
        "year",
        "explain",
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["SimilarArtistResult"]["properties"]) == {
        "artist",
        "score",
        "track_count",
        "closest_pairs",
    }
    assert set(schemas["ErrorBody"]["properties"]) == {"detail"}
    upload = paths["/search/audio"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {**form["properties"]["file"], "format": "binary"}
    assert {"413", "415", "422", "503"} <= set(upload["responses"])
    assert client.get("/docs").status_code == 200
