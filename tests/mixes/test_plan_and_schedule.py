"""Grouping seeds by sound, the served schedule's triggers, and the M3U8 export, without a
server."""

from __future__ import annotations

import threading
from pathlib import Path

import m3u8
import numpy as np

from soundalike.core.events import TrackStored, UpkeepDone
from soundalike.core.types import Track
from soundalike.mixes.m3u8 import m3u8_text
from soundalike.mixes.plan import group_by_sound
from soundalike.mixes.run import MixesReport, now_iso
from soundalike.mixes.schedule import MixesSchedule


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_seeds_are_grouped_by_sound_heaviest_group_first() -> None:
    rng = np.random.default_rng(3)
    centres = unit_rows(rng.normal(size=(3, 32)))
    labels = np.repeat([0, 1, 2], [4, 6, 2])
    vectors = unit_rows(centres[labels] + 0.05 * rng.normal(size=(12, 32)))
    weights = np.ones(12, dtype=np.float32)
    weights[labels == 2] = 10.0  # two heavy favourites outweigh six passing plays

    groups = group_by_sound(vectors, weights, 3)

    assert sorted(sorted(g) for g in groups) == sorted(
        sorted(np.flatnonzero(labels == k).tolist()) for k in range(3)
    )
    assert [set(labels[g]) for g in groups] == [{2}, {1}, {0}]
    assert group_by_sound(vectors, weights, 3) == groups  # deterministic
    assert len(group_by_sound(vectors, weights, 1)) == 1
    assert len(group_by_sound(vectors[:2], weights[:2], 5)) <= 2
    assert group_by_sound(np.repeat(vectors[:1], 4, axis=0), np.ones(4), 3) == [[0, 1, 2, 3]]


def _report(trigger: str) -> MixesReport:
    return MixesReport(started_at=now_iso(), finished_at=now_iso(), trigger=trigger)


def test_a_big_enough_library_change_refreshes_once_its_upkeep_is_done() -> None:
    ran: list[str] = []
    done = threading.Event()

    def refresh(trigger: str) -> MixesReport:
        ran.append(trigger)
        done.set()
        return _report(trigger)

    schedule = MixesSchedule(refresh, server="s", every_s=0, after_tracks=3)
    schedule.start()
    try:
        for n in range(2):
            schedule(TrackStored(f"/m/{n}.flac", f"id{n}", "A"))
        schedule(TrackStored("/m/s.flac", "ids", "A", outcome="skipped"))
        schedule(UpkeepDone("centroids", 1, 0.1))
        assert not done.wait(0.3), "two ingested tracks are not a change big enough"
        schedule(TrackStored("/m/2.flac", "id2", "A"))
        assert schedule.state()["tracks_since_last_run"] == 3
        assert not done.wait(0.3), "the ingest's upkeep is not done yet"
        schedule(UpkeepDone("centroids", 1, 0.1))
        assert done.wait(10)
    finally:
        schedule.close()
    assert ran == ["library"]
    state = schedule.state()
    assert state["last_run"]["trigger"] == "library" and state["tracks_since_last_run"] == 0
    assert state["next_run_at"] is None  # every_s=0: no periodic run


def test_a_failed_run_is_reported_and_the_schedule_goes_on() -> None:
    from soundalike.core.errors import EmptyTaste

    calls: list[str] = []
    second = threading.Event()

    def refresh(trigger: str) -> MixesReport:
        calls.append(trigger)
        if len(calls) == 1:
            raise EmptyTaste("no taste to seed mixes from")
        second.set()
        return _report(trigger)

    schedule = MixesSchedule(refresh, server="s", every_s=0, after_tracks=0)
    schedule.start()
    try:
        schedule.request()
        deadline = threading.Event()
        while schedule.state()["last_run"] is None and not deadline.wait(0.05):
            pass
        failed = schedule.state()["last_run"]
        assert failed["ok"] is False and failed["error"] == "no taste to seed mixes from"
        schedule.request()
        assert second.wait(10)
    finally:
        schedule.close()


def test_the_m3u8_export_names_files_relative_to_their_library_folder(tmp_path: Path) -> None:
    library = tmp_path / "music"
    inside = library / "Ana Ruiz" / "01 Song.flac"
    outside = tmp_path / "elsewhere" / "b.mp3"

    def track(path: str, title: str | None, seconds: float | None) -> Track:
        return Track(track_id=title or "t", artist="Ana\nRuiz", artist_key="ana ruiz",
                     vector=None, title=title, path=path, duration_seconds=seconds)  # fmt: skip

    text, left_out = m3u8_text(
        "Radio: Ana",
        [
            track(str(inside), "Song", 241.6),
            track("subsonic+http://me@host?id=7", "Remote", 100),
            track(str(outside), None, None),
        ],
        [library],
    )
    assert left_out == 1
    parsed = m3u8.loads(text)
    assert [s.uri for s in parsed.segments] == ["Ana Ruiz/01 Song.flac", str(outside)]
    assert [s.title for s in parsed.segments] == ["Ana Ruiz - Song", "Ana Ruiz - b"]
    assert [s.duration for s in parsed.segments] == [242, -1]
    assert (library / parsed.segments[0].uri) == inside
