"""The served OpenAPI document is a contract (docs/contracts.md): schemathesis with every check
(`--checks all`), with and without an API key, and fuzzing of what generic generation rarely
reaches: repeated `filter=column:value`, long and odd artist names in the path, and real audio.

Every app runs behind uvicorn on a loopback port, so requests are real HTTP (as with
`schemathesis run --checks all http://127.0.0.1:8000/openapi.json`), each over its own copy of
a catalogue ingested with the tiny MERT checkpoint. Schemathesis parametrizes tests at
collection, before any fixture exists (its lazy `from_fixture` loader breaks on pytest 9.2:
`Function._nodeid` is gone), so the documents it generates from are built here from the same
settings; `test_served_schema_is_the_one_tested` checks the live servers serve exactly them.
No operation is excluded: the open ones (/healthz, /readyz) are tested too; GET / and
/assets/... are out of the schema on purpose (include_in_schema=False; tests/api/test_pages.py).
"""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from soundalike.api.main import create_app
from soundalike.api.settings import Settings
from soundalike.ingest.devtools.synth import WrittenTrack

API_KEY = "k" * 24
# Generated examples per operation (fuzzing phase), on top of the examples and coverage phases;
# with the fuzzing below the whole file runs in about a minute and a half on two cores.
MAX_EXAMPLES = 60
FUZZ_SETTINGS = settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UPLOAD_PATH = "/search/audio"
OPEN_PATHS = {"/healthz", "/readyz", "/api/health"}
ERROR_KEYS = {"detail", "suggestions"}
# AudioMuse-AI's contract (api/routes/audiomuse.py) answers errors as {"error": "..."}, and 400
# for parameter combinations OpenAPI cannot state (item_id, or title and artist; at least one
# added alchemy item): a schema-valid request may get that 400.
AUDIOMUSE_PREFIX = "/api/"
AUDIOMUSE_ID_PARAMETERS = {"item_id", "start_song_id", "end_song_id"}


def all_checks() -> list[Any]:
    """Every registered check: what `--checks all` runs."""
    load_all_checks()
    return list(CHECKS.get_all())


def contract_config(*, bearer: str | None, security_parameters: bool = True) -> schemathesis.Config:
    data: dict[str, Any] = {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "with-security-parameters": security_parameters,
            "database": "none",
        },
        "checks": {"enabled": True},
        "request-timeout": 60,
        "operations": [
            {
                "include-path-regex": f"^{AUDIOMUSE_PREFIX}",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "5xx"]
                    }
                },
            }
        ],
    }
    if bearer is not None:
        data["auth"] = {"openapi": {"HTTPBearer": {"bearer": bearer}}}
    return schemathesis.Config.from_dict(data)


def served_document(**overrides: Any) -> dict[str, Any]:
    """The OpenAPI document an app with these settings serves at /openapi.json."""
    values: dict[str, Any] = {"api_key": None, "filterable_columns": []}
    values.update(overrides)
    return create_app(
        Settings(data_dir=Path("/nonexistent/soundalike-contract"), **values)
    ).openapi()


OPEN_DOCUMENT = served_document()
LOCKED_DOCUMENT = served_document(api_key=API_KEY)
LABELLED_DOCUMENT = served_document(filterable_columns=["label"])


@dataclass
class Catalogue:
    """What a served catalogue holds, filled in by its server fixture before any test runs."""

    artists: list[str] = field(default_factory=list)
    track_ids: list[str] = field(default_factory=list)


STORED = Catalogue()  # the api_catalogue (open and locked servers)
LABELLED = Catalogue()


def schema_for(document: dict[str, Any], catalogue: Catalogue, **config: Any) -> Any:
    """A schemathesis schema whose generated path and query values are now and then names and
    ids of the served catalogue, so 200 answers (and their schemas) are reached as well as 404s.

    Only schema-valid values are swapped (for equally valid ones), so a negative case stays
    negative and a positive one positive."""
    schema = schemathesis.openapi.from_dict(document, config=contract_config(**config))

    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        values = dict(path_parameters)
        if _is_uuid(values.get("track_id")) and catalogue.track_ids:
            return st.one_of(
                st.just(values),
                st.sampled_from(catalogue.track_ids).map(lambda t: {**values, "track_id": t}),
            )
        artist = values.get("artist")
        if isinstance(artist, str) and 1 <= len(artist) <= 500 and catalogue.artists:
            return st.one_of(
                st.just(values),
                st.sampled_from(catalogue.artists).map(lambda a: {**values, "artist": a}),
            )
        return st.just(values)

    def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
        if context.operation.path.startswith(AUDIOMUSE_PREFIX):
            return audiomuse_query(query)
        names = query.get("artist") if isinstance(query, dict) else None
        if (
            query is None
            or context.operation.path != "/similarity"
            or not isinstance(names, list)
            or not 1 <= len(names) <= 50
            or not catalogue.artists
        ):
            return st.just(query)
        real = st.lists(
            st.sampled_from(catalogue.artists), min_size=len(names), max_size=len(names)
        )
        return st.one_of(st.just(query), real.map(lambda chosen: {**query, "artist": chosen}))

    def audiomuse_query(query: dict[str, Any] | None) -> Any:
        """AudioMuse ids are our track ids here (the catalogue has no media-server ids)."""
        if not isinstance(query, dict) or not catalogue.track_ids:
            return st.just(query)
        swaps = [name for name in AUDIOMUSE_ID_PARAMETERS if isinstance(query.get(name), str)]
        if isinstance(query.get("artist"), str) and 1 <= len(query["artist"]) <= 500:
            swaps.append("artist")
        if not swaps:
            return st.just(query)

        def real(name: str) -> Any:
            pool = catalogue.artists if name == "artist" else catalogue.track_ids
            return st.sampled_from(pool)

        chosen = st.fixed_dictionaries({name: real(name) for name in swaps})
        return st.one_of(st.just(query), chosen.map(lambda values: {**query, **values}))

    schema.hooks.register_hook_with_name(flatmap_path_parameters, "flatmap_path_parameters")
    schema.hooks.register_hook_with_name(flatmap_query, "flatmap_query")
    return schema


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


open_schema = schema_for(OPEN_DOCUMENT, STORED, bearer=None)
locked_schema = schema_for(LOCKED_DOCUMENT, STORED, bearer=API_KEY)
# The locked server's schema, sent with no Authorization header at all.
keyless_schema = schema_for(LOCKED_DOCUMENT, STORED, bearer=None, security_parameters=False)
labelled_schema = schema_for(LABELLED_DOCUMENT, LABELLED, bearer=None)


# --- servers ---------------------------------------------------------------------------------


def learn(catalogue: Catalogue, url: str, headers: dict[str, str] | None = None) -> None:
    """Fills `catalogue` with the names and track ids the server at `url` lists."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        names = [
            a["artist"] for a in http.get("/artists", params={"limit": 1000}).json()["artists"]
        ]
        ids = [
            t["track_id"] for n in names for t in http.get(f"/artists/{quote(n)}").json()["tracks"]
        ]
    assert names and ids
    # Display names, and the same names as users type them (case, accents, spacing differ).
    catalogue.artists[:] = sorted(set(names) | {f"  {n.upper()} " for n in names})
    catalogue.track_ids[:] = ids


@pytest.fixture(scope="module")
def served_url(
    serving: Callable[[FastAPI], AbstractContextManager[tuple[str, int]]],
) -> Callable[[FastAPI], AbstractContextManager[str]]:
    """serving(app), giving the server's base URL."""

    @contextmanager
    def url_of(app: FastAPI) -> Iterator[str]:
        with serving(app) as (host, port):
            yield f"http://{host}:{port}"

    return url_of


@pytest.fixture(scope="module")
def open_server(
    copy_data_dir: Callable[[], Path], make_settings: Callable[..., Settings], served_url: Any
) -> Iterator[str]:
    with served_url(create_app(make_settings(copy_data_dir()))) as url:
        learn(STORED, url)
        yield url


@pytest.fixture(scope="module")
def locked_server(
    copy_data_dir: Callable[[], Path], make_settings: Callable[..., Settings], served_url: Any
) -> Iterator[str]:
    with served_url(create_app(make_settings(copy_data_dir(), api_key=API_KEY))) as url:
        learn(STORED, url, headers={"Authorization": f"Bearer {API_KEY}"})
        yield url


@pytest.fixture(scope="module")
def labelled_server(
    copy_labelled_dir: Callable[[], Path],
    make_settings: Callable[..., Settings],
    served_url: Any,
) -> Iterator[str]:
    app = create_app(make_settings(copy_labelled_dir(), filterable_columns=["label"]))
    with served_url(app) as url:
        learn(LABELLED, url)
        yield url


@pytest.fixture(scope="module")
def misdeclared_server(
    copy_data_dir: Callable[[], Path], make_settings: Callable[..., Settings], served_url: Any
) -> Iterator[str]:
    """Columns declared filterable that the store never indexed (the catalogue has no such
    manifest columns), and names of built-in fields: an operator's mistake, still never a 5xx."""
    columns = ["label", "mood", "genre", "year", "title", "artist", "artist_key", "path", "extra"]
    with served_url(create_app(make_settings(copy_data_dir(), filterable_columns=columns))) as url:
        learn(STORED, url)
        yield url


@pytest.fixture(scope="module")
def clips(api_catalogue: list[WrittenTrack]) -> list[tuple[str, bytes]]:
    """Real audio files of the catalogue, one per format (name, bytes)."""
    by_suffix = {t.path.suffix: t for t in api_catalogue}
    return [(t.path.name, t.path.read_bytes()) for _, t in sorted(by_suffix.items())]


def assert_error_shape(status: int, body: bytes, path: str = "") -> None:
    """Every error is a JSON object with a string `detail` (and `suggestions` for artists);
    AudioMuse's routes answer `{"error": ...}` (but a 405 comes before any route: `detail`)."""
    if status < 400:
        return
    parsed = json.loads(body)
    if path.startswith(AUDIOMUSE_PREFIX) and status != 405:
        assert isinstance(parsed, dict) and isinstance(parsed.get("error"), str), body[:500]
        assert set(parsed) == {"error"}, parsed
        return
    assert isinstance(parsed, dict) and isinstance(parsed.get("detail"), str), body[:500]
    assert set(parsed) <= ERROR_KEYS, parsed


# --- schemathesis ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "document"),
    [
        ("open_server", OPEN_DOCUMENT),
        ("locked_server", LOCKED_DOCUMENT),
        ("labelled_server", LABELLED_DOCUMENT),
    ],
)
def test_served_schema_is_the_one_tested(
    server: str, document: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    served = httpx.get(f"{request.getfixturevalue(server)}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(document))


@contextmanager
def real_audio(case: schemathesis.Case, clips: list[tuple[str, bytes]]) -> Iterator[None]:
    """A schema-valid upload carries generated bytes (a 1-pixel PNG, random bytes) that no
    decoder reads; while a positive case is sent its file is a real clip instead (picked by the
    generated bytes, so runs stay deterministic), so uploads reach the embedder and the 200
    answer is checked against its schema too.

    The swap is made in place, before `call` (which takes the containers as they are then as the
    case's own: reassigning `case.body` would make schemathesis revalidate it, and as it cannot
    validate bytes it would relabel the case negative), and undone after, because the coverage
    phase shares one body dict between cases."""
    body = case.body
    swap = (
        case.operation.path == UPLOAD_PATH
        and case.method.upper() == "POST"
        and case.meta is not None
        and case.meta.generation.mode is GenerationMode.POSITIVE
        and isinstance(body, dict)
        and "file" in body
    )
    if not swap:
        yield
        return
    assert isinstance(body, dict)
    generated = body["file"]
    _name, data = clips[len(str(getattr(generated, "data", generated))) % len(clips)]
    body["file"] = data
    try:
        yield
    finally:
        body["file"] = generated


def check_case(case: schemathesis.Case, url: str, clips: list[tuple[str, bytes]]) -> None:
    with real_audio(case, clips):
        response = case.call_and_validate(base_url=url, checks=all_checks())
    assert response.status_code < 500, response.text
    assert_error_shape(response.status_code, response.content, case.operation.path)


@open_schema.parametrize()
def test_open_server_honours_its_schema(
    case: schemathesis.Case, open_server: str, clips: list[tuple[str, bytes]]
) -> None:
    check_case(case, open_server, clips)


@locked_schema.parametrize()
def test_locked_server_honours_its_schema_with_the_key(
    case: schemathesis.Case, locked_server: str, clips: list[tuple[str, bytes]]
) -> None:
    check_case(case, locked_server, clips)


@labelled_schema.parametrize()
def test_server_with_a_filterable_column_honours_its_schema(
    case: schemathesis.Case, labelled_server: str, clips: list[tuple[str, bytes]]
) -> None:
    check_case(case, labelled_server, clips)


@keyless_schema.parametrize()
def test_locked_server_without_the_key_is_401_on_every_protected_route(
    case: schemathesis.Case, locked_server: str
) -> None:
    assert "authorization" not in {name.lower() for name in (case.headers or {})}
    response = case.call(base_url=locked_server)
    case.validate_response(response, checks=all_checks())
    assert response.status_code < 500, response.text
    assert_error_shape(response.status_code, response.content, case.operation.path)
    if case.method.upper() != case.operation.method.upper():
        # The coverage phase also sends methods the route does not have: 405 before any auth.
        assert response.status_code == 405, (case.method, case.operation.label, response.text)
        return
    if case.operation.path in OPEN_PATHS:
        return
    assert response.status_code == 401, (case.operation.label, response.text)
    assert response.headers["www-authenticate"] == ["Bearer"]
    audiomuse = case.operation.path.startswith(AUDIOMUSE_PREFIX)
    assert set(response.json()) == ({"error"} if audiomuse else {"detail"})


# --- fuzzing what generic generation rarely reaches --------------------------------------------


def raw_request(
    url: str, method: str, target: bytes, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with the request target sent byte for byte (no client-side
    normalisation of dots, slashes or encodings)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: {host}".encode()]
    for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    lines.append(b"Connection: close")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(connection, method=method)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def assert_app_answer(status: int, headers: dict[str, str], body: bytes, what: object) -> None:
    """No 5xx; an error the app itself wrote (every app answer has an X-Request-ID; uvicorn's own
    400 for a target it cannot parse has none) is `{"detail": str}`."""
    assert status < 500, (what, status, body[:500])
    if "x-request-id" in headers:
        assert_error_shape(status, body)


ODD_CHARACTERS = (
    "/.\\%?#&=+;: \t\r\n\x00\x01\x7f"
    "\u200f\u202e\u200b\u2066\ufeff\u0301\u0345\u00b4"  # RTL marks, zero width, combining, accents
    "éÉøßİıﬁ\u1e9e😀\U0010fffd"
)
odd_text = st.text(alphabet=st.sampled_from(ODD_CHARACTERS), max_size=30)
artist_names = st.one_of(
    st.sampled_from(
        [
            ".",
            "..",
            "...",
            "/",
            "//",
            "a/b",
            "AC/DC",
            "%2F",
            "%00",
            "%",
            "%zz",
            "\x00",
            "\u200f",
            "\u202eabc",
        ]
    ),
    odd_text,
    st.text(max_size=60),
    st.tuples(st.sampled_from(["Éclair Ensemble", "Møller & Sons", ""]), odd_text).map("".join),
    # Around the 500-character limit, and far past it (2,000 characters, up to 8 kB in UTF-8).
    st.tuples(st.sampled_from([499, 500, 501, 2000]), st.sampled_from("aé😀/.")).map(
        lambda n_c: n_c[1] * n_c[0]
    ),
)
# How a client may put the name in the path: percent-encoded whole, slashes and dots left as
# they are, or the raw UTF-8 bytes with only what would break the request line encoded.
ENCODINGS: dict[str, Callable[[str], bytes]] = {
    "quoted": lambda n: quote(n, safe="").encode("ascii"),
    "slashes": lambda n: quote(n, safe="/.").encode("ascii"),
    "raw": lambda n: (
        n.encode("utf-8", "surrogatepass")
        .replace(b"%", b"%25")
        .replace(b" ", b"%20")
        .replace(b"?", b"%3F")
        .replace(b"#", b"%23")
        .replace(b"\r", b"%0D")
        .replace(b"\n", b"%0A")
        .replace(b"\t", b"%09")
    ),
}


@FUZZ_SETTINGS
@given(
    name=artist_names,
    encoding=st.sampled_from(sorted(ENCODINGS)),
    suffix=st.sampled_from(["", "/similar", "/similar?explain=true&limit=3", "/"]),
)
def test_odd_artist_names_in_the_path_never_get_a_5xx(
    open_server: str, name: str, encoding: str, suffix: str
) -> None:
    target = b"/artists/" + ENCODINGS[encoding](name) + suffix.encode()
    status, headers, body = raw_request(open_server, "GET", target)
    assert_app_answer(status, headers, body, target[:200])
    if status == 404:
        # Every path under /artists/ is an artist route: its 404 is the documented unknown-artist
        # body, with the close names (a 404 from the router itself would have none).
        assert isinstance(json.loads(body).get("suggestions"), list), (target[:200], body)


filter_columns = st.one_of(
    st.sampled_from(
        ["label", "LABEL", " label", "label ", "mood", "genre", "year", "title", "artist"]
        + ["artist_key", "path", "extra", "extra.label", "", ":", "la:bel", "\x00", "é"]
    ),
    odd_text,
)
filter_values = st.one_of(
    st.sampled_from(["Blue Note", "ECM", "Verve", "blue note", "", "1990", "-1", "1e3", "true"]),
    odd_text,
    st.text(max_size=40),
    st.sampled_from([600, 5000]).map(lambda n: "v" * n),
)
# Half the time well-formed on a declared column, so filtered searches run, not only 422s.
one_filter = st.one_of(
    filter_values.map(lambda value: f"label:{value}"),
    st.tuples(filter_columns, st.sampled_from([":", "::", "", ": "]), filter_values).map("".join),
)
filters = st.lists(one_filter, max_size=24)  # past the 20 the route allows
other_filters = st.lists(
    st.tuples(
        st.sampled_from(["genre", "album", "year", "limit", "min_tracks", "max_per_artist"]),
        st.one_of(filter_values, st.integers(-5, 3000).map(str)),
    ),
    max_size=3,
)


@FUZZ_SETTINGS
@given(
    column_filters=filters,
    others=other_filters,
    server=st.sampled_from(["labelled_server", "misdeclared_server", "open_server"]),
    route=st.sampled_from(["artist", "track"]),
    pick=st.integers(0, 1000),
)
def test_column_filters_never_get_a_5xx(
    request: pytest.FixtureRequest,
    column_filters: list[str],
    others: list[tuple[str, str]],
    server: str,
    route: str,
    pick: int,
) -> None:
    url = request.getfixturevalue(server)
    catalogue = LABELLED if server == "labelled_server" else STORED
    if route == "artist":
        path = f"/artists/{quote(catalogue.artists[pick % len(catalogue.artists)])}/similar"
    else:
        path = f"/tracks/{catalogue.track_ids[pick % len(catalogue.track_ids)]}/similar"
    params = [("filter", f) for f in column_filters] + others
    response = httpx.get(url + path, params=params, timeout=60)
    assert_app_answer(
        response.status_code,
        {k.lower(): v for k, v in response.headers.items()},
        response.content,
        (server, path, params),
    )


def test_a_declared_column_filter_narrows_the_answer(labelled_server: str) -> None:
    """The positive path the fuzzing above relies on: `label:Verve` keeps only Ana Ruiz."""
    response = httpx.get(
        f"{labelled_server}/artists/Cy Moss/similar",
        params=[("filter", "label:Verve"), ("filter", "label:Verve")],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert [r["artist"] for r in response.json()["results"]] == ["Ana Ruiz"]


BOUNDARY = "contract-boundary"


def part(name: str | None, data: bytes, filename: str | None, content_type: str | None) -> bytes:
    disposition = "form-data"
    if name is not None:
        disposition += f'; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + data + b"\r\n"


@st.composite
def audio_bodies(draw: st.DrawFn, clips: list[tuple[str, bytes]]) -> bytes:
    """A real clip, whole, truncated, with random bytes appended or overwritten."""
    _name, data = draw(st.sampled_from(clips))
    shape = draw(
        st.sampled_from(["whole", "truncated", "appended", "corrupted", "header", "empty"])
    )
    if shape == "truncated":
        return data[: draw(st.integers(0, len(data)))]
    if shape == "appended":
        return data + draw(st.binary(min_size=1, max_size=4096))
    if shape == "corrupted":
        start = draw(st.integers(0, len(data) - 1))
        noise = draw(st.binary(min_size=1, max_size=2048))
        return data[:start] + noise + data[start + len(noise) :]
    if shape == "header":
        return data[: draw(st.integers(1, 64))]
    if shape == "empty":
        return b""
    return data


filenames = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "clip.mp3", "clip.flac", ".", "..", "../../etc/passwd", "a\\b.wav", "clip.m3u8"]
        + ["é😀.ogg", "x" * 300 + ".wav", "\u202eevil.wav", "%00.ogg", "clip"]
    ),
)
part_types = st.one_of(
    st.none(),
    st.sampled_from(["audio/mpeg", "audio/flac", "application/octet-stream", "text/plain"]),
    st.sampled_from(["image/png", "", "multipart/form-data", "audio/x-mpegurl", "; ;"]),
)


@FUZZ_SETTINGS
@given(data=st.data())
def test_real_audio_uploads_never_get_a_5xx(
    open_server: str, clips: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    audio = data.draw(audio_bodies(clips), label="audio")
    file_part = part(
        "file", audio, data.draw(filenames, label="filename"), data.draw(part_types, label="type")
    )
    layout = data.draw(
        st.one_of(
            st.just("file"),
            st.sampled_from(["two files", "field first", "wrong name", "no name", "nothing"]),
        ),
        label="layout",
    )
    if layout == "two files":
        extra = data.draw(audio_bodies(clips), label="second")
        parts = [file_part, part("file", extra, "second.wav", "audio/wav")]
    elif layout == "field first":
        parts = [part("note", b"hello", None, None), file_part]
    elif layout == "wrong name":
        parts = [part(data.draw(st.sampled_from(["FILE", "files", "", "file "])), audio, "a", None)]
    elif layout == "no name":
        parts = [part(None, audio, "a.wav", None)]
    elif layout == "nothing":
        parts = []
    else:
        parts = [file_part]
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    content_type = data.draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={BOUNDARY}",
                f"multipart/form-data; boundary={BOUNDARY}",
                f"multipart/form-data; boundary={BOUNDARY}",
                f'multipart/form-data; boundary="{BOUNDARY}"',
                "multipart/form-data",
                f"multipart/mixed; boundary={BOUNDARY}",
                "audio/mpeg",
                "application/x-www-form-urlencoded",
                "",
            ]
        ),
        label="content type",
    )
    headers = {"Content-Type": content_type} if content_type else {}
    query = data.draw(
        st.sampled_from(["", "?limit=1", "?limit=100&max_per_artist=100", "?limit=0"])
    )
    status, answer_headers, answer = raw_request(
        open_server, "POST", f"{UPLOAD_PATH}{query}".encode(), headers, body
    )
    assert_app_answer(status, answer_headers, answer, (layout, content_type, len(audio)))
    if status == 200:
        found = json.loads(answer)
        assert set(found) == {"tracks", "artists"}


def test_a_pristine_upload_of_each_format_is_answered(
    open_server: str, clips: list[tuple[str, bytes]]
) -> None:
    """The anchor for the fuzzing above: every real clip, sent plainly, gets matches."""
    for name, data in clips:
        response = httpx.post(
            f"{open_server}{UPLOAD_PATH}", files={"file": (name, data)}, timeout=60
        )
        assert response.status_code == 200, (name, response.text)
        assert response.json()["tracks"][0]["score"] > 0.99, name
