"""Browser tests: the front end in Debian's Chromium, driven by Playwright, against a real
server (uvicorn in a thread) over a generated catalogue ingested through the public path.

One browser for the whole session; each test gets a fresh context (no shared storage) whose
console errors and uncaught exceptions fail the test. Screenshots of the main views go to
$WEB_SCREENSHOTS_DIR (default: a folder under pytest's tmp dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from apps import app_settings, ingest_into, serving
from fastapi import FastAPI
from playwright import sync_api

from soundalike.api.main import create_app
from soundalike.ingest.devtools.synth import WrittenTrack, write_catalogue

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# test_front_end.py repeats ARTISTS and API_KEY.
ARTISTS = 6
TRACKS_PER_ARTIST = 3
TRACK_SECONDS = 8.0
API_KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="session")
def web_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenTrack]:
    """6 artists x 3 tracks of 8 s, in formats browsers play and one they do not (AIFF)."""
    return write_catalogue(
        tmp_path_factory.mktemp("web-catalogue"),
        artists=ARTISTS,
        tracks_per_artist=TRACKS_PER_ARTIST,
        seconds=TRACK_SECONDS,
        formats=("flac", "mp3", "ogg", "wav", "aiff"),
    )


@pytest.fixture(scope="session")
def web_ingested(
    web_catalogue: list[WrittenTrack], tiny_embedder: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return ingest_into(
        tmp_path_factory.mktemp("web-ingested") / "data",
        web_catalogue[0].path.parent.parent,
        tiny_embedder,
        expected=len(web_catalogue),
    )


@contextmanager
def _serving(app: FastAPI) -> Iterator[str]:
    with serving(app) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="session")
def serve_store(tiny_mert_dir: Path) -> Callable[..., AbstractContextManager[str]]:
    """serve_store(data_dir, **settings): the base URL of a server over the store in
    `data_dir` (used in place, not copied), for as long as the `with` lasts."""

    @contextmanager
    def serve(data_dir: Path, **overrides: Any) -> Iterator[str]:
        with _serving(create_app(app_settings(data_dir, tiny_mert_dir, **overrides))) as url:
            yield url

    return serve


@pytest.fixture(scope="session")
def serve_catalogue(
    web_ingested: Path,
    serve_store: Callable[..., AbstractContextManager[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., AbstractContextManager[str]]:
    """serve_catalogue(name, **settings): the base URL of a server over its own copy of the
    catalogue, for as long as the `with` lasts."""

    @contextmanager
    def serve(name: str, **overrides: Any) -> Iterator[str]:
        data_dir = tmp_path_factory.mktemp(name) / "data"
        shutil.copytree(web_ingested, data_dir)
        with serve_store(data_dir, **overrides) as url:
            yield url

    return serve


@pytest.fixture(scope="session")
def server(serve_catalogue: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """The base URL of a server over the catalogue, without an API key."""
    with serve_catalogue("web-open") as url:
        yield url


@pytest.fixture(scope="session")
def keyed_server(serve_catalogue: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """The base URL of a server over the catalogue that needs API_KEY."""
    with serve_catalogue("web-keyed", api_key=API_KEY) as url:
        yield url


@pytest.fixture(scope="session")
def library_server(
    tiny_mert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """(base URL, library folder) of a server with an empty store that scans and watches a
    library of 2 artists x 2 tracks plus one file that is not audio."""
    home = tmp_path_factory.mktemp("web-library")
    library = home / "music"
    write_catalogue(library, artists=2, tracks_per_artist=2, seconds=5.0, formats=("flac",))
    (library / "Éclair Ensemble" / "broken.mp3").write_bytes(b"not audio at all" * 100)
    settings = app_settings(home / "data", tiny_mert_dir, library=[library])
    with _serving(create_app(settings)) as url:
        yield url, library


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("WEB_SCREENSHOTS_DIR")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Console:
    """What the page said: console errors and uncaught exceptions. `expected_statuses` are
    HTTP statuses the scenario provokes on purpose (a 404 with suggestions, a 401), whose
    "Failed to load resource" lines Chromium logs as console errors."""

    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def unexpected(self) -> list[str]:
        allowed = tuple(
            f"the server responded with a status of {status}" for status in self.expected_statuses
        )
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def open_page(browser: Any, console: Console) -> Iterator[Callable[..., Any]]:
    """open_page(url, width=1280, height=860) -> a page in a fresh context; console errors and
    page exceptions are collected and fail the test at the end."""
    contexts: list[Any] = []

    def make(url: str, *, width: int = 1280, height: int = 860) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                console.errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
        page.set_default_timeout(15_000)
        page.goto(url)
        return page

    yield make
    for context in contexts:
        context.close()
    assert console.unexpected() == [], "the page logged errors"
