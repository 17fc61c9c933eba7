"""Save as playlist and the mixes panel against a real media server (Supysonic): the playlists
the page writes are read back through the server's own Subsonic API, as any player reads them.

The tests of this module share one server (module scope) and run in order: nothing is starred
until the last one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from radio_page import make_radio
from subsonic_listener import IngestedServer, Listener, ingested_server, listener  # noqa: F401

Console = Any


@pytest.fixture(scope="module")
def mixes_server(
    ingested_server: IngestedServer,  # noqa: F811
    serve_store: Callable[..., AbstractContextManager[str]],
) -> Iterator[str]:
    """The base URL of a server over the store ingested from Supysonic, writing playlists and
    mixes there; no periodic refresh (mixes_every=0); mixes of 5 songs, so that the catalogue's
    18 songs make more than one."""
    server = ingested_server.server
    with serve_store(
        ingested_server.data_dir,
        model=str(ingested_server.model_dir),
        mixes_url=server.url,
        subsonic_password=server.password,
        mixes_every=0,
        mixes_size=5,
    ) as url:
        yield url


def _on_server(listener: Listener, name: str) -> list[str]:  # noqa: F811
    return [str(p["id"]) for p in listener.playlists() if p["name"] == name]


def test_a_radio_is_saved_on_the_media_server_in_order_and_saved_again_in_place(
    open_page: Callable[..., Any],
    mixes_server: str,
    ingested_server: IngestedServer,  # noqa: F811
    listener: Listener,  # noqa: F811
) -> None:
    songs = {s["id"]: (s["artist"], s["title"]) for s in listener.songs()}
    artists = sorted({artist for artist, _ in songs.values()})
    display = ingested_server.server.url
    page = open_page(mixes_server + "/#/radio")
    shown = make_radio(page, artists[0])
    name = f"Radio: {artists[0]}"
    expect(page.locator("#radio-save-name")).to_have_value(name)
    expect(page.locator(".save-target")).to_have_text(f"to {display}")
    page.locator("#radio-save").click()
    status = page.locator("#radio-save-status")
    expect(status).to_contain_text(f"Saved to {display} as “{name}” ({len(shown)} songs).")

    [playlist_id] = _on_server(listener, name)
    assert [songs[song] for song in listener.playlist_songs(playlist_id)] == shown

    # Another radio under the same name replaces the playlist in place: same id, no second one.
    again = make_radio(page, artists[1])
    expect(page.locator(".chip.like")).to_have_count(2)
    name_box = page.locator("#radio-save-name")
    expect(name_box).to_have_value(f"Radio: {artists[0]}, {artists[1]}")
    name_box.fill(name)
    name_box.press("Enter")
    expect(page.locator("#radio-save-status")).to_contain_text(
        f"Saved to {display} as “{name}” ({len(again)} songs), replacing the one saved earlier."
    )
    assert _on_server(listener, name) == [playlist_id]
    assert [songs[song] for song in listener.playlist_songs(playlist_id)] == again


def test_a_name_held_by_the_listeners_own_playlist_is_refused_and_left_alone(
    open_page: Callable[..., Any],
    mixes_server: str,
    listener: Listener,  # noqa: F811
    console: Console,
) -> None:
    console.expected_statuses.add(409)
    songs = listener.songs()
    mine = listener.make_playlist("Kitchen mornings", [songs[0]["id"], songs[1]["id"]])
    page = open_page(mixes_server + "/#/radio")
    make_radio(page, songs[2]["artist"])
    page.locator("#radio-save-name").fill("Kitchen mornings")
    page.locator("#radio-save").click()
    error = page.locator("#radio-save-status .error")
    expect(error).to_contain_text("already has a playlist named 'Kitchen mornings'")
    expect(error).to_contain_text("nothing was written")
    expect(page.locator("#radio-save")).to_be_enabled()
    assert _on_server(listener, "Kitchen mornings") == [mine]
    assert listener.playlist_songs(mine) == [songs[0]["id"], songs[1]["id"]]


def test_the_library_page_refreshes_the_mixes_and_lists_them(
    open_page: Callable[..., Any],
    mixes_server: str,
    listener: Listener,  # noqa: F811
    screenshots: Path,
) -> None:
    by_artist = listener.star_taste(songs=[(0, 0), (3, 1)], albums=[1], artists=[5])
    seed_names = {by_artist[0][0]["title"], by_artist[3][1]["title"]}

    page = open_page(mixes_server + "/#/library")
    panel = page.locator("#mixes")
    expect(panel).to_contain_text(f"Kept as playlists on {listener.server.url}")
    expect(panel).to_contain_text("No refresh yet.")
    mixes_asked: list[str] = []
    page.on("request", lambda r: mixes_asked.append(r.method) if "/mixes" in r.url else None)
    page.locator("#mixes-refresh").click()

    names = panel.locator(".mix-name")
    expect(names.first).to_have_text("Sonic Mix 1", timeout=60_000)
    expect(panel.locator(".mixes-last")).to_contain_text("(asked for): ")
    expect(page.locator("#mixes-refresh")).to_be_enabled()
    expect(page.locator("#mixes-refresh")).to_be_focused()  # given back once the run is over
    expect(panel.locator(".mixes-state")).to_have_text("")
    shown = names.all_inner_texts()
    on_server = {
        str(p["name"]): str(p["id"])
        for p in listener.playlists()
        if str(p["name"]).startswith("Sonic Mix ")
    }
    assert shown == sorted(on_server) and 2 <= len(shown) <= 3
    for index, name in enumerate(shown):
        count = len(listener.playlist_songs(on_server[name]))
        assert 1 <= count <= 5
        expect(panel.locator(".mix-count").nth(index)).to_have_text(
            f"{count} song" + "s" * (count > 1)
        )
    seeds_text = " ".join(panel.locator(".mix-seeds").all_inner_texts())
    assert any(title in seeds_text for title in seed_names), seeds_text
    assert re.search(r"\((song|album|artist)\)", seeds_text)
    panel.locator(".mix-songs summary").first.click()
    expect(panel.locator(".mix-songs li").first).to_be_visible()
    page.screenshot(path=screenshots / "mixes.png", full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # The refresh was followed with a few GETs, and following stopped once it was over.
    polled = len(mixes_asked)
    assert mixes_asked[0] == "POST" and set(mixes_asked[1:]) <= {"GET"} and polled <= 40
    page.wait_for_timeout(2_000)
    assert len(mixes_asked) == polled
