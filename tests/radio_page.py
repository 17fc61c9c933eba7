"""The radio view as the browser tests drive it (tests/web/): seeds liked, a radio or a path
made, and the tracks they list."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

RADIO_ROWS = "[aria-label='Radio playlist'] .track"


def shown_tracks(rows: Any) -> list[tuple[str, str]]:
    """(artist, title) of the listed tracks, in the order shown."""
    artists = rows.locator(".track-artist").all_inner_texts()
    titles = rows.locator(".track-title").all_inner_texts()
    return list(zip(artists, titles, strict=True))


def make_radio(page: Any, *seeds: str) -> list[tuple[str, str]]:
    """Likes `seeds` (on the radio view), makes the radio and gives its (artist, title) pairs
    in the order shown."""
    for seed in seeds:
        page.locator("#seed-input").fill(seed)
        page.locator("#seed-like").click()
        expect(page.locator(".chip.like", has_text=seed)).to_have_count(1)
    page.locator("#radio-make").click()
    rows = page.locator(RADIO_ROWS)
    expect(rows).not_to_have_count(0)
    return shown_tracks(rows)


def make_path(page: Any, start: str, end: str, steps: int) -> Any:
    """Asks the radio view for a path of `steps` tracks from `start` to `end`; its rows."""
    page.locator("#path-from").fill(start)
    page.locator("#path-to").fill(end)
    page.locator("#path-steps").fill(str(steps))
    page.locator("#path-make").click()
    rows = page.locator("#path-result .track")
    expect(rows).to_have_count(steps)
    return rows
