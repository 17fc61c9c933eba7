"""The decode pool: files in, DecodedAudio or an AudioError out, whatever the decoder does."""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import hostile
import numpy as np
import pytest
from hostile import misbehaving_decode, write_float_wav

from soundalike.core.errors import AudioError, InvalidRequest, UndecodableAudio
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.decode_pool import DecodeJob, DecodePool
from soundalike.ingest.engine import Decoding
from soundalike.ingest.excerpt import DecodedAudio, ExcerptPolicy

RATE = 24000
DECODING = Decoding()
TIMEOUT_S = 4.0


@pytest.fixture(scope="module", autouse=True)
def _workers_import_hostile() -> Iterator[None]:
    """Every pool here may get `misbehaving_decode`, and the orphan test's parent imports it:
    the processes this module starts must find tests/hostile.py. Autouse at module scope, so it
    is in place before `hostile_pool` starts its workers."""
    with hostile.importable_by_workers():
        yield


@pytest.fixture(scope="module")
def hostile_pool() -> Iterator[DecodePool]:
    """One pool for the misbehaviour tests: each test also checks that it survived the last."""
    with DecodePool(2, timeout_s=TIMEOUT_S, decode=misbehaving_decode) as pool:
        yield pool


@pytest.fixture(scope="module")
def song(make_audio: Callable[..., Path]) -> Path:
    return make_audio("pool_song.flac", 12.0, 44100)


def _marked(song: Path, folder: Path, marker: str) -> Path:
    """A copy of a good song whose name makes `misbehaving_decode` misbehave."""
    path = folder / f"{marker}.flac"
    path.write_bytes(song.read_bytes())
    return path


def _assert_decodes(pool: DecodePool, song: Path) -> None:
    result = pool.decode(song, DECODING, RATE)
    assert isinstance(result, DecodedAudio), result
    expected = decode_excerpt(song, policy=DECODING.excerpt)
    np.testing.assert_array_equal(result.windows[0], expected.windows[0])


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_pool_decodes_like_the_reader_and_reports_bad_files(
    song: Path, tmp_path: Path, make_audio: Callable[..., Path]
) -> None:
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(3).integers(0, 256, 40_000, np.uint8).tobytes())
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    poisoned = _music_with(tmp_path / "nan.wav", math.nan)
    other = make_audio("pool_other.ogg", 8.0, 48000)
    with DecodePool(2, timeout_s=30) as pool:
        futures = {p: pool.submit(p, DECODING, RATE) for p in (song, noise, empty, poisoned, other)}
        results = {p: f.result(timeout=60) for p, f in futures.items()}
        pids = pool.worker_pids()
        assert len(pids) == 2
    assert all(not _alive(pid) for pid in pids), "close() left workers behind"
    assert isinstance(results[song], DecodedAudio) and isinstance(results[other], DecodedAudio)
    np.testing.assert_array_equal(
        results[song].windows[0], decode_excerpt(song, policy=DECODING.excerpt).windows[0]
    )
    for bad in (noise, empty, poisoned):
        assert isinstance(results[bad], UndecodableAudio), results[bad]
        assert results[bad].path == str(bad)
    assert "non-finite samples (NaN/Inf)" in results[poisoned].detail


def _music_with(path: Path, bad_value: float) -> Path:
    t = np.arange(10 * 44100) / 44100
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[np.newaxis]
    samples[0, 5 * 44100] = bad_value
    return write_float_wav(path, samples, 44100)


def test_any_exception_in_the_decoder_is_that_files_audio_error(
    hostile_pool: DecodePool, song: Path, tmp_path: Path
) -> None:
    result = hostile_pool.decode(_marked(song, tmp_path, hostile.RAISE), DECODING, RATE)
    assert isinstance(result, UndecodableAudio)
    assert "RuntimeError: the codec library blew up" in result.detail
    _assert_decodes(hostile_pool, song)


@pytest.mark.parametrize(
    ("marker", "said"),
    [
        (hostile.SEGFAULT, "the decoder process crashed (killed by SIGSEGV)"),
        (hostile.EXIT, "the decoder process crashed (exit code 3)"),
    ],
)
def test_a_crashing_worker_fails_only_its_file(
    hostile_pool: DecodePool, song: Path, tmp_path: Path, marker: str, said: str
) -> None:
    crashing = _marked(song, tmp_path, marker)
    futures = [hostile_pool.submit(p, DECODING, RATE) for p in (song, crashing, song, song)]
    results = [f.result(timeout=60) for f in futures]
    assert isinstance(results[1], AudioError) and results[1].detail == said
    assert results[1].path == str(crashing)
    assert all(isinstance(r, DecodedAudio) for i, r in enumerate(results) if i != 1)
    assert len(hostile_pool.worker_pids()) == 2
    _assert_decodes(hostile_pool, song)


def test_a_hung_decode_is_killed_after_the_timeout_and_the_pool_goes_on(
    hostile_pool: DecodePool, song: Path, tmp_path: Path
) -> None:
    hung = _marked(song, tmp_path, hostile.HANG)
    started = time.monotonic()
    stuck = hostile_pool.submit(hung, DECODING, RATE)
    time.sleep(0.5)
    stuck_pids = set(hostile_pool.worker_pids())
    # The other worker keeps decoding while one is stuck.
    others = [hostile_pool.submit(song, DECODING, RATE) for _ in range(3)]
    assert all(isinstance(f.result(timeout=TIMEOUT_S), DecodedAudio) for f in others)
    assert not stuck.done()
    result = stuck.result(timeout=TIMEOUT_S + 30)
    elapsed = time.monotonic() - started
    assert isinstance(result, UndecodableAudio)
    assert result.detail == f"decoding took longer than {TIMEOUT_S:g} s"
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 10
    killed = stuck_pids - set(hostile_pool.worker_pids())
    assert len(killed) == 1 and not _alive(killed.pop())
    _assert_decodes(hostile_pool, song)
    _assert_decodes(hostile_pool, song)


def test_memory_and_cpu_limits_end_a_runaway_decode(song: Path, tmp_path: Path) -> None:
    hog = _marked(song, tmp_path, hostile.HOG_MEMORY)
    spin = _marked(song, tmp_path, hostile.SPIN)
    with DecodePool(
        1, timeout_s=60, memory_limit_mb=1024, cpu_limit_s=1, decode=misbehaving_decode
    ) as pool:
        hogged = pool.decode(hog, DECODING, RATE)
        started = time.monotonic()
        spun = pool.decode(spin, DECODING, RATE)
        spun_seconds = time.monotonic() - started
        _assert_decodes(pool, song)  # a real decode fits the limits
    assert isinstance(hogged, UndecodableAudio)
    assert hogged.detail == "decoding needed more than the memory limit of 1024 MB"
    assert isinstance(spun, UndecodableAudio)
    assert spun.detail == "decoding used more than 1 s of CPU time"
    assert spun_seconds < 30  # the CPU limit ended it, not the 60 s wall-time limit


def test_decode_budget_applies_in_the_workers(make_audio: Callable[..., Path]) -> None:
    long_mka = make_audio("pool_long.mka", 100.0, 44100, channels=1)
    with DecodePool(1, timeout_s=60, max_decoded_seconds=40.0) as pool:
        result = pool.decode(long_mka, DECODING, RATE)
    assert isinstance(result, UndecodableAudio)
    assert "more than 40 s of audio decoded" in result.detail


def test_submit_waits_while_the_pool_is_full(song: Path, tmp_path: Path) -> None:
    hung = _marked(song, tmp_path, hostile.HANG)
    with DecodePool(1, timeout_s=2.0, max_in_flight=2, decode=misbehaving_decode) as pool:
        first = pool.submit(hung, DECODING, RATE)
        pool.submit(hung, DECODING, RATE)
        third_submitted = threading.Event()

        def submit_third() -> None:
            pool.submit(song, DECODING, RATE)
            third_submitted.set()

        submitter = threading.Thread(target=submit_third)
        submitter.start()
        assert not third_submitted.wait(1.0), "a third file was queued past max_in_flight"
        first.result(timeout=30)
        assert third_submitted.wait(10)
        submitter.join(10)


def test_decode_many_yields_every_item_with_bounded_look_ahead(
    hostile_pool: DecodePool, song: Path, tmp_path: Path
) -> None:
    names = ["a", hostile.RAISE, "b", "missing", "c", "d", "e"]
    paths = {name: _marked(song, tmp_path, name) for name in names}
    paths["missing"].unlink()
    open_now: list[str] = []
    most_open = 0
    closed: list[str] = []

    @contextmanager
    def open_file(name: str) -> Iterator[Path]:
        nonlocal most_open
        if name == "d":
            raise UndecodableAudio(name, "the download failed")
        open_now.append(name)
        most_open = max(most_open, len(open_now))
        try:
            yield paths[name]
        finally:
            open_now.remove(name)
            closed.append(name)

    results = dict(hostile_pool.decode_many(names, open_file, DECODING, RATE))
    assert set(results) == set(names)
    assert {n for n, r in results.items() if isinstance(r, DecodedAudio)} == {"a", "b", "c", "e"}
    assert "RuntimeError" in results[hostile.RAISE].detail  # type: ignore[union-attr]
    assert results["d"].detail == "the download failed"  # type: ignore[union-attr]
    assert "no such file" in results["missing"].detail  # type: ignore[union-attr]
    assert open_now == [] and sorted(closed) == sorted(set(names) - {"d"})
    assert most_open <= hostile_pool.max_in_flight


def test_closing_cancels_queued_files_and_stops_busy_workers(song: Path, tmp_path: Path) -> None:
    hung = _marked(song, tmp_path, hostile.HANG)
    pool = DecodePool(1, timeout_s=120, max_in_flight=3, decode=misbehaving_decode)
    busy = pool.submit(hung, DECODING, RATE)
    queued = pool.submit(song, DECODING, RATE)
    time.sleep(1.0)
    pids = pool.worker_pids()
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 10
    assert queued.cancelled()
    result = busy.result(timeout=5)
    assert isinstance(result, UndecodableAudio) and "decode pool was closed" in result.detail
    assert pids and not any(_alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(song, DECODING, RATE)


_ORPHAN_PARENT = textwrap.dedent(
    """
    import sys, time
    from soundalike.ingest.excerpt import ExcerptPolicy
    from soundalike.ingest.decode_pool import DecodeJob, DecodePool
    from hostile import misbehaving_decode

    pool = DecodePool(2, timeout_s=600, decode=misbehaving_decode)
    job = DecodeJob(sys.argv[1], 24000, ExcerptPolicy(), 30.0, 3.0, 1e-3)
    pool.submit_job(job)
    while len(pool.worker_pids()) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # the job has reached a worker
    print(" ".join(map(str, pool.worker_pids())), flush=True)
    time.sleep(600)
    """
)


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    hung = tmp_path / f"{hostile.HANG}.flac"
    hung.write_bytes(b"")
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_PARENT, str(hung)], stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, "the parent never reported its workers"
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids), "workers outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_jobs_carry_the_decoding_and_the_budget() -> None:
    decoding = Decoding(excerpt=ExcerptPolicy("windows", 3), window_seconds=10.0)
    job = DecodeJob.of("x.wav", decoding, 16000, max_decoded_seconds=90.0)
    assert job == DecodeJob(
        path="x.wav",
        sample_rate=16000,
        excerpt=ExcerptPolicy("windows", 3),
        window_seconds=10.0,
        min_duration_seconds=decoding.min_duration_seconds,
        silence_rms=decoding.silence_rms,
        max_decoded_seconds=90.0,
    )


def test_a_decode_function_workers_cannot_import_is_refused_at_once() -> None:
    with pytest.raises(InvalidRequest, match="module-level function"):
        DecodePool(1, timeout_s=5, decode=lambda job: decode_excerpt(job.path, policy=job.excerpt))
