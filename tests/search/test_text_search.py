"""find_tracks: case/accent-insensitive substring search over title, artist and album."""

from __future__ import annotations

import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.core.types import Track
from soundalike.search.store import Store
from soundalike.search.text_search import (
    COUNT_RECHECK_S,
    TextIndex,
    _CachedTextIndex,
    find_tracks,
)
from tests.search.conftest import MakeTrack


@pytest.fixture
def catalogue(store: Store, make_track: MakeTrack) -> dict[str, Track]:
    tracks = {
        "love": make_track("Éclair Ensemble", 1, title="Love Song", album="Première"),
        "lovely": make_track("Éclair Ensemble", 2, title="Lovely  Day", album="Première"),
        "harbour": make_track("The Quiet Harbour", 1, title="Night Tide", album="Glove Box"),
        "other": make_track("Lovers Rock Trio", 1, title="Sunrise", album="Morning"),
        "untitled": make_track("Nobody", 1, title=None, album=None),
    }
    store.upsert_tracks(list(tracks.values()))
    store.recompute_centroids({t.artist_key for t in tracks.values()})
    return tracks


def _titles(tracks: list[Track]) -> list[str | None]:
    return [t.title for t in tracks]


def test_query_matches_title_artist_and_album_case_and_accent_insensitively(
    store: Store, catalogue: dict[str, Track]
) -> None:
    found = find_tracks(store, "LOVE")
    # Title matches first (by artist, album, title), then artist, then album matches.
    assert _titles(found) == ["Love Song", "Lovely  Day", "Sunrise", "Night Tide"]
    assert find_tracks(store, "premiere")[0].album == "Première"
    assert {t.track_id for t in find_tracks(store, "eclair")} == {
        catalogue["love"].track_id,
        catalogue["lovely"].track_id,
    }
    # Spacing folds like artist names: "lovely day" finds "Lovely  Day".
    assert _titles(find_tracks(store, "  lovely   DAY ")) == ["Lovely  Day"]


def test_tracks_come_whole_without_vectors(store: Store, catalogue: dict[str, Track]) -> None:
    (track,) = find_tracks(store, "night tide")
    assert track.track_id == catalogue["harbour"].track_id
    assert track.artist == "The Quiet Harbour"
    assert track.path == catalogue["harbour"].path
    assert track.vector is None


def test_title_and_artist_narrow(store: Store, catalogue: dict[str, Track]) -> None:
    assert _titles(find_tracks(store, title="love")) == ["Love Song", "Lovely  Day"]
    assert _titles(find_tracks(store, title="love", artist="ECLAIR")) == [
        "Love Song",
        "Lovely  Day",
    ]
    assert find_tracks(store, title="love", artist="harbour") == []
    assert _titles(find_tracks(store, artist="lovers")) == ["Sunrise"]
    # The query and the narrowing fields all hold: "love" matches four, the title only one.
    assert _titles(find_tracks(store, "love", title="song")) == ["Love Song"]


def test_nothing_to_search_for_gives_nothing(store: Store, catalogue: dict[str, Track]) -> None:
    assert find_tracks(store) == []
    assert find_tracks(store, "   ") == []
    assert find_tracks(store, "", title="", artist=None) == []
    assert find_tracks(store, "no such words anywhere") == []


def test_paging(store: Store, catalogue: dict[str, Track]) -> None:
    everything = find_tracks(store, "love")
    pages = [find_tracks(store, "love", limit=1, offset=i) for i in range(len(everything))]
    assert [page[0].track_id for page in pages] == [t.track_id for t in everything]
    assert find_tracks(store, "love", limit=2, offset=3) == everything[3:]
    assert find_tracks(store, "love", offset=99) == []
    assert find_tracks(store, "love", limit=0) == []


def test_bad_paging_is_refused(store: Store, catalogue: dict[str, Track]) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        find_tracks(store, "love", limit=501)
    with pytest.raises(InvalidRequest, match="offset"):
        find_tracks(store, "love", offset=-1)


def test_catalogue_changes_are_seen(
    store: Store, catalogue: dict[str, Track], make_track: MakeTrack
) -> None:
    assert find_tracks(store, "brand new") == []
    added = make_track("Newcomer", 1, title="Brand New Tune")
    store.upsert_tracks([added])
    store.recompute_centroids([added.artist_key])
    assert [t.track_id for t in find_tracks(store, "brand new")] == [added.track_id]
    store.delete_artist(added.artist_key)
    assert find_tracks(store, "brand new") == []


def test_empty_store_finds_nothing(empty_store: Store) -> None:
    assert find_tracks(empty_store, "anything") == []


def test_a_match_never_spans_two_records() -> None:
    # "ab" + "cd": "bc" would straddle the boundary if records were simply concatenated.
    index = TextIndex([("1", "ab", "x", ""), ("2", "cd", "x", "")])
    assert index.search("bc", "", "", limit=10) == []
    assert index.search("", "", "x", limit=10) == ["1", "2"]


def test_tracks_written_without_a_centroid_change_are_seen_after_the_count_recheck(
    store: Store, catalogue: dict[str, Track], make_track: MakeTrack
) -> None:
    now = [0.0]
    cached = _CachedTextIndex(clock=lambda: now[0])
    assert len(cached.current(store)) == len(catalogue)
    # A bare upsert leaves the catalogue version as it was: only the count tells.
    store.upsert_tracks([make_track("Newcomer", 2, title="Quiet Arrival")])
    assert len(cached.current(store)) == len(catalogue)
    now[0] += COUNT_RECHECK_S + 0.1
    index = cached.current(store)
    assert len(index) == len(catalogue) + 1
    assert index.search("quiet arrival", "", "", limit=5) != []
