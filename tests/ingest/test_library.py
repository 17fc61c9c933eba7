"""The live library against a real folder and a real watcher: changes on disk converge in the
store (artists, counts, ids), moved files are not re-embedded, bad files are reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import synth_track, write_audio
from soundalike.ingest.library import Library, LibraryConfig
from soundalike.ingest.library.library import (
    LIBRARY_NICENESS,
    LIBRARY_SWITCH_INTERVAL_S,
    lower_this_threads_priority,
)
from soundalike.search.store import Store, open_store

SECONDS = 4.0
RATE = 24_000


def write_song(path: Path, artist_seed: int, track_seed: int, **tags: str) -> Path:
    """A 4 s, 24 kHz mono FLAC (tiny on purpose: tests stay fast)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = synth_track(
        artist_seed=artist_seed, track_seed=track_seed, seconds=SECONDS, sample_rate=RATE,
        channels=1,
    )  # fmt: skip
    return write_audio(path, audio, RATE, tags=tags or None)


class CountingEngine:
    """The tiny engine, counting the tracks it embeds (a moved file must not be re-embedded)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.embedded = 0

    def embed(self, audios: list[Any]) -> Any:
        self.embedded += len(audios)
        return self._engine.embed(audios)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def catalogue(store: Store) -> dict[str, int]:
    """Artist display name -> track count, as the store answers."""
    artists, _ = store.list_artists(limit=10_000)
    return {a.name: a.track_count for a in artists}


def paths(store: Store) -> dict[str, str]:
    """Stored location -> track id."""
    return {t.path: t.track_id for t in store.track_summaries() if t.path is not None}


def converge(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"did not converge: {what}"
        time.sleep(0.1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(data_dir=tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def make_library(
    store: Store, tiny_engine: Any
) -> Iterator[Callable[..., tuple[Library, CountingEngine]]]:
    started: list[Library] = []

    def make(*roots: Path, **options: Any) -> tuple[Library, CountingEngine]:
        engine = CountingEngine(tiny_engine)
        values: dict[str, Any] = {"debounce_seconds": 0.3, "workers": 1}
        values.update(options)
        library = Library(
            LibraryConfig(roots=roots, **values), store=lambda: store, engine=lambda: engine
        )
        library.start()
        started.append(library)
        return library, engine

    yield make
    for library in started:
        library.close()


def settled(library: Library) -> Callable[[], bool]:
    def check() -> bool:
        status = library.status()
        return status.state != "scanning" and status.queued == 0

    return check


def test_a_watched_folder_converges_through_every_kind_of_change(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "one.flac", 0, 0)
    write_song(root / "Ana Ruiz" / "two.flac", 0, 1)
    write_song(root / "Bo Lind" / "one.flac", 1, 0)
    library, engine = make_library(root)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 2, "Bo Lind": 1}, "the first scan")
    converge(settled(library), "idle after the scan")
    assert library.status().files_seen == 3
    assert library.status().state == "watching"
    assert engine.embedded == 3

    # A new artist folder.
    write_song(root / "Cy Moss" / "a.flac", 2, 0)
    write_song(root / "Cy Moss" / "b.flac", 2, 1)
    converge(lambda: catalogue(store).get("Cy Moss") == 2, "a new artist folder")

    # Renamed within its artist: same id, new location, not embedded again.
    before = paths(store)
    old_id = before[str(root / "Ana Ruiz" / "two.flac")]
    embedded = engine.embedded
    os.rename(root / "Ana Ruiz" / "two.flac", root / "Ana Ruiz" / "deux.flac")
    converge(
        lambda: paths(store).get(str(root / "Ana Ruiz" / "deux.flac")) == old_id,
        "a renamed file keeps its track",
    )
    converge(lambda: str(root / "Ana Ruiz" / "two.flac") not in paths(store), "old path gone")
    assert engine.embedded == embedded
    assert catalogue(store)["Ana Ruiz"] == 2

    # Moved to another artist's folder: a track of that artist now, its vector reused.
    old_vector = store.get_track(old_id, with_vector=True).vector  # type: ignore[union-attr]
    shutil.move(root / "Ana Ruiz" / "deux.flac", root / "Bo Lind" / "deux.flac")
    converge(
        lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 2, "Cy Moss": 2},
        "a file moved between artists",
    )
    moved_id = paths(store)[str(root / "Bo Lind" / "deux.flac")]
    assert moved_id != old_id and store.get_track(old_id) is None
    moved = store.get_track(moved_id, with_vector=True)
    assert moved is not None and moved.artist == "Bo Lind"
    np.testing.assert_allclose(moved.vector, old_vector, atol=1e-6)  # type: ignore[arg-type]
    assert engine.embedded == embedded

    # Retagged: the file's bytes change, so does its id; the old point is replaced.
    target = root / "Cy Moss" / "a.flac"
    old_tagged = paths(store)[str(target)]
    from mutagen.flac import FLAC

    tagged = FLAC(target)
    tagged["title"] = "A New Title"
    tagged.save()
    converge(
        lambda: (
            paths(store).get(str(target)) not in (None, old_tagged)
            and store.get_track(old_tagged) is None
        ),
        "a retagged file replaces its point",
    )
    assert store.get_track(paths(store)[str(target)]).title == "A New Title"  # type: ignore[union-attr]
    assert catalogue(store)["Cy Moss"] == 2

    # A file deleted, then a whole artist folder: the artist disappears.
    (root / "Cy Moss" / "b.flac").unlink()
    converge(lambda: catalogue(store).get("Cy Moss") == 1, "a deleted file")
    shutil.rmtree(root / "Cy Moss")
    converge(lambda: "Cy Moss" not in catalogue(store), "a deleted folder")
    assert store.get_artist("cy moss") is None

    # A corrupt file and a symlink leading out of the root: refused, reported, nothing stored.
    (root / "Ana Ruiz" / "broken.mp3").write_bytes(b"\x00not audio at all" * 100)
    outside = write_song(tmp_path / "elsewhere" / "secret.flac", 5, 5)
    (root / "Ana Ruiz" / "escape.flac").symlink_to(outside)

    def reported() -> bool:
        failures = {f["path"]: f["reason"] for f in library.status().failures}
        return str(root / "Ana Ruiz" / "broken.mp3") in failures and any(
            "outside the library roots" in reason for reason in failures.values()
        )

    converge(reported, "a corrupt file and an escaping symlink are reported")
    converge(settled(library), "idle")
    assert catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 2}
    assert not any("elsewhere" in p for p in paths(store))
    assert len(store.track_summaries()) == 3  # nothing duplicated along the way


def test_a_copied_album_arrives_as_one_batch(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "one.flac", 0, 0)
    library, _ = make_library(root)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1}, "the first scan")
    album = tmp_path / "staging"
    for i in range(12):
        write_song(album / f"{i:02d}.flac", 3, i)
    shutil.copytree(album, root / "Dee Vo" / "Album")
    converge(lambda: catalogue(store).get("Dee Vo") == 12, "a copied album")
    assert library.status().ingested == 13


def polled_library(
    make_library: Callable[..., tuple[Library, CountingEngine]], store: Store, song: Path
) -> Library:
    """A library of one song by Ana Ruiz at `song` (its root two folders up), not watched but
    rescanned every second, once its first scan has stored the song."""
    write_song(song, 0, 0)
    library, _ = make_library(song.parent.parent, watch=False, rescan_seconds=1.0)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1}, "the first scan")
    return library


def test_polling_finds_changes_without_events(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    library = polled_library(make_library, store, root / "Ana Ruiz" / "one.flac")
    converge(settled(library), "idle")
    assert library.status().state == "idle"
    write_song(root / "Bo Lind" / "one.flac", 1, 0)
    (root / "Ana Ruiz" / "one.flac").unlink()
    converge(lambda: catalogue(store) == {"Bo Lind": 1}, "the periodic rescan")


def test_two_roots_and_a_root_that_disappears_and_comes_back(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_song(first / "Ana Ruiz" / "a.flac", 0, 0)
    write_song(second / "Bo Lind" / "b.flac", 1, 0)
    library, engine = make_library(first, second)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 1}, "two roots")
    ids = paths(store)
    embedded = engine.embedded

    away = tmp_path / "unmounted"
    os.rename(second, away)
    converge(
        lambda: any("missing" in f["reason"] for f in library.status().failures),
        "a missing root is reported",
    )
    time.sleep(1.0)
    assert catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 1}  # its tracks are kept

    os.rename(away, second)
    write_song(second / "Bo Lind" / "c.flac", 1, 1)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 2}, "the root came back")
    converge(lambda: not library.status().failures, "the missing-root failure clears")
    assert {p: i for p, i in paths(store).items() if p in ids} == ids
    assert engine.embedded == embedded + 1


def test_excludes_symlinks_and_loops(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root, other_root = tmp_path / "music", tmp_path / "more"
    write_song(root / "Ana Ruiz" / "a.flac", 0, 0)
    write_song(root / "Ana Ruiz" / "a.part.flac", 0, 1)
    write_song(root / "Podcasts" / "Show" / "ep.flac", 2, 0)
    write_song(root / "Bo Lind" / "b.flac", 1, 0)
    write_song(other_root / "Cy Moss" / "c.flac", 2, 1)
    (root / "Bo Lind" / "loop").symlink_to(root / "Bo Lind")  # a loop
    (root / "Bo Again").symlink_to(root / "Bo Lind")  # a second link to a walked folder
    (root / "Cy").symlink_to(other_root / "Cy Moss")  # into another root: allowed
    library, _ = make_library(
        root, other_root, exclude=("Podcasts", "*.part.flac"), follow_symlinks=True
    )
    converge(
        lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 1, "Cy": 1, "Cy Moss": 1},
        "excluded files left out, symlinks inside the roots followed once",
    )
    converge(settled(library), "idle")
    stored = paths(store)
    assert not any("Podcasts" in p or ".part." in p for p in stored)
    assert str(root / "Cy" / "c.flac") in stored
    reasons = {f["path"]: f["reason"] for f in library.status().failures}
    assert "loop" in reasons[str(root / "Bo Lind" / "loop")], reasons
    assert "already walked" in reasons[str(root / "Bo Again")], reasons


def test_symlinks_are_not_followed_unless_asked(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "Bo Lind" / "b.flac", 1, 0)
    (root / "Linked").mkdir()
    (root / "Linked" / "Bo").symlink_to(root / "Bo Lind")
    library, _ = make_library(root)
    converge(lambda: catalogue(store) == {"Bo Lind": 1}, "the first scan")
    converge(settled(library), "idle")
    assert catalogue(store) == {"Bo Lind": 1}
    assert not library.status().failures


def test_artists_from_tags(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "mixed" / "a.flac", 0, 0, artist="Ana Ruiz", title="A")
    write_song(root / "mixed" / "b.flac", 1, 0, artist="Bo Lind", title="B")
    write_song(root / "mixed" / "untagged.flac", 2, 0)
    library, _ = make_library(root, artist_from="tags")
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 1}, "artists from tags")
    converge(
        lambda: any(f["reason"] == "no artist tag" for f in library.status().failures),
        "an untagged file is reported",
    )


def test_a_store_of_another_model_is_reported_not_overwritten(
    tmp_path: Path,
    store: Store,
    tiny_engine: Any,
    make_library: Callable[..., tuple[Library, CountingEngine]],
) -> None:
    from dataclasses import replace

    store.ensure_spec(replace(tiny_engine.spec, model="another/model"))
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "a.flac", 0, 0)
    library, _ = make_library(root)
    converge(
        lambda: any("cannot ingest" in f["reason"] for f in library.status().failures),
        "the refusal is reported",
    )
    reason = library.status().failures[0]["reason"]
    assert "another/model" in reason, reason
    assert catalogue(store) == {}
    assert store.spec().model == "another/model"  # type: ignore[union-attr]


def test_a_file_still_being_written_is_not_read_half_way(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "a.flac", 0, 0)
    library, _ = make_library(root, debounce_seconds=0.5)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1}, "the first scan")
    data = write_song(tmp_path / "staging" / "slow.flac", 1, 0).read_bytes()
    target = root / "Bo Lind" / "slow.flac"
    target.parent.mkdir()
    seen_failures: list[dict[str, str]] = []
    with open(target, "wb") as slow:  # a slow copy: a chunk every 0.15 s for ~1.5 s
        chunk = len(data) // 10 + 1
        for start in range(0, len(data), chunk):
            slow.write(data[start : start + chunk])
            slow.flush()
            seen_failures += library.status().failures
            time.sleep(0.15)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1, "Bo Lind": 1}, "the finished file")
    converge(settled(library), "idle")
    assert seen_failures == [] and library.status().failures == []


def test_an_empty_mount_point_keeps_its_tracks(
    tmp_path: Path, store: Store, make_library: Callable[..., tuple[Library, CountingEngine]]
) -> None:
    root = tmp_path / "nas"
    library = polled_library(make_library, store, root / "Ana Ruiz" / "a.flac")
    shutil.move(root / "Ana Ruiz", tmp_path / "Ana Ruiz")  # "unmounted": the folder is empty
    converge(
        lambda: any("empty" in f["reason"] for f in library.status().failures),
        "an empty root is reported",
    )
    assert catalogue(store) == {"Ana Ruiz": 1}
    shutil.move(tmp_path / "Ana Ruiz", root / "Ana Ruiz")
    converge(lambda: not library.status().failures, "mounted again")
    assert catalogue(store) == {"Ana Ruiz": 1}


@pytest.mark.skipif(sys.platform != "linux", reason="niceness is per thread on Linux only")
def test_the_library_thread_yields_the_cpu_and_the_rest_of_the_server_does_not() -> None:
    seen: dict[str, int] = {}

    def library_thread() -> None:
        assert lower_this_threads_priority()
        seen["library"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        # What the library starts (decoders, torch's workers) inherits it.
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen["decoder"] = int(child.stdout)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=library_thread)
    worker.start()
    worker.join()
    assert seen["library"] >= LIBRARY_NICENESS > before
    assert seen["decoder"] >= LIBRARY_NICENESS
    # The queries' threads keep their priority.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_a_running_library_bounds_how_long_a_query_waits_for_the_interpreter(
    make_library: Callable[..., tuple[Library, CountingEngine]], tmp_path: Path
) -> None:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default
    try:
        root = tmp_path / "music"
        root.mkdir()
        make_library(root)
        assert sys.getswitchinterval() <= LIBRARY_SWITCH_INTERVAL_S
    finally:
        sys.setswitchinterval(previous)


def test_the_index_is_rebuilt_once_enough_writes_accumulate_across_batches(
    tmp_path: Path,
    store: Store,
    make_library: Callable[..., tuple[Library, CountingEngine]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Qdrant Edge holds the interpreter while it builds an index (every query waits), so a
    small batch never optimizes; the writes of many small batches add up to one rebuild."""
    from soundalike.ingest.library import sync

    # Each batch writes one track and rewrites the lists of the artists so far (2, 3, 4 writes).
    monkeypatch.setattr(sync, "OPTIMIZE_AFTER_WRITES", 6)
    optimized: list[int] = []
    real = store.optimize

    def counting() -> None:
        optimized.append(store.writes_since_optimize())
        real()

    monkeypatch.setattr(store, "optimize", counting)
    root = tmp_path / "music"
    write_song(root / "Ana Ruiz" / "one.flac", 0, 0)
    library, _ = make_library(root)
    converge(lambda: catalogue(store) == {"Ana Ruiz": 1}, "the first scan")
    converge(settled(library), "idle")
    assert optimized == []  # a full first scan of a few writes: no rebuild
    write_song(root / "Bo Lind" / "one.flac", 1, 0)
    converge(lambda: catalogue(store).get("Bo Lind") == 1, "a second batch")
    converge(settled(library), "idle")
    assert optimized == []
    write_song(root / "Cy Moor" / "one.flac", 2, 0)
    converge(lambda: catalogue(store).get("Cy Moor") == 1, "a third batch")
    converge(lambda: bool(optimized), "a rebuild once six writes accumulated")
    assert len(optimized) == 1 and optimized[0] >= 6 and store.writes_since_optimize() == 0
