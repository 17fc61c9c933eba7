"""kill -9 at every phase of an ingest: the rerun completes it, nothing twice, nothing left alive.

The victim is the real CLI run by tests/api/kill_points.py, which wraps one product method so
that the run stops, deterministically, inside the phase under test and announces it in a marker
file: collection creation (between the two collections, and after both before their indexes and
spec), the embed loop (decode workers alive), the centroid recompute (some artists rewritten).
The test SIGKILLs it there, checks that no process of the killed run outlives it (its decode
workers die with it), then reruns the plain CLI and checks the store against the catalogue.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import WrittenTrack, write_catalogue
from soundalike.search.centroids import artist_centroid
from soundalike.search.schema import SPEC_METADATA_KEY, collection_names
from soundalike.search.store import open_store

HELPER = Path(__file__).with_name("kill_points.py")
ARTISTS = 8
TRACKS_PER_ARTIST = 2
TRACK_SECONDS = 4.0
# kill_points.py's numbers: embed calls before the pause, artists per centroid batch.
EMBED_CALLS_BEFORE_PAUSE = 5
CENTROID_BATCH = 2
MARKER_TIMEOUT_S = 120.0
# How long the killed run's processes may take to go (a worker polls its parent every 0.5 s
# where PR_SET_PDEATHSIG is missing).
DEATH_TIMEOUT_S = 5.0
WORKER_COMMAND_MARK = "serve_worker"
TRACKS_COLLECTION, ARTISTS_COLLECTION = collection_names("")


# --- processes ---------------------------------------------------------------------------

Process = tuple[int, int]  # (pid, start time in clock ticks): a pid that was reused is not it


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def alive(process: Process) -> bool:
    """Running (a zombie has ended: it only waits to be reaped by whoever adopted it)."""
    stat = _stat(process[0])
    return stat is not None and stat[2] == process[1] and stat[0] not in ("Z", "X")


def descendants(root: int) -> set[Process]:
    """Every live process below `root` (children, their children, ...)."""
    children: dict[int, list[Process]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append((pid, stat[2]))
    found: set[Process] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return {p for p in found if alive(p)}


def decode_workers_of(parent: int) -> set[Process]:
    """Live decode workers started for `parent` (ingest/decode_pool.py runs them as
    `python -P -c "...serve_worker()" <fd> <parent pid>`), wherever they were reparented."""
    found: set[Process] = set()
    for pid in _pids():
        command = _cmdline(pid)
        if any(WORKER_COMMAND_MARK in part for part in command) and command[-1:] == [str(parent)]:
            stat = _stat(pid)
            if stat is not None and alive((pid, stat[2])):
                found.add((pid, stat[2]))
    return found


def mentioning(text: str) -> set[Process]:
    """Live processes whose command line mentions `text` (a data dir)."""
    found: set[Process] = set()
    for pid in _pids():
        if any(text in part for part in _cmdline(pid)):
            stat = _stat(pid)
            if stat is not None and alive((pid, stat[2])):
                found.add((pid, stat[2]))
    return found


def kill_all(processes: set[Process]) -> None:
    """SIGKILLs those still alive (processes this test started, identified by start time)."""
    for process in processes:
        if alive(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process[0], signal.SIGKILL)


# --- the CLI -----------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soundalike.api.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def ingest_args(catalogue: Path, model_dir: Path, data_dir: Path, report: Path) -> list[str]:
    return [
        "ingest",
        str(catalogue),
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir),
        "--workers",
        "1",
        "--batch-size",
        "1",
        "--report",
        str(report),
        "--json",
    ]


@dataclass
class KilledRun:
    pid: int
    # Its child processes just before the kill (its decode workers, or none), by command line.
    children: dict[Process, str]
    report: Path


def kill_at(point: str, args: list[str], report: Path, work: Path) -> KilledRun:
    """Runs the CLI until it stops at `point`, SIGKILLs it there and waits until every
    process of that run is gone (failing when one outlives it by DEATH_TIMEOUT_S)."""
    marker = work / f"{point}.marker"
    errors = work / f"{point}.stderr"
    with errors.open("wb") as stderr:
        victim = subprocess.Popen(
            [sys.executable, str(HELPER), point, str(marker), "--", *args],
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    seen: set[Process] = set()
    try:
        deadline = time.monotonic() + MARKER_TIMEOUT_S
        while not marker.exists():
            if victim.poll() is not None:
                pytest.fail(
                    f"the run ended (exit {victim.returncode}) before reaching {point}:\n"
                    + errors.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the run did not reach {point} within {MARKER_TIMEOUT_S:g} s")
            time.sleep(0.05)
        assert marker.read_text().split() == [str(victim.pid), point]
        children = {
            p: " ".join(_cmdline(p[0]))
            for p in descendants(victim.pid) | decode_workers_of(victim.pid)
        }
        seen |= set(children)
        victim.kill()
        victim.wait(timeout=30)

        deadline = time.monotonic() + DEATH_TIMEOUT_S
        while True:
            left = {p for p in seen if alive(p)} | decode_workers_of(victim.pid)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not left, f"processes of the killed run outlived it: {sorted(left)}"
        return KilledRun(victim.pid, children, report)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(timeout=30)
        kill_all(seen | decode_workers_of(victim.pid))


# --- checks ------------------------------------------------------------------------------


def reported(report: Path, status: str) -> set[str]:
    if not report.exists():
        return set()
    lines = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    return {line["path"] for line in lines if line["status"] == status}


def assert_complete(
    data_dir: Path, tracks: list[WrittenTrack], summary: dict, durable_before: set[str]
) -> None:
    """The rerun's summary and the store agree with the catalogue: every track once, every
    artist with its track count and a centroid that is the normalised mean of its tracks."""
    assert summary["failed"] == [], summary
    assert summary["ingested"] + summary["skipped"] == len(tracks), summary
    # What the killed run reported as ingested survived the kill and was not embedded again.
    assert summary["skipped"] >= len(durable_before), summary

    expected_counts = Counter(t.artist for t in tracks)
    listing = run_cli("artists", "--data-dir", str(data_dir), "--json")
    assert listing.returncode == 0, listing.stderr
    listed = {a["artist"]: a["track_count"] for a in last_json(listing.stdout)["artists"]}
    assert listed == dict(expected_counts)

    with open_store(data_dir=data_dir) as store:
        assert store.count_tracks() == len(tracks)
        assert store.count_artists() == len(expected_counts)
        keys = store.artist_keys_in_tracks()
        assert len(keys) == len(expected_counts)
        stored_paths: list[str] = []
        for key in sorted(keys):
            artist_tracks = store.tracks_of_artist(key, with_vectors=True)
            stored_paths += [str(t.path) for t in artist_tracks]
            artist = store.get_artist(key, with_centroid=True)
            assert artist is not None, key
            assert artist.track_count == len(artist_tracks), key
            assert artist.centroid is not None, key
            vectors = np.array([t.vector for t in artist_tracks], dtype=np.float64)
            np.testing.assert_allclose(
                artist.centroid, artist_centroid(vectors), atol=1e-5, err_msg=key
            )
    # One point per file: no duplicate under another id.
    assert sorted(stored_paths) == sorted(str(t.path) for t in tracks)


def rerun(args: list[str]) -> dict:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[WrittenTrack]]:
    """8 artists x 2 tracks of 4 s WAV (read-only: tests that edit a file copy it first)."""
    root = tmp_path_factory.mktemp("kill-catalogue")
    tracks = write_catalogue(
        root,
        artists=ARTISTS,
        tracks_per_artist=TRACKS_PER_ARTIST,
        seconds=TRACK_SECONDS,
        formats=("wav",),
    )
    return root, tracks


@pytest.fixture
def nothing_left_behind(tmp_path: Path) -> Iterator[Path]:
    """The test's work dir; afterwards no live process may mention it (the data dir, the
    catalogue and the report all live under it)."""
    yield tmp_path
    deadline = time.monotonic() + DEATH_TIMEOUT_S
    while (left := mentioning(str(tmp_path))) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_all(left)
    assert not left, f"processes outlived the test: {sorted(left)}"


RunIn = tuple[Path, list[WrittenTrack], Path, Path, Path, list[str]]


@pytest.fixture
def run_in(
    written: tuple[Path, list[WrittenTrack]], tiny_mert_dir: Path, nothing_left_behind: Path
) -> RunIn:
    """(catalogue, its tracks, the work dir, the data dir, the report, the ingest's CLI args)."""
    catalogue, tracks = written
    work = nothing_left_behind
    data_dir, report = work / "data", work / "report.jsonl"
    return (
        catalogue,
        tracks,
        work,
        data_dir,
        report,
        ingest_args(catalogue, tiny_mert_dir, data_dir, report),
    )


# --- the phases --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("point", ["create-between", "create-after"])
def test_kill_during_collection_creation_then_rerun_is_complete(
    point: str,
    run_in: RunIn,
) -> None:
    catalogue, tracks, work, data_dir, report, args = run_in

    killed = kill_at(point, args, report, work)
    assert killed.children == {}, "no decoder runs while the collections are created"
    # The kill landed where it was meant to: the tracks collection is there, no spec yet.
    assert (data_dir / TRACKS_COLLECTION / "edge_config.json").exists()
    assert (data_dir / ARTISTS_COLLECTION / "edge_config.json").exists() == (
        point == "create-after"
    )
    assert not (data_dir / f"{TRACKS_COLLECTION}.meta.json").exists()

    summary = rerun(args)
    assert summary["ingested"] == len(tracks), summary
    assert_complete(data_dir, tracks, summary, durable_before=set())
    meta = json.loads((data_dir / f"{TRACKS_COLLECTION}.meta.json").read_text())
    assert SPEC_METADATA_KEY in meta


@pytest.mark.slow
def test_kill_during_embed_loop_kills_decoders_and_rerun_is_complete(
    run_in: RunIn,
) -> None:
    catalogue, tracks, work, data_dir, report, args = run_in

    killed = kill_at("embed", args, report, work)
    # The pool's worker was running when the kill came (kill_at saw it die with its parent).
    assert any(WORKER_COMMAND_MARK in command for command in killed.children.values()), (
        killed.children
    )
    durable = reported(report, "ingested")
    assert len(durable) < len(tracks)

    summary = rerun(args)
    assert_complete(data_dir, tracks, summary, durable_before=durable)


@pytest.mark.slow
def test_kill_during_centroid_recompute_then_rerun_is_complete(
    run_in: RunIn,
) -> None:
    catalogue, tracks, work, data_dir, report, args = run_in

    killed = kill_at("centroids", args, report, work)
    assert killed.children == {}, "the decode pool closed before the centroids"
    durable = reported(report, "ingested")
    assert len(durable) == len(tracks)
    with open_store(data_dir=data_dir) as store:
        # Killed between centroid batches: the first batch of artists is written, not the rest.
        assert store.count_tracks() == len(tracks)
        assert store.count_artists() == CENTROID_BATCH

    summary = rerun(args)
    assert summary["skipped"] == len(tracks), summary
    assert_complete(data_dir, tracks, summary, durable_before=durable)


@pytest.mark.slow
def test_kill_during_centroid_recompute_after_an_edit_then_rerun_fixes_the_centroid(
    tiny_mert_dir: Path, nothing_left_behind: Path
) -> None:
    """A file whose audio changed gets a new id; its old point is retired. Killed before the
    centroids are written, the artist keeps its track count but its centroid is of the old
    audio: the rerun (which has nothing to embed) must still recompute it."""
    work = nothing_left_behind
    catalogue = work / "catalogue"
    tracks = write_catalogue(
        catalogue, artists=3, tracks_per_artist=2, seconds=TRACK_SECONDS, formats=("wav",)
    )
    data_dir, report = work / "data", work / "report.jsonl"
    args = ingest_args(catalogue, tiny_mert_dir, data_dir, report)
    first = rerun(args)
    assert first["ingested"] == len(tracks), first

    # New audio for one track, same file and artist folder.
    other = write_catalogue(
        work / "other",
        artists=1,
        tracks_per_artist=1,
        seconds=TRACK_SECONDS,
        formats=("wav",),
        seed=7,
    )
    shutil.copyfile(other[0].path, tracks[0].path)
    killed = kill_at("centroids-start", args, report, work)
    assert killed.children == {}
    with open_store(data_dir=data_dir) as store:
        # The new point replaced the old one; no artist was rewritten yet.
        assert store.count_tracks() == len(tracks)
        assert len(store.tracks_at([str(tracks[0].path)])) == 1

    summary = rerun(args)
    assert summary["skipped"] == len(tracks), summary
    assert_complete(data_dir, tracks, summary, durable_before=set())
