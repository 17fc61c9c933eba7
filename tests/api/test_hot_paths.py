"""The lean HTTP path of the hottest routes: bodies serialised once yet shaped exactly like their
response models, artists-like-X following SOUNDALIKE_SIMILAR_LOOKUP and answered on the event
loop only when it is a cheap in-process lookup, and an access-log line built without a
json.dumps per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from fastapi.testclient import TestClient

import soundalike.api.routes.artists as artists_routes
from soundalike.api.errors import access_line
from soundalike.api.schemas import ArtistDetail, ArtistList, SimilarArtists
from soundalike.api.settings import Settings
from soundalike.search.queries import artists_like

ClientFactory = Callable[..., AbstractContextManager[TestClient]]
SIMILAR = "/artists/eclair%20ensemble/similar"


def lists_in_memory(client: TestClient) -> Any:
    """The app's services, once they answer artists-like-X from the lists in memory."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.wait_until_in_memory()
    return services


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The route's calls of artists_like: its keyword arguments and the thread it ran on."""
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs | {"thread": threading.current_thread().name})
        return artists_like(*args, **kwargs)

    monkeypatch.setattr(artists_routes, "artists_like", spy)
    yield seen


def test_similar_artists_body_is_the_response_model_without_unset_keys(
    client: TestClient,
) -> None:
    response = client.get(SIMILAR)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert SimilarArtists.model_validate(body).model_dump(exclude_unset=True) == body
    assert body["artist"] == "Éclair Ensemble" and len(body["results"]) == 3
    assert all(set(r) == {"artist", "score", "track_count"} for r in body["results"])
    explained = client.get(SIMILAR + "?explain=true&limit=1").json()["results"]
    assert len(explained) == 1 and explained[0]["closest_pairs"]


def test_artist_page_and_list_are_their_response_models(client: TestClient) -> None:
    page = client.get("/artists/eclair%20ensemble?limit=2")
    assert page.status_code == 200 and page.headers["content-type"] == "application/json"
    assert ArtistDetail.model_validate(page.json()).model_dump() == page.json()
    assert len(page.json()["tracks"]) == 2 and page.json()["limit"] == 2
    listed = client.get("/artists?limit=2").json()
    assert ArtistList.model_validate(listed).model_dump() == listed
    assert listed["total"] == 4 and len(listed["artists"]) == 2


def test_healthz_is_a_fixed_json_body(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"


def test_similar_lookup_setting_reaches_the_query(
    make_client: ClientFactory, calls: list[dict[str, Any]]
) -> None:
    with make_client() as client:
        looked_up = client.get(SIMILAR).json()
    with make_client(similar_lookup=False) as client:
        live = client.get(SIMILAR).json()
    assert [c["lookup"] for c in calls] == [True, False]
    # Both paths answer the same artists, best first (lookup scores are float16-precise).
    assert [r["artist"] for r in looked_up["results"]] == [r["artist"] for r in live["results"]]
    for a, b in zip(looked_up["results"], live["results"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=2e-3)


def test_only_a_valid_in_process_lookup_runs_on_the_event_loop(
    make_client: ClientFactory, calls: list[dict[str, Any]]
) -> None:
    with make_client() as client:
        assert lists_in_memory(client).store().answers_from_memory()
        for query in ("", "?genre=none-such", "?explain=true"):
            assert client.get(SIMILAR + query).status_code == 200
        loop_thread = calls[0]["thread"]
    with make_client(similar_lookup=False) as client:
        assert client.get(SIMILAR).status_code == 200
    # The plain lookup ran where FastAPI runs async code; filters, explain and lookups off
    # (each a live search or more reads) went to the threadpool's workers.
    others = [c["thread"] for c in calls[1:]]
    assert len(others) == 3 and loop_thread not in others


def test_stale_lists_send_the_query_to_the_threadpool(
    make_client: ClientFactory, calls: list[dict[str, Any]]
) -> None:
    with make_client() as client:
        store = lists_in_memory(client).store()
        first = client.get(SIMILAR).json()
        # The same artist written again: the catalogue version moves on, the lists are stale
        # until their upkeep, and the live search answers (the same artists) off the loop.
        artist = store.get_artist("eclair ensemble", with_centroid=True)
        store.upsert_artists([artist])
        assert not store.answers_from_memory()
        second = client.get(SIMILAR).json()
        store.update_neighbour_lists()
        assert store.answers_from_memory()
        assert client.get(SIMILAR).json()["results"] == first["results"]
    assert calls[0]["thread"] != calls[1]["thread"]
    assert calls[0]["thread"] == calls[2]["thread"]
    assert [r["artist"] for r in second["results"]] == [r["artist"] for r in first["results"]]


def test_a_qdrant_server_store_never_runs_on_the_event_loop(
    make_client: ClientFactory, calls: list[dict[str, Any]]
) -> None:
    from soundalike.search.store import open_store

    settings = Settings(similar_lookup=True)
    on_a_server = open_store(in_memory=True)  # qdrant-client: shared by design, no copy kept
    try:
        assert not on_a_server.load_in_memory()
        decide = artists_routes.answers_on_the_event_loop
        assert not decide(on_a_server, settings, {}, False)
    finally:
        on_a_server.close()


def test_similar_lookup_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().similar_lookup is True
    monkeypatch.setenv("SOUNDALIKE_SIMILAR_LOOKUP", "false")
    assert Settings().similar_lookup is False


@pytest.mark.parametrize(
    ("request_id", "method", "path", "status", "latency"),
    [
        ("abc-123", "GET", "/artists/eclair ensemble/similar", 200, 3.14159),
        ("f" * 32, "POST", '/a"quote\\back\nline\ttab\u2028/Éclair', 500, 0.0),
        ("x", "GET", "/", 404, 12345.678),
    ],
)
def test_access_line_is_what_json_dumps_writes(
    request_id: str, method: str, path: str, status: int, latency: float
) -> None:
    expected = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "latency_ms": round(latency, 2),
    }
    line = access_line(request_id, method, path, status, latency)
    assert line == json.dumps(expected, ensure_ascii=False)
    assert json.loads(line) == expected


@pytest.fixture
def fast_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each request reaching the artists-like-X fast path was answered there."""
    answered: list[bool] = []
    real = artists_routes.SimilarLookupFastPath._answer

    def spy(self: Any, scope: Any) -> Any:
        response = real(self, scope)
        answered.append(response is not None)
        return response

    monkeypatch.setattr(artists_routes.SimilarLookupFastPath, "_answer", spy)
    return answered


def test_the_fast_path_answers_the_plain_lookup_byte_for_byte_as_the_route(
    make_client: ClientFactory, fast_answers: list[bool]
) -> None:
    with make_client() as client:
        lists_in_memory(client)
        for query in ("", "?limit=2", "?min_tracks=3&limit=1", "?limit=100"):
            fast_answers.clear()
            fast = client.get(SIMILAR + query)
            # `explain=false` changes nothing in the answer but is not the fast path's.
            routed = client.get(SIMILAR + (query + "&" if query else "?") + "explain=false")
            assert fast_answers == [True, False], query
            assert fast.status_code == routed.status_code == 200
            assert fast.content == routed.content
            assert fast.headers["content-type"] == routed.headers["content-type"]
            assert fast.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/artists/eclair%20ensembel/similar", 404),  # unknown: suggestions, from the route
        (SIMILAR + "?limit=0", 422),
        (SIMILAR + "?limit=101", 422),
        (SIMILAR + "?limit=ten", 422),
        (SIMILAR + "?limit=%35", 200),  # "5", percent-encoded: the route decodes it
        (SIMILAR + "?limit=2&limit=3", 200),
        (SIMILAR + "?genre=none-such", 200),
        (SIMILAR + "?min_tracks=1000001", 422),
        ("/artists/" + "x" * 501 + "/similar", 422),
    ],
)
def test_what_the_fast_path_cannot_answer_exactly_goes_to_the_route(
    client: TestClient, fast_answers: list[bool], path: str, status: int
) -> None:
    lists_in_memory(client)
    response = client.get(path)
    assert response.status_code == status, response.text
    assert fast_answers == [False]
    if status == 404:
        assert response.json()["suggestions"] == ["Éclair Ensemble"]


def test_the_fast_path_needs_the_key_as_the_route_does(
    make_client: ClientFactory, fast_answers: list[bool]
) -> None:
    key = "k" * 32
    with make_client(api_key=key) as client:
        lists_in_memory(client)
        assert client.get(SIMILAR).status_code == 401
        wrong = client.get(SIMILAR, headers={"Authorization": "Bearer " + "w" * 32})
        assert wrong.status_code == 401
        right = client.get(SIMILAR, headers={"Authorization": f"Bearer {key}"})
        assert right.status_code == 200 and len(right.json()["results"]) == 3
    # The key is checked once, before the fast path: only the request with it gets there.
    assert fast_answers == [True]
