"""The bounded-queries benchmark at a tiny size: both ways answer the same, and it reports
every request with both ways measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.queries import (
    capped_unbounded,
    explain_unbounded,
    fill,
    main,
    page_unbounded,
)
from soundalike.search import queries
from soundalike.search.store import open_store


def test_the_bounded_and_unbounded_ways_agree_where_both_are_exact(tmp_path: Path) -> None:
    # Artists smaller than EXPLAIN_CANDIDATES and a catalogue under MAX_CANDIDATES: the bounded
    # answers must equal the old unbounded ones exactly.
    with open_store(data_dir=tmp_path / "data") as store:
        fill(store, big_tracks=40, small_artists=10)
        answer = queries.artists_like(store, "Big One", limit=1, explain=True)
        (result,) = answer.results
        assert result.hit.artist.name == "Big Two"
        bounded = [(p.track.track_id, p.other_track.track_id) for p in result.closest_pairs]
        unbounded = [
            (p.track.track_id, p.other_track.track_id) for p in explain_unbounded(store, "Big One")
        ]
        assert bounded == unbounded
        seed = store.tracks_of_artist("big one", with_vectors=True)[0]
        _, hits = queries.tracks_like(store, seed.track_id, limit=100, max_per_artist=1)
        old = capped_unbounded(store, seed, 100)
        assert [h.track.track_id for h in hits] == [h.track.track_id for h in old]
        page = store.artist_track_page("big one", limit=100)
        assert [t.track_id for t in page] == [t.track_id for t in page_unbounded(store, "big one")]


def test_a_tiny_run_reports_each_request_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--big-tracks", "80", "--small-artists", "5", "--repeat", "1"]) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (document["big_tracks"], document["small_artists"]) == (80, 5)
    assert set(document["results"]) == {"explain", "capped_tracks", "artist_page"}
    for row in document["results"].values():
        for way in ("bounded", "unbounded"):
            assert row[way]["latency"]["p50_ms"] > 0 and row[way]["peak_alloc_mb"] > 0
