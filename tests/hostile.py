"""Hostile input for tests: audio files that break naive decoders, and a decode function that
misbehaves on request (hangs, crashes its process, raises, hogs memory or CPU).

`misbehaving_decode` is a module-level function so that the decode pool can ship it to its
worker processes; it picks its misbehaviour from a marker in the file's name. A worker is a fresh
`python -c` process that imports this module by its name, `hostile`: a pool given
`misbehaving_decode` must be started inside `importable_by_workers()`.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.decode_pool import DecodeJob, decode_job
from soundalike.ingest.excerpt import DecodedAudio

# tests/, where this module is: pytest puts it on the tests' sys.path, not on a child's.
TESTS_DIR = Path(__file__).resolve().parent

# Markers in a file name that `misbehaving_decode` acts on.
HANG = "hang-forever"
SEGFAULT = "segfault"
EXIT = "exit-abruptly"
RAISE = "raise-runtime-error"
HOG_MEMORY = "hog-memory"
SPIN = "spin-cpu"

_WAVE_FORMAT_IEEE_FLOAT = 3


def write_float_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """(channels, n) samples as a 32-bit IEEE-float WAV, values as given: NaN, Inf and values
    far outside -1..1 included (encoders through a resampler would clip or reject them)."""
    data = np.asarray(samples, dtype="<f4")
    if data.ndim == 1:
        data = data[np.newaxis, :]
    channels = data.shape[0]
    payload = np.ascontiguousarray(data.T).tobytes()
    block_align = 4 * channels
    fmt = struct.pack(
        "<HHIIHH",
        _WAVE_FORMAT_IEEE_FLOAT,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        32,
    )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def write_hls_playlist(path: str | Path, segment: str | Path) -> Path:
    """An HLS media playlist whose one segment is a local file: FFmpeg's hls demuxer opens it."""
    path = Path(path)
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:9.0,\n{Path(segment).resolve()}\n#EXT-X-ENDLIST\n"
    )
    return path


@contextmanager
def watch_opens(path: str | Path) -> Iterator[list[float]]:
    """Makes `path` a named pipe and records (monotonic times) whenever something opens it to
    read, for as long as the context lasts: proof that a file named in hostile data was, or was
    never, opened. An opener gets end-of-file at once, so it cannot hang on the pipe."""
    path = Path(path)
    os.mkfifo(path)
    opened: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                # Opening a pipe's write end without blocking succeeds only while a reader has it
                # open; closing it at once gives that reader end-of-file.
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as error:
                if error.errno != errno.ENXIO:
                    raise
                time.sleep(0.002)
                continue
            opened.append(time.monotonic())

    watcher = threading.Thread(target=watch, name="watch-opens", daemon=True)
    watcher.start()
    try:
        yield opened
    finally:
        stop.set()
        watcher.join(timeout=5)
        path.unlink(missing_ok=True)


@contextmanager
def importable_by_workers() -> Iterator[None]:
    """tests/ in front of PYTHONPATH while the block lasts, so the processes started in it (a
    decode pool's workers, which unpickle `misbehaving_decode` by its module's name, and any
    `python -c` script of a test) can import this module; PYTHONPATH as it was afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        inherited = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), inherited])))
        yield


def misbehaving_decode(job: DecodeJob) -> DecodedAudio:
    """Decodes like the pool's default, unless the file's name or its first bytes carry a marker
    (an upload's temporary file does not keep the client's name)."""
    name = Path(job.path).name
    try:
        with open(job.path, "rb") as handle:
            name += handle.read(64).decode("latin-1")
    except OSError:
        pass
    if HANG in name:
        while True:  # a codec stuck in a loop: only killing the process ends it
            time.sleep(3600)
    if SEGFAULT in name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if EXIT in name:
        os._exit(3)
    if RAISE in name:
        raise RuntimeError(f"the codec library blew up on {name}")
    if HOG_MEMORY in name:
        # Reserved, never touched: without an address-space limit this costs nothing.
        hoard = np.empty(32 * 1024**3, dtype=np.uint8)
        raise AssertionError(f"reserved {hoard.nbytes} bytes: no memory limit applies")
    if SPIN in name:
        while True:
            pass
    return decode_job(job)
