"""Exact neighbour lists: the computation against brute force, its incremental upkeep, and the
stored lists served (or not) by "artists like X" on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from patching import set_constants

from soundalike.core.artist_names import artist_key
from soundalike.core.identity import artist_id64, artist_point_id
from soundalike.core.types import Artist, EmbeddingSpec
from soundalike.search import neighbour_lists, neighbours
from soundalike.search.neighbour_lists import decode_list, encode_list, fingerprint
from soundalike.search.neighbours import NeighbourConfig
from soundalike.search.queries import artists_like
from soundalike.search.schema import F_NEIGHBOURS
from soundalike.search.store import Store, open_store

from .conftest import DIM, MakeTrack


def brute_force(matrix: np.ndarray, ranks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's k best other rows, one by one: score = float64 dot rounded to float32, ties
    to the lower rank."""
    wide = matrix.astype(np.float64)
    n = len(matrix)
    best = np.full((n, k), neighbours.NONE, dtype=np.int64)
    best_scores = np.full((n, k), -np.inf, dtype=np.float32)
    for row in range(n):
        others = np.array([j for j in range(n) if j != row], dtype=np.int64)
        scores = (wide[others] @ wide[row]).astype(np.float32)
        order = np.lexsort((ranks[others], -scores))[:k]
        best[row, : order.size] = others[order]
        best_scores[row, : order.size] = scores[order]
    return best, best_scores


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def assert_same(table: neighbours.NeighbourTable, expected: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(table.neighbours, expected[0])
    np.testing.assert_array_equal(table.scores, expected[1])


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several row blocks and a sampled first threshold, even on a small matrix."""
    set_constants(
        monkeypatch, neighbours, BLOCK_BYTES=4 * 300 * 37, SAMPLE_COLUMNS=40, EXACT_ROWS=7
    )


@pytest.fixture
def symmetric_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The symmetric full build on a small matrix: blocks of 16 rows, a 64-row sample (48 rows
    for its first thresholds), strips of 40 columns (not a whole number of blocks), and
    candidates narrowed as soon as a block holds two per list entry."""
    set_constants(
        monkeypatch,
        neighbours,
        SYMMETRIC_MIN_ROWS=1,
        BLOCK_ROWS=16,
        SAMPLE_COLUMNS=50,
        THRESHOLD_COLUMNS=48,
        STRIP_COLUMNS=40,
        COMPACT_PER_ENTRY=2,
        EXACT_ROWS=5,
        # On a device: a 112-row sample, strips of 80 columns (the triangle still has several).
        DEVICE_COLUMNS=2,
    )


def clustered_rows(
    rng: np.random.Generator, n: int, clusters: int, noise: float = 0.3
) -> np.ndarray:
    """Unit rows in clusters (tight at the default `noise`), ordered by cluster: the first rows
    are a poor sample of the rest unless the build shuffles them."""
    centres = unit_rows(rng, clusters, DIM)
    labels = np.sort(rng.integers(0, clusters, size=n))
    rows = centres[labels] + noise * unit_rows(rng, n, DIM)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# --- the computation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k", "spare"), [(70, 5, 0), (300, 10, 4), (301, 12, 3)])
def test_the_symmetric_build_equals_brute_force(
    symmetric_blocks: None, n: int, k: int, spare: int
) -> None:
    rng = np.random.default_rng(n + k)
    matrix = clustered_rows(rng, n, clusters=6)
    matrix[[40, 41, 250 % n]] = matrix[3]  # ties across blocks, the sample and the triangle
    ranks = rng.permutation(n)
    seen: list[tuple[int, int]] = []
    table = neighbours.build(
        matrix, ranks, k=k, spare=spare, progress=lambda done, total: seen.append((done, total))
    )
    best, scores = brute_force(matrix, ranks, k + spare + 1)
    np.testing.assert_array_equal(table.neighbours, best[:, : k + spare])
    np.testing.assert_array_equal(table.scores, scores[:, : k + spare])
    np.testing.assert_array_equal(table.next_scores, scores[:, k + spare])
    assert seen[-1] == (n, n)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_the_symmetric_build_on_torch_equals_numpy(
    symmetric_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The products on a torch device (here torch's CPU, standing in for CUDA) give the same
    lists: only the candidates come back, and they are scored exactly as in numpy."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    matrix = clustered_rows(rng, 200, clusters=4)
    ranks = rng.permutation(200)
    in_numpy = neighbours.build(matrix, ranks, k=10, spare=2)
    monkeypatch.setattr(neighbours, "products_device", lambda setting: "cpu")
    on_torch = neighbours.build(matrix, ranks, k=10, spare=2, config=NeighbourConfig(device="cuda"))
    np.testing.assert_array_equal(on_torch.neighbours, in_numpy.neighbours)
    np.testing.assert_array_equal(on_torch.scores, in_numpy.scores)
    np.testing.assert_array_equal(on_torch.next_scores, in_numpy.next_scores)


def test_products_run_in_numpy_on_the_cpu_and_where_asked_otherwise() -> None:
    assert neighbours.products_device("cpu") is None
    assert neighbours.products_device("cuda:1") == "cuda:1"
    torch = pytest.importorskip("torch")
    assert neighbours.products_device("auto") == ("cuda" if torch.cuda.is_available() else None)


@pytest.mark.gpu
def test_the_symmetric_build_on_cuda_equals_numpy(symmetric_blocks: None) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    rng = np.random.default_rng(6)
    matrix = clustered_rows(rng, 300, clusters=5)
    ranks = rng.permutation(300)
    in_numpy = neighbours.build(matrix, ranks, k=10, spare=2)
    # A process that allowed TF32 for its own matmuls (an embedder might) still gets exact
    # lists: the build's products turn it off, and back on after.
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        on_cuda = neighbours.build(
            matrix, ranks, k=10, spare=2, config=NeighbourConfig(device="cuda")
        )
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    np.testing.assert_array_equal(on_cuda.neighbours, in_numpy.neighbours)
    np.testing.assert_array_equal(on_cuda.scores, in_numpy.scores)
    np.testing.assert_array_equal(on_cuda.next_scores, in_numpy.next_scores)


@pytest.mark.parametrize(("n", "k"), [(1, 5), (4, 5), (12, 5), (300, 10)])
def test_build_equals_brute_force(small_blocks: None, n: int, k: int) -> None:
    rng = np.random.default_rng(n)
    matrix = unit_rows(rng, n, DIM)
    ranks = rng.permutation(n)
    assert_same(neighbours.build(matrix, ranks, k=k), brute_force(matrix, ranks, k))


def test_ties_go_to_the_lower_rank_whichever_row_order() -> None:
    rng = np.random.default_rng(7)
    matrix = unit_rows(rng, 30, DIM)
    matrix[[5, 9, 21]] = matrix[2]  # four identical centroids: every score among them ties
    ranks = rng.permutation(30)
    table = neighbours.build(matrix, ranks, k=6)
    assert_same(table, brute_force(matrix, ranks, 6))
    twins, scores = table.list_of(2)
    assert scores[0] == scores[1] == scores[2]
    assert list(twins[:3]) == sorted([5, 9, 21], key=lambda row: ranks[row])


def test_next_score_is_the_best_score_left_out() -> None:
    rng = np.random.default_rng(3)
    matrix = unit_rows(rng, 50, DIM)
    full = neighbours.build(matrix, k=8)
    longer = neighbours.build(matrix, k=9)
    np.testing.assert_array_equal(full.next_scores, longer.scores[:, 8])
    everyone = neighbours.build(matrix[:5], k=8)
    assert (everyone.next_scores == -np.inf).all()


def test_incremental_updates_equal_a_full_recompute(small_blocks: None) -> None:
    rng = np.random.default_rng(11)
    n, k = 300, 10
    matrix = unit_rows(rng, n, DIM)
    ranks = rng.permutation(n)
    table = neighbours.build(matrix, ranks, k=k)

    # Moved a little, moved far, and two new artists (appended rows with no list yet).
    moved = matrix.copy()
    moved[4] = moved[4] + 0.05 * unit_rows(rng, 1, DIM)[0]
    moved[4] /= np.linalg.norm(moved[4])
    moved[17] = unit_rows(rng, 1, DIM)[0]
    grown = np.vstack([moved, unit_rows(rng, 2, DIM)])
    grown_ranks = np.concatenate([ranks, [n, n + 1]])
    old = neighbours.NeighbourTable(
        np.vstack([table.neighbours, np.full((2, k), neighbours.NONE)]),
        np.vstack([table.scores, np.full((2, k), -np.inf, np.float32)]),
        np.concatenate([table.next_scores, np.full(2, -np.inf, np.float32)]),
    )
    updated, rewritten = neighbours.update(grown, grown_ranks, old, [4, 17, n, n + 1], k=k)
    assert_same(updated, brute_force(grown, grown_ranks, k))
    assert rewritten.size < n  # not a rebuild in disguise

    # Deleting rows 30 and 31: the survivors renumbered, the deleted marked in old lists.
    keep = np.array([row for row in range(n + 2) if row not in (30, 31)])
    old = updated.without_rows(keep)
    shrunk, shrunk_ranks = grown[keep], grown_ranks[keep]
    after_delete, _ = neighbours.update(shrunk, shrunk_ranks, old, [], k=k)
    assert_same(after_delete, brute_force(shrunk, shrunk_ranks, k))


def test_incremental_update_when_every_list_holds_every_artist() -> None:
    rng = np.random.default_rng(5)
    matrix = unit_rows(rng, 6, DIM)
    table = neighbours.build(matrix, k=10)
    grown = np.vstack([matrix, unit_rows(rng, 1, DIM)])
    old = neighbours.NeighbourTable(
        np.vstack([table.neighbours, np.full((1, 10), neighbours.NONE)]),
        np.vstack([table.scores, np.full((1, 10), -np.inf, np.float32)]),
        np.concatenate([table.next_scores, [-np.inf]]).astype(np.float32),
    )
    updated, _ = neighbours.update(grown, None, old, [6], k=10)
    assert_same(updated, brute_force(grown, np.arange(7), 10))


def assert_exact_prefixes(
    table: neighbours.NeighbourTable, expected: tuple[np.ndarray, np.ndarray], k: int
) -> None:
    """Every list holds at least k entries (or every other row), each exact in rank."""
    n = table.neighbours.shape[0]
    for row in range(n):
        listed, scores = table.list_of(row)
        assert listed.size >= min(k, n - 1), row
        np.testing.assert_array_equal(listed, expected[0][row][: listed.size])
        np.testing.assert_array_equal(scores, expected[1][row][: listed.size])
        # The bound covers every row not listed.
        left_out = expected[1][row][listed.size :]
        if left_out.size and np.isfinite(left_out[0]):
            assert table.next_scores[row] >= left_out[0]


def test_spare_entries_refill_lists_that_lose_members_without_a_recompute(
    small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(21)
    n, k, spare = 200, 8, 4
    matrix = unit_rows(rng, n, DIM)
    ranks = rng.permutation(n)
    table = neighbours.build(matrix, ranks, k=k, spare=spare)
    assert_same(table, brute_force(matrix, ranks, k + spare))

    recomputed: list[int] = []
    real = neighbours.exact._compute_rows

    def counting(
        matrix: np.ndarray, ranks: np.ndarray, rows: np.ndarray, *rest: object, **kw: object
    ) -> None:
        recomputed.extend(rows.tolist())
        real(matrix, ranks, rows, *rest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(neighbours.exact, "_compute_rows", counting)  # what `update` calls
    # Three artists deleted: every list that held them refills from its spare entries.
    doomed = [3, 50, 120]
    keep = np.setdiff1d(np.arange(n), doomed)
    shrunk, shrunk_ranks = matrix[keep], ranks[keep]
    after, rewritten = neighbours.update(shrunk, shrunk_ranks, table.without_rows(keep), [], k=k)
    assert rewritten.size > 0 and recomputed == []
    assert_exact_prefixes(after, brute_force(shrunk, shrunk_ranks, k + spare), k)

    # More deletions than a list has spare entries: those lists are recomputed, in full.
    hub = int(np.argmax(np.bincount(after.neighbours[after.neighbours >= 0], minlength=len(keep))))
    holder = int(np.flatnonzero((after.neighbours == hub).any(axis=1))[0])
    members = after.list_of(holder)[0][: spare + 1]
    keep2 = np.setdiff1d(np.arange(len(keep)), members)
    again, _ = neighbours.update(
        shrunk[keep2], shrunk_ranks[keep2], after.without_rows(keep2), [], k=k
    )
    assert recomputed, "a list that lost more than its spare entries is recomputed"
    expected = brute_force(shrunk[keep2], shrunk_ranks[keep2], k + spare)
    assert_exact_prefixes(again, expected, k)
    refilled = int(np.searchsorted(keep2, holder))
    assert again.list_of(refilled)[0].size == k + spare


def test_changed_rows_against_spare_entries_equal_brute_force(small_blocks: None) -> None:
    rng = np.random.default_rng(22)
    n, k, spare = 250, 6, 5
    matrix = unit_rows(rng, n, DIM)
    table = neighbours.build(matrix, k=k, spare=spare)
    moved = matrix.copy()
    for row in (7, 8, 99):
        moved[row] = moved[row] + 0.3 * unit_rows(rng, 1, DIM)[0]
        moved[row] /= np.linalg.norm(moved[row])
    updated, _ = neighbours.update(moved, None, table, [7, 8, 99], k=k)
    assert_exact_prefixes(updated, brute_force(moved, np.arange(n), k + spare), k)


def test_a_list_round_trips_within_1_5e_5_in_1011_bytes() -> None:
    ids = np.arange(-50, 50, dtype=np.int64) * 123_456_789_012
    scores = np.linspace(0.9, 0.5, 100, dtype=np.float32)
    text = encode_list(b"12345678", ids, scores, 0.49999)
    stored = decode_list(text)
    assert stored is not None
    assert len(text) == 1348 and (len(text) // 4) * 3 == 1011
    np.testing.assert_array_equal(stored.ids, ids)
    np.testing.assert_allclose(stored.scores, scores, atol=1.6e-5)
    assert stored.fingerprint == b"12345678"
    assert 0.49999 <= stored.next_score < 0.49999 + 3.1e-5  # rounded up: still an upper bound
    # A list that holds every other artist says so exactly (no bound to round).
    complete = decode_list(encode_list(b"12345678", ids[:3], scores[:3], -np.inf))
    assert complete is not None and complete.next_score == -np.inf
    assert decode_list("not base64!") is None
    assert decode_list(None) is None


# --- stored lists -------------------------------------------------------------------------------


def add_artists(store: Store, rows: np.ndarray, start: int = 0) -> list[str]:
    names = [f"Artist {i:03d}" for i in range(start, start + len(rows))]
    store.upsert_artists(
        [
            Artist(name=name, artist_key=artist_key(name), track_count=1 + i % 3, centroid=row)
            for i, (name, row) in enumerate(zip(names, rows.tolist(), strict=True))
        ]
    )
    return [artist_key(name) for name in names]


def stored_centroids(store: Store) -> tuple[list[str], np.ndarray]:
    artists = store.get_artists(store.artist_names(), with_centroid=True)
    keys = sorted(artists)
    return keys, np.asarray([artists[key].centroid for key in keys], dtype=np.float32)


def with_lists(store: Store, seed: int, n: int) -> tuple[np.random.Generator, list[str]]:
    """n random artists (from a generator seeded with `seed`) and their neighbour lists built;
    gives the generator, to draw more from, and the artists' keys."""
    rng = np.random.default_rng(seed)
    keys = add_artists(store, unit_rows(rng, n, DIM))
    store.rebuild_neighbour_lists()
    return rng, keys


def add_move_and_delete(store: Store, rng: np.random.Generator, keys: list[str]) -> None:
    """Of 40 artists: two added (Artist 040 and 041), keys[5] moved, keys[9] deleted."""
    add_artists(store, unit_rows(rng, 2, DIM), start=40)  # added
    moved = store.get_artist(keys[5], with_centroid=True)
    assert moved is not None
    moved.centroid = unit_rows(rng, 1, DIM)[0].tolist()  # changed
    store.upsert_artists([moved])
    store.delete_artist(keys[9])  # deleted


def assert_stored_lists_exact(store: Store, k: int) -> None:
    """Every stored list is the start of brute force over the stored centroids (ties by artist
    key): the k served entries at least, up to k + SPARE."""
    keys, matrix = stored_centroids(store)
    width = k + neighbours.SPARE
    expected, expected_scores = brute_force(matrix, np.arange(len(keys)), width)
    artists = store.backend_for_tests.retrieve(
        store.artists_collection,
        [artist_point_id(key) for key in keys],
        with_payload=True,
        with_vectors=True,
    )
    by_key = {str(p.payload["artist_key"]): p for p in artists}
    for row, key in enumerate(keys):
        stored = decode_list(by_key[key].payload.get(F_NEIGHBOURS))
        assert stored is not None, key
        assert stored.fingerprint == fingerprint(matrix[row])
        listed = expected[row][expected[row] >= 0]
        assert min(k, len(keys) - 1) <= stored.ids.size <= width, key
        listed = listed[: stored.ids.size]
        assert stored.ids.tolist() == [artist_id64(keys[j]) for j in listed], key
        np.testing.assert_allclose(
            stored.scores, expected_scores[row][: listed.size], rtol=0, atol=1.6e-5
        )
    assert store.neighbour_lists_version() is not None


@pytest.fixture
def k5(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lists of 5, so that a catalogue of tens of artists has lists that leave artists out."""
    monkeypatch.setattr(neighbours, "K", 5)
    return 5


def test_stored_lists_equal_brute_force(store: Store, k5: int) -> None:
    rows = unit_rows(np.random.default_rng(1), 40, DIM)
    rows[7] = rows[3]  # a tie, broken by artist key
    add_artists(store, rows)
    assert store.neighbour_lists_version() is None
    result = store.rebuild_neighbour_lists()
    assert result.full and result.artists == 40 and result.written == 40
    assert_stored_lists_exact(store, k5)


def test_a_rebuild_of_a_large_catalogue_stores_exact_lists(
    store: Store, k5: int, symmetric_blocks: None
) -> None:
    """The symmetric build (one triangle of the product) through the store: a sample, a
    triangle of several blocks, ties across them."""
    rows = clustered_rows(np.random.default_rng(8), 150, clusters=5)
    rows[[20, 120]] = rows[99]
    add_artists(store, rows)
    result = store.rebuild_neighbour_lists()
    assert result.full and result.artists == 150 and result.written == 150
    assert_stored_lists_exact(store, k5)


def test_added_changed_and_deleted_artists_are_updated_incrementally(
    store: Store, k5: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neighbour_lists, "FULL_REBUILD_SHARE", 1.0)
    rng, keys = with_lists(store, 2, 40)

    add_move_and_delete(store, rng, keys)
    assert store.neighbour_lists_version() is None

    result = store.update_neighbour_lists({keys[9]})
    assert not result.full
    assert result.changed == 3  # two new, one moved: found from the lists' fingerprints
    assert result.written < result.artists
    assert_stored_lists_exact(store, k5)
    # Nothing changed since: nothing to do, nothing read.
    again = store.update_neighbour_lists()
    assert (again.artists, again.written) == (0, 0)


def test_many_changes_rebuild_and_a_crash_mid_write_is_never_served(
    store: Store, k5: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    keys = add_artists(store, unit_rows(rng, 30, DIM))
    assert store.update_neighbour_lists().full  # no lists yet: a rebuild

    add_artists(store, unit_rows(rng, 30, DIM), start=0)  # every centroid moved
    backend = store.backend_for_tests
    real = backend.set_payloads
    calls: list[int] = []

    def crash_after_one_batch(name: str, payloads: list) -> None:  # type: ignore[type-arg]
        calls.append(len(payloads))
        real(name, payloads[:3])
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(neighbour_lists, "UPSERT_BATCH", 10)
    monkeypatch.setattr(backend, "set_payloads", crash_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        store.update_neighbour_lists()
    assert calls
    assert store.neighbour_lists_version() is None
    assert store.neighbours_of(keys[0], limit=3) is None

    monkeypatch.setattr(backend, "set_payloads", real)
    assert store.update_neighbour_lists().full  # the rerun sees no valid lists
    assert_stored_lists_exact(store, k5)


def test_a_stale_list_is_not_served_and_the_live_search_answers(store: Store) -> None:
    rng = np.random.default_rng(6)
    keys = add_artists(store, unit_rows(rng, 20, DIM))
    store.rebuild_neighbour_lists()
    name = store.get_artist(keys[0])
    assert name is not None
    served = store.neighbours_of(keys[0], limit=5)
    assert served is not None and len(served) == 5

    # An artist upserted after the lists were built: its own centroid is identical, yet the
    # catalogue version moved on, so no list is served until the lists are brought up to date.
    same = store.get_artist(keys[3], with_centroid=True)
    assert same is not None
    store.upsert_artists([same])
    assert store.neighbour_lists_version() is None
    assert store.neighbours_of(keys[0], limit=5) is None
    live = artists_like(store, name.name, limit=5, lookup=True)
    assert [r.hit.artist.artist_key for r in live.results] == [h.artist.artist_key for h in served]
    store.update_neighbour_lists()
    assert store.neighbours_of(keys[0], limit=5) is not None


@pytest.mark.parametrize("k", [5, 100])
def test_filtered_queries_answer_the_same_through_either_path(
    store: Store, make_track: MakeTrack, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    monkeypatch.setattr(neighbours, "K", k)
    tracks = []
    for a in range(24):
        for n in range(1 + a % 4):
            genre = ("rock", "jazz", "folk")[(a + n) % 3]
            tracks.append(make_track(f"Band {a:02d}", n, genre=genre, year=1990 + (a * n) % 5))
    store.upsert_tracks(tracks)
    store.recompute_centroids({t.artist_key for t in tracks})
    store.rebuild_neighbour_lists()

    searched: list[int] = []
    live_search = store.search_artists

    def counting(*args: object, **kwargs: object) -> object:
        searched.append(1)
        return live_search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "search_artists", counting)
    cases: list[dict[str, object]] = [
        {},
        {"limit": 3},
        {"min_tracks": 3},
        {"filters": {"genre": "jazz"}},
        {"filters": {"genre": ["rock", "folk"]}, "min_tracks": 2},
        {"filters": {"year": 1990}, "limit": 7},
        {"explain": True, "limit": 2},
    ]
    for case in cases:
        for name in ("Band 00", "Band 05", "Band 13"):
            searched.clear()
            looked_up = artists_like(store, name, **case, lookup=True)  # type: ignore[arg-type]
            used_lookup = not searched
            live = artists_like(store, name, **case, lookup=False)  # type: ignore[arg-type]
            assert searched, "lookup=False searches live"
            assert [r.hit.artist.artist_key for r in looked_up.results] == [
                r.hit.artist.artist_key for r in live.results
            ], (case, name)
            assert [r.hit.artist.track_count for r in looked_up.results] == [
                r.hit.artist.track_count for r in live.results
            ]
            np.testing.assert_allclose(
                [r.hit.score for r in looked_up.results],
                [r.hit.score for r in live.results],
                atol=1e-3,
            )
            if case.get("explain"):
                assert all(r.closest_pairs for r in looked_up.results)
            if k == 100 or case == {"limit": 3}:
                # Lists holding every artist, or an unfiltered page the list fills: answered by
                # the lookup (a page longer than a list of 5 is searched live).
                assert used_lookup, (case, name)


# --- approximate lists (an inverted file, above APPROXIMATE_ABOVE artists on the CPU) ----------


@pytest.fixture
def small_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cells of about 40 rows from an 8-rows-per-cell k-means sample; blocks of 32 rows."""
    monkeypatch.setattr(neighbours, "CELL_ROWS", 40)
    monkeypatch.setattr(neighbours, "SAMPLE_PER_CELL", 8)
    monkeypatch.setattr(neighbours, "BLOCK_ROWS", 32)
    monkeypatch.setattr(neighbours, "COMPACT_PER_ENTRY", 2)


def test_the_approximate_build_probing_every_cell_equals_brute_force(small_cells: None) -> None:
    rng = np.random.default_rng(11)
    matrix = clustered_rows(rng, 400, clusters=8)
    matrix[[50, 300]] = matrix[7]  # ties across cells
    ranks = rng.permutation(400)
    table = neighbours.build_approximate(matrix, ranks, k=10, spare=2, probes=400 // 40)
    assert table.exact is True  # every cell probed: every pair scored
    best, scores = brute_force(matrix, ranks, 13)
    np.testing.assert_array_equal(table.neighbours, best[:, :12])
    np.testing.assert_array_equal(table.scores, scores[:, :12])
    np.testing.assert_array_equal(table.next_scores, scores[:, 12])


def test_the_approximate_build_lists_exact_scores_in_order_and_most_true_neighbours(
    small_cells: None,
) -> None:
    """Probing 3 of 15 cells of loosely clustered rows: every listed score is the exact one,
    lists are in exact order (ties by rank), and about nine in ten of the true top 10 are
    found, not all."""
    rng = np.random.default_rng(12)
    matrix = clustered_rows(rng, 600, clusters=12, noise=1.0)
    ranks = rng.permutation(600)
    table = neighbours.build_approximate(matrix, ranks, k=10, spare=2, probes=3)
    assert table.exact is False
    best, _ = brute_force(matrix, ranks, 10)
    found = []
    for row in range(600):
        listed, scores = table.list_of(row)
        assert listed.size == 12 and row not in listed
        np.testing.assert_array_equal(scores, neighbours.exact_scores(matrix, row, listed))
        assert np.array_equal(np.lexsort((ranks[listed], -scores)), np.arange(12))
        found.append(np.intersect1d(listed[:10], best[row]).size / 10)
    assert 0.9 <= float(np.mean(found)) < 1.0


def test_duplicates_and_tiny_cells_never_list_an_artist_itself_or_a_short_list(
    small_cells: None,
) -> None:
    """Half the rows identical and a few near them: k-means leaves empty and tiny cells, and
    rows whose probed cells hold fewer artists than a list; they are scored against every
    artist instead of keeping a short list that would read as "every other artist listed"."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((600, DIM)).astype(np.float32)
    matrix[:300] = matrix[0]
    matrix[300:340] = matrix[0] + 0.05 * rng.standard_normal((40, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    table = neighbours.build_approximate(matrix, k=10, spare=2, probes=3)
    assert not table.exact
    for row in range(600):
        listed, scores = table.list_of(row)
        assert listed.size == 12 and row not in listed, row
        np.testing.assert_array_equal(scores, neighbours.exact_scores(matrix, row, listed))
    assert np.isfinite(table.next_scores).all()


def test_a_rebuild_is_approximate_above_the_threshold_and_only_on_the_cpu(
    small_cells: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neighbours, "PROBES", 2)
    matrix = clustered_rows(np.random.default_rng(13), 300, clusters=6)
    assert neighbours.build(matrix, k=10, config=NeighbourConfig(approximate_above=300)).exact
    assert not neighbours.build(matrix, k=10, config=NeighbourConfig(approximate_above=299)).exact
    assert neighbours.build(matrix, k=10).exact  # no threshold: always exact
    monkeypatch.setattr(neighbours, "products_device", lambda setting: setting)  # a GPU
    on_cuda = NeighbourConfig(device="cuda", approximate_above=299)
    assert neighbours.build(matrix, k=10, config=on_cuda).exact


def test_a_store_above_the_threshold_serves_approximate_lists_and_keeps_them_current(
    backend_kind: str,
    data_dir: Path,
    spec: EmbeddingSpec,
    k5: int,
    small_cells: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(neighbours, "PROBES", 2)
    options = {"data_dir": data_dir} if backend_kind == "edge" else {"in_memory": True}
    above_100 = NeighbourConfig(approximate_above=100)
    with open_store(**options, neighbours=above_100) as store:
        store.ensure_spec(spec)
        keys = add_artists(store, clustered_rows(np.random.default_rng(14), 160, clusters=4))
        rebuilt = store.rebuild_neighbour_lists()
        assert rebuilt.full and not rebuilt.exact and rebuilt.written == 160
        assert store.neighbour_lists_version() is not None
        assert not store.neighbour_lists_exact()
        stored_keys, matrix = stored_centroids(store)
        hits = store.neighbours_of(keys[0], limit=5)
        assert hits is not None and len(hits) == 5
        listed = np.asarray([stored_keys.index(hit.artist.artist_key) for hit in hits])
        exact = neighbours.exact_scores(matrix, stored_keys.index(keys[0]), listed)
        np.testing.assert_allclose([hit.score for hit in hits], exact, rtol=0, atol=1.6e-5)

        moved = store.get_artist(keys[3], with_centroid=True)
        assert moved is not None
        moved.centroid = (np.asarray(moved.centroid) * -1.0).tolist()
        store.upsert_artists([moved])
        updated = store.update_neighbour_lists()
        assert not updated.full and updated.changed == 1 and not updated.exact
        assert store.neighbour_lists_version() is not None
        assert not store.neighbour_lists_exact()


def test_lists_are_exact_below_the_threshold(store: Store, k5: int) -> None:
    add_artists(store, unit_rows(np.random.default_rng(15), 30, DIM))
    assert store.rebuild_neighbour_lists().exact
    assert store.neighbour_lists_exact()
