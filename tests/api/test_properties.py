"""Generated requests (hypothesis) over every route: whatever comes in, never a 5xx, and every
error is `{"detail": <str>}`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KNOWN_ARTISTS = ["Éclair Ensemble", "eclair ensemble", "The Quiet Harbour", "Møller & Sons"]

# Text that stresses path and query handling: unicode, separators, controls, percent signs.
texts = st.one_of(
    st.sampled_from(KNOWN_ARTISTS + ["", " ", "/", "%", "..", "?", "#", "%2F", "\x00", "a/b"]),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("aé /%?#&=.\\\t\n+"), max_size=20),
)
numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["", "abc", "1.5", "1e3", "NaN", "-0", "0x10", "١٢"]),  # ١٢: Arabic digits
    st.text(max_size=8),
)
booleans = st.one_of(
    st.sampled_from(["true", "false", "1", "0", "yes", "off"]), st.text(max_size=6)
)
track_ids = st.one_of(st.uuids().map(str), st.text(max_size=40), st.sampled_from(["", "%00"]))


def optional(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.one_of(st.just([]), values.map(lambda v: [(name, v)]))


def params(*named: tuple[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[Any]]:
    return st.tuples(*(optional(n, s) for n, s in named)).map(lambda parts: sum(parts, []))


def route(
    values: st.SearchStrategy[str], template: str, *named: tuple[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[tuple[str, list[Any]]]:
    """A path with one generated segment (quoted into `template`) and optional parameters."""
    return values.flatmap(
        lambda value: st.tuples(st.just(template.format(quote(value, safe=""))), params(*named))
    )


requests = st.one_of(
    st.tuples(st.just("/artists"), params(("q", texts), ("limit", numbers), ("offset", numbers))),
    route(texts, "/artists/{}"),
    route(
        texts,
        "/artists/{}/similar",
        ("limit", numbers),
        ("min_tracks", numbers),
        ("genre", texts),
        ("album", texts),
        ("year", numbers),
        ("explain", booleans),
    ),
    route(track_ids, "/tracks/{}"),
    route(
        track_ids,
        "/tracks/{}/similar",
        ("limit", numbers),
        ("exclude_same_artist", booleans),
        ("max_per_artist", numbers),
        ("genre", texts),
        ("year", numbers),
    ),
    st.tuples(
        st.just("/similarity"),
        st.lists(texts.map(lambda a: ("artist", a)), max_size=55),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_no_generated_request_gets_a_5xx(client: TestClient, request: tuple[str, list]) -> None:
    path, query = request
    response = client.get(path, params=query)
    assert response.status_code < 500, (path, query, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("detail"), str), body
        assert set(body) <= {"detail", "suggestions"}


uploads = st.tuples(
    st.text(max_size=30),
    st.one_of(st.binary(max_size=3000), st.sampled_from([b"", b"RIFF", b"ID3", b"fLaC", b"OggS"])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upload=uploads, limit=numbers)
def test_no_generated_upload_gets_a_5xx(
    client: TestClient, upload: tuple[str, bytes], limit: str
) -> None:
    name, data = upload
    response = client.post("/search/audio", params={"limit": limit}, files={"file": (name, data)})
    assert response.status_code < 500, (name, data[:20], response.text)
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)
