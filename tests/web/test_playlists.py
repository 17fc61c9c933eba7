"""Save as playlist without a media server: the radio and the path download an M3U8 file, read
back with the `m3u8` parser; and the library page says when mixes are off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import m3u8
import pytest
from playwright.sync_api import expect
from radio_page import make_path, make_radio, shown_tracks

from soundalike.ingest.devtools.synth import WrittenTrack

# tests/web/conftest.py's key (conftest modules are not imported by name).
API_KEY = "browser-test-key-0123456789"
TRACK_SECONDS = 8.0


@pytest.fixture(scope="module")
def library_catalogue(
    serve_catalogue: Callable[..., AbstractContextManager[str]], web_catalogue: list[WrittenTrack]
) -> Iterator[tuple[str, Path]]:
    """(base URL, library folder) of a server over the catalogue whose folder is its library
    (already ingested: the library's first scan finds every file stored and unchanged)."""
    root = web_catalogue[0].path.parent.parent
    with serve_catalogue("web-m3u8", library=[root]) as url:
        yield url, root


def _files(catalogue: list[WrittenTrack]) -> dict[tuple[str, str], Path]:
    return {(t.artist, t.title): t.path for t in catalogue}


def test_a_radio_saved_without_a_media_server_is_an_m3u8_of_paths_in_the_library(
    open_page: Callable[..., Any],
    library_catalogue: tuple[str, Path],
    web_catalogue: list[WrittenTrack],
    screenshots: Path,
) -> None:
    url, library = library_catalogue
    page = open_page(url + "/#/radio")
    shown = make_radio(page, "Éclair Ensemble")
    expect(page.locator("#radio-save-name")).to_have_value("Radio: Éclair Ensemble")
    expect(page.locator(".save-target")).to_have_text("as an M3U8 file for players on this machine")
    assert len(shown) >= 4

    with page.expect_download() as download_info:
        page.locator("#radio-save").click()
    download = download_info.value
    assert download.suggested_filename == "Radio - Éclair Ensemble.m3u8"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("#EXTM3U\n#PLAYLIST:Radio: Éclair Ensemble\n")

    playlist = m3u8.loads(text)
    files = _files(web_catalogue)
    # The radio's tracks, in the order shown, each entry relative to the library folder.
    assert [s.uri for s in playlist.segments] == [
        files[track].relative_to(library).as_posix() for track in shown
    ]
    for segment, (artist, title) in zip(playlist.segments, shown, strict=True):
        assert not Path(segment.uri).is_absolute()
        entry = library / segment.uri
        assert entry.is_file() and entry.samefile(files[(artist, title)])
        assert segment.title == f"{artist} - {title}"
        assert segment.duration == pytest.approx(TRACK_SECONDS, abs=1)
    status = page.locator("#radio-save-status")
    expect(status).to_contain_text(
        f"Downloaded “Radio - Éclair Ensemble.m3u8” ({len(shown)} tracks)"
    )
    expect(status).to_contain_text("paths relative to that folder")
    page.screenshot(path=screenshots / "playlist.png")


def test_a_path_saved_with_the_keyboard_on_a_phone_with_a_key_lists_the_files_full_paths(
    open_page: Callable[..., Any],
    keyed_server: str,
    web_catalogue: list[WrittenTrack],
    screenshots: Path,
) -> None:
    # A server without library folders: the entries are the files' absolute paths.
    page = open_page(keyed_server + "/#/radio", width=360, height=740)
    page.evaluate("key => sessionStorage.setItem('soundalike.key', key)", API_KEY)
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
    rows = make_path(page, "Éclair Ensemble", "The Quiet Harbour", 5)
    name = page.locator("#path-save-name")
    expect(name).to_have_value("Path: Éclair Ensemble → The Quiet Harbour")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shown = shown_tracks(rows)

    name.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("Harbour walk")
    page.keyboard.press("Tab")
    expect(page.locator("#path-save")).to_be_focused()
    with page.expect_download() as download_info:
        page.keyboard.press("Enter")
    download = download_info.value
    assert download.suggested_filename == "Harbour walk.m3u8"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert "#PLAYLIST:Harbour walk\n" in text
    playlist = m3u8.loads(text)
    files = _files(web_catalogue)
    assert [Path(s.uri) for s in playlist.segments] == [files[track] for track in shown]
    assert all(Path(s.uri).is_absolute() and Path(s.uri).is_file() for s in playlist.segments)
    expect(page.locator("#path-save-status")).to_contain_text("full paths")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator("#path-result").evaluate("node => { node.scrollIntoView(); scrollBy(0, -150); }")
    page.screenshot(path=screenshots / "phone-path.png")
    # The file came with the key in a header; no URL carries it.
    posts = [auth for url, auth in sent if url.endswith("/playlists/m3u8")]
    assert posts == [f"Bearer {API_KEY}"]
    assert not any(API_KEY in url for url, _ in sent)


def test_a_playlist_needs_a_name(open_page: Callable[..., Any], server: str) -> None:
    page = open_page(server + "/#/radio")
    page.locator("#path-from").fill("Éclair Ensemble")
    page.locator("#path-to").fill("The Quiet Harbour")
    page.locator("#path-steps").fill("3")
    page.locator("#path-make").click()
    expect(page.locator("#path-result .track")).to_have_count(3)
    page.locator("#path-save-name").fill("   ")
    page.locator("#path-save").click()
    expect(page.locator("#path-save-status .error")).to_have_text("Give the playlist a name.")


def test_the_library_page_says_how_to_turn_mixes_on(
    open_page: Callable[..., Any], server: str
) -> None:
    page = open_page(server + "/#/library")
    mixes = page.locator("#mixes")
    expect(mixes.locator("h2")).to_have_text("Sonic mixes")
    expect(mixes).to_contain_text("Sonic mixes are off")
    expect(mixes).to_contain_text("SOUNDALIKE_MIXES_URL")
    expect(page.locator("#mixes-refresh")).to_have_count(0)
