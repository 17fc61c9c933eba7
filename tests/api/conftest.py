"""HTTP API fixtures: a generated catalogue ingested through the public path, and apps over it.

An Edge data dir is owned by one store at a time, so every app (and the end-to-end server) gets
its own copy of the ingested dir.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from apps import app_settings, ingest_into
from apps import serving as serving_app
from fastapi import FastAPI
from fastapi.testclient import TestClient

from soundalike.api.main import create_app
from soundalike.api.settings import Settings
from soundalike.ingest.devtools.synth import WrittenTrack, synth_track, write_audio, write_catalogue

ARTISTS = 4
TRACKS_PER_ARTIST = 3
TRACK_SECONDS = 9.0


@pytest.fixture(scope="session")
def api_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenTrack]:
    """4 artists x 3 tracks of 9 s in four formats; names with accents ("Éclair Ensemble")."""
    root = tmp_path_factory.mktemp("api-catalogue")
    return write_catalogue(
        root,
        artists=ARTISTS,
        tracks_per_artist=TRACKS_PER_ARTIST,
        seconds=TRACK_SECONDS,
        formats=("flac", "mp3", "ogg", "wav"),
    )


@pytest.fixture(scope="session")
def ingested_dir(
    api_catalogue: list[WrittenTrack], tiny_embedder: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The catalogue ingested into an Edge store (closed again; copy it before opening)."""
    return ingest_into(
        tmp_path_factory.mktemp("api-ingested"),
        api_catalogue[0].path.parent.parent,
        tiny_embedder,
        expected=ARTISTS * TRACKS_PER_ARTIST,
    )


@pytest.fixture(scope="session")
def copy_data_dir(
    ingested_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Path]:
    """A fresh copy of the ingested data dir per call."""
    return copier(ingested_dir, tmp_path_factory, "api-data")


def copier(source: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Callable[[], Path]:
    """A function giving a fresh copy of the closed store in `source` per call: an embedded
    store has one owner at a time, so every app gets its own."""

    def copy() -> Path:
        target = tmp_path_factory.mktemp(name) / "data"
        shutil.copytree(source, target)
        return target

    return copy


@pytest.fixture(scope="session")
def make_settings(tiny_mert_dir: Path) -> Callable[..., Settings]:
    """Settings for a test app; explicit values so the environment cannot leak in."""

    def make(data_dir: Path, **overrides: Any) -> Settings:
        return app_settings(data_dir, tiny_mert_dir, **overrides)

    return make


@pytest.fixture(scope="session")
def make_client(
    copy_data_dir: Callable[[], Path], make_settings: Callable[..., Settings]
) -> Callable[..., AbstractContextManager[TestClient]]:
    """make_client(**settings) -> context manager of a TestClient on its own data dir copy.

    `data_dir=` overrides the copy (e.g. an empty dir)."""

    @contextmanager
    def make(**overrides: Any) -> Iterator[TestClient]:
        data_dir = overrides.pop("data_dir", None) or copy_data_dir()
        app = create_app(make_settings(data_dir, **overrides))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return make


@pytest.fixture(scope="session")
def client(make_client: Callable[..., AbstractContextManager[TestClient]]) -> Iterator[TestClient]:
    """The shared app with default settings (no API key, 50 MB uploads)."""
    with make_client() as shared:
        yield shared


@pytest.fixture(scope="session")
def tracks_by_artist(
    client: TestClient, api_catalogue: list[WrittenTrack]
) -> dict[str, list[dict[str, Any]]]:
    """Display name -> the artist's tracks as /artists/{artist} lists them."""
    names = sorted({t.artist for t in api_catalogue})
    listed: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        response = client.get(f"/artists/{name}")
        assert response.status_code == 200, response.text
        listed[name] = response.json()["tracks"]
    return listed


@pytest.fixture
def upload_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads land here during the test, so leftovers can be checked."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# Labels of a manifest column declared filterable: Ana Ruiz and Bo Lind have Blue Note tracks,
# Bo Lind and Cy Moss ECM ones, only Ana Ruiz a Verve one.
LABELS = {
    "Ana Ruiz": ["Blue Note", "Blue Note", "Verve"],
    "Bo Lind": ["Blue Note", "ECM", "ECM"],
    "Cy Moss": ["ECM", "ECM", "ECM"],
}


@pytest.fixture(scope="session")
def copy_labelled_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_embedder: Any
) -> Callable[[], Path]:
    """A fresh copy per call of a manifest catalogue with a `label` column declared filterable
    at ingest, ingested once."""
    root = tmp_path_factory.mktemp("labelled")
    rows = ["path,artist,title,label"]
    for artist_seed, (artist, labels) in enumerate(LABELS.items()):
        for track_seed, label in enumerate(labels):
            path = root / f"{artist_seed}-{track_seed}.flac"
            audio = synth_track(artist_seed=artist_seed, track_seed=track_seed, seconds=5.0)
            write_audio(path, audio, 44_100)
            rows.append(f"{path.name},{artist},Song {track_seed},{label}")
    manifest = root / "catalogue.csv"
    manifest.write_text("\n".join(rows) + "\n")
    labelled_dir = ingest_into(
        root / "data",
        manifest,
        tiny_embedder,
        expected=sum(len(labels) for labels in LABELS.values()),
        filterable_columns=("label",),
    )
    return copier(labelled_dir, tmp_path_factory, "labelled-data")


@pytest.fixture(scope="session")
def serving() -> Callable[[FastAPI], AbstractContextManager[tuple[str, int]]]:
    """serving(app): the app behind a real uvicorn on a free loopback port, in a thread of
    this process, for as long as the `with` lasts; gives (host, port)."""
    return serving_app
