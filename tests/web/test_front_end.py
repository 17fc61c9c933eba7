"""What a listener does with the page, in a real browser against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import expect
from radio_page import make_path, make_radio

from soundalike.ingest.devtools.synth import WrittenTrack, synth_track, write_audio

# tests/web/conftest.py's catalogue and key (conftest modules are not imported by name).
ARTISTS = 6
API_KEY = "browser-test-key-0123456789"
Console = Any


def _artist_url(base: str, name: str) -> str:
    return f"{base}/#/artist/{quote(name)}"


def _wait_playing(page: Any, beyond_seconds: float = 0.3) -> None:
    """Waits until the player's audio element is playing and past `beyond_seconds`."""
    page.wait_for_function(
        "s => { const a = document.getElementById('audio');"
        " return !a.paused && a.currentTime > s; }",
        arg=beyond_seconds,
    )


def test_a_typo_gets_a_suggestion_and_the_keyboard_opens_the_artist(
    open_page: Callable[..., Any], server: str, console: Console, screenshots: Path
) -> None:
    console.expected_statuses.add(404)  # the unknown name's 404 carries the suggestions
    page = open_page(server + "/")
    search = page.locator("#q")
    search.focus()
    search.type("eclair ensembel")
    option = page.locator("#suggestions [role=option]").first
    expect(option).to_contain_text("Éclair Ensemble")
    expect(option).to_contain_text("did you mean?")
    search.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"#/artist/%C3%89clair%20Ensemble$"))
    expect(page.locator("h1")).to_have_text("Éclair Ensemble")
    expect(page.locator(".facts")).to_contain_text("3 tracks")
    expect(page.locator(".facts .genre")).to_have_count(1)
    expect(page.locator("[aria-label='Tracks of Éclair Ensemble'] .track")).to_have_count(3)
    expect(page.locator(".similar-artist")).to_have_count(ARTISTS - 1)
    page.locator(".why").first.locator("summary").click()
    page.screenshot(path=screenshots / "artist.png")


def test_tracks_are_found_by_title(
    open_page: Callable[..., Any], server: str, web_catalogue: list[WrittenTrack], console: Console
) -> None:
    console.expected_statuses.add(404)  # no artist is called that: suggestions are looked up
    wanted = web_catalogue[4]
    page = open_page(server + "/")
    page.locator("#q").fill(wanted.title)
    page.locator("#q").press("Enter")  # no suggestion chosen: the results page
    expect(page).to_have_url(re.compile("#/search/"))
    expect(page.locator("[aria-label='Matching tracks'] .track-title").first).to_have_text(
        wanted.title
    )


def test_the_why_pairs_open_a_similar_artist_and_back_returns(
    open_page: Callable[..., Any], server: str
) -> None:
    page = open_page(_artist_url(server, "Éclair Ensemble"))
    first = page.locator(".similar-artist").first
    other = first.locator(".similar-head .artist-link").inner_text()
    first.locator("summary").click()
    pair = first.locator(".pair").first
    expect(pair.locator(".score")).to_have_text(re.compile(r"^-?\d\.\d{3}$"))
    pair.locator(".pair-artist").nth(1).click()
    expect(page.locator("h1")).to_have_text(other)
    page.go_back()
    expect(page.locator("h1")).to_have_text("Éclair Ensemble")
    page.go_forward()
    expect(page.locator("h1")).to_have_text(other)


def test_play_streams_with_byte_ranges_and_the_audio_advances(
    open_page: Callable[..., Any], server: str
) -> None:
    page = open_page(_artist_url(server, "The Quiet Harbour"))
    statuses: list[tuple[int, str | None]] = []
    page.on(
        "response",
        lambda r: (
            statuses.append((r.status, r.headers.get("content-range")))
            if "/audio" in r.url
            else None
        ),
    )
    page.locator("[aria-label='Tracks of The Quiet Harbour'] .play").first.click()
    _wait_playing(page)
    title = page.locator("[aria-label='Tracks of The Quiet Harbour'] .track-title").first
    expect(page.locator("#now-title")).to_have_text(title.inner_text())
    assert any(status == 206 and (cr or "").startswith("bytes 0-") for status, cr in statuses)


def test_a_track_in_a_format_browsers_lack_is_converted_and_plays(
    open_page: Callable[..., Any], server: str, web_catalogue: list[WrittenTrack]
) -> None:
    aiff = next(t for t in web_catalogue if t.path.suffix == ".aiff")
    page = open_page(_artist_url(server, aiff.artist))
    row = page.locator(".track", has_text=aiff.title)
    row.locator(".play").click()
    _wait_playing(page)


def test_tracks_like_this_and_the_embedded_excerpt(
    open_page: Callable[..., Any], server: str
) -> None:
    page = open_page(_artist_url(server, "Éclair Ensemble"))
    page.locator("[aria-label='Tracks of Éclair Ensemble'] .track-title").first.click()
    expect(page).to_have_url(re.compile("#/track/"))
    expect(page.locator("[aria-label='Tracks like this'] .track")).not_to_have_count(0)
    page.get_by_role("button", name="Play the embedded excerpt").click()
    _wait_playing(page)
    src = page.evaluate("document.getElementById('audio').src")
    assert src.endswith("/audio?excerpt=true")


def test_the_map_draws_every_artist_and_a_click_opens_it(
    open_page: Callable[..., Any], server: str, screenshots: Path
) -> None:
    page = open_page(server + "/#/map")
    canvas = page.locator("#map-canvas")
    expect(canvas).to_have_attribute("data-drawn", str(ARTISTS))
    page.screenshot(path=screenshots / "map.png")
    page.locator("#locate").fill("quiet harbour")
    page.get_by_role("button", name="Locate").click()
    box = canvas.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    expect(page.locator(".map-tooltip")).to_contain_text("The Quiet Harbour")
    page.mouse.click(*centre)
    expect(page.locator("h1")).to_have_text("The Quiet Harbour")


def test_the_map_pans_and_zooms(open_page: Callable[..., Any], server: str) -> None:
    page = open_page(server + "/#/map")
    canvas = page.locator("#map-canvas")
    expect(canvas).to_have_attribute("data-drawn", str(ARTISTS))
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5, steps=5)
    page.mouse.up()
    # Dragged by nearly the whole frame: at most part of the catalogue is still in view.
    page.wait_for_function(f"document.getElementById('map-canvas').dataset.drawn !== '{ARTISTS}'")
    page.get_by_role("button", name="Whole map").click()
    expect(canvas).to_have_attribute("data-drawn", str(ARTISTS))


def test_a_dropped_clip_finds_its_own_track_first(
    open_page: Callable[..., Any],
    server: str,
    web_catalogue: list[WrittenTrack],
    screenshots: Path,
) -> None:
    clip = web_catalogue[7]
    page = open_page(server + "/#/clip")
    page.locator("#clip-file").set_input_files(str(clip.path))
    first_track = page.locator("[aria-label='Matching tracks'] .track").first
    expect(first_track.locator(".track-title")).to_have_text(clip.title, timeout=60_000)
    expect(first_track.locator(".score")).to_have_text("1.000")
    expect(page.locator("[aria-label='Matching artists'] li").first).to_contain_text(clip.artist)
    page.screenshot(path=screenshots / "clip.png")


def test_the_radio_plays_the_next_track_when_one_ends(
    open_page: Callable[..., Any], server: str, screenshots: Path
) -> None:
    page = open_page(server + "/#/radio")
    titles = [title for _, title in make_radio(page, "Éclair Ensemble")]
    assert len(titles) >= 2
    page.locator("#radio-play").click()
    _wait_playing(page, 0.2)
    expect(page.locator("#now-title")).to_have_text(titles[0])
    page.screenshot(path=screenshots / "radio.png")
    page.evaluate("const a = document.getElementById('audio'); a.currentTime = a.duration - 0.2")
    expect(page.locator("#now-title")).to_have_text(titles[1])
    _wait_playing(page, 0.2)
    # "Less like this" steers away: the track becomes an unliked seed.
    page.locator("#less").click()
    expect(page.locator(".chip.unlike")).to_contain_text(titles[1])


def test_a_path_from_one_artist_to_another_plays_in_order(
    open_page: Callable[..., Any], server: str
) -> None:
    page = open_page(server + "/#/radio")
    steps = make_path(page, "Éclair Ensemble", "The Quiet Harbour", 4)
    artists = steps.locator(".track-artist").all_inner_texts()
    assert artists[0] == "Éclair Ensemble" and artists[-1] == "The Quiet Harbour"
    expect(steps.first.locator(".score")).to_have_text("start")
    titles = steps.locator(".track-title").all_inner_texts()
    page.locator("#path-play").click()
    expect(page.locator("#now-title")).to_have_text(titles[0])
    _wait_playing(page, 0.2)
    page.evaluate("const a = document.getElementById('audio'); a.currentTime = a.duration - 0.2")
    expect(page.locator("#now-title")).to_have_text(titles[1])


def test_a_server_with_a_key_asks_for_it_once_and_then_plays(
    open_page: Callable[..., Any], keyed_server: str, console: Console
) -> None:
    console.expected_statuses.add(401)
    page = open_page(keyed_server + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-reason")).to_have_text("This server needs an API key.")
    page.locator("#key").fill("not-the-right-key-at-all")
    page.locator("#key-save").click()
    expect(page.locator("#key-reason")).to_contain_text("refused")
    page.locator("#key").fill(API_KEY)
    page.locator("#key-save").click()
    expect(dialog).to_be_hidden()
    page.locator(".artist-cloud a", has_text="Éclair Ensemble").click()
    page.locator("[aria-label='Tracks of Éclair Ensemble'] .play").first.click()
    _wait_playing(page)
    # The key travels in a header, never in a URL: the element plays a blob.
    assert page.evaluate("document.getElementById('audio').src").startswith("blob:")
    assert page.evaluate("sessionStorage.getItem('soundalike.key')") == API_KEY
    assert API_KEY not in page.url


def test_a_phone_sized_screen_has_no_sideways_scrolling(
    open_page: Callable[..., Any], server: str, screenshots: Path
) -> None:
    page = open_page(_artist_url(server, "Éclair Ensemble"), width=360, height=740)
    expect(page.locator("[aria-label='Tracks of Éclair Ensemble'] .track")).to_have_count(3)
    expect(page.locator(".similar-artist")).to_have_count(ARTISTS - 1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=screenshots / "phone-artist.png")
    page.goto(server + "/#/map")
    expect(page.locator("#map-canvas")).to_have_attribute("data-drawn", str(ARTISTS))
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for view, ready in (
        ("radio", "#path-make"),
        ("clip", "#record"),
        ("library", "#library-status p"),
    ):
        page.goto(f"{server}/#/{view}")
        expect(page.locator(ready)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, view


def test_errors_are_shown_as_messages(
    open_page: Callable[..., Any], server: str, console: Console
) -> None:
    console.expected_statuses.update({404, 422})
    page = open_page(server + "/#/track/00000000-0000-4000-8000-000000000000")
    expect(page.locator(".error")).to_contain_text("unknown track")
    page.goto(server + "/#/artist/Nobody%20At%20All")
    expect(page.locator(".error")).to_contain_text("unknown artist")
    page.goto(server + "/#/no/such/view")
    expect(page.locator("h1")).to_have_text("Not found")


def test_the_library_view_says_when_it_is_off(open_page: Callable[..., Any], server: str) -> None:
    page = open_page(server + "/#/library")
    expect(page.locator("#library-status")).to_contain_text("The live library is off")


def test_the_library_view_follows_a_scan_live(
    open_page: Callable[..., Any], library_server: tuple[str, Path], screenshots: Path
) -> None:
    url, library = library_server
    page = open_page(url + "/#/library")
    status = page.locator("#library-status")
    expect(status.locator(".state")).to_have_text(re.compile("scanning|watching|idle"))
    expect(status).to_contain_text(str(library))
    counts = status.locator(".counts")
    # Updated by the event stream, without reloading: 4 tracks in, the broken file failed.
    expect(counts.locator("dt:text-is('ingested') + dd")).to_have_text("4", timeout=120_000)
    expect(counts.locator("dt:text-is('failed') + dd")).to_have_text("1")
    expect(status.locator(".failures")).to_contain_text("broken.mp3")
    page.screenshot(path=screenshots / "library.png")
    # A file added while the page is open shows up without a reload (the event stream).
    first = next((library / "Éclair Ensemble").glob("*.flac"))
    audio = synth_track(artist_seed=9, track_seed=9, seconds=5.0)
    write_audio(first.with_name("added later.flac"), audio, 44_100)
    expect(counts.locator("dt:text-is('ingested') + dd")).to_have_text("5", timeout=120_000)


def test_a_recording_from_the_microphone_is_searched(
    open_page: Callable[..., Any], server: str
) -> None:
    # Chromium's fake capture device (--use-fake-device-for-media-stream) plays a beep.
    page = open_page(server + "/#/clip")
    page.locator("#record").click()
    expect(page.locator("#record")).to_have_text("■ Stop and search")
    page.wait_for_timeout(4_500)
    page.locator("#record").click()
    expect(page.locator("[aria-label='Matching artists'] li")).to_have_count(
        ARTISTS, timeout=60_000
    )
    expect(page.locator("[aria-label='Matching tracks'] .track")).not_to_have_count(0)


def test_keyboard_only_use(open_page: Callable[..., Any], server: str) -> None:
    page = open_page(server + "/#/map")
    expect(page.locator("#map-canvas")).to_have_attribute("data-drawn", str(ARTISTS))
    page.locator("#locate").focus()
    page.keyboard.type("senora")
    page.keyboard.press("Enter")  # submits the locate form; the canvas takes the focus
    expect(page.locator("#map-canvas")).to_be_focused()
    page.keyboard.press("+")
    page.keyboard.press("Enter")  # opens the located artist
    expect(page.locator("h1")).to_have_text("Señora Luna")
    play = page.locator("[aria-label='Tracks of Señora Luna'] .play").first
    play.focus()
    page.keyboard.press("Enter")
    _wait_playing(page)
