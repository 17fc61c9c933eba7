"""A small pool of decoder processes for untrusted audio; the ingest and uploads both decode here.

Every file submitted resolves to `DecodedAudio` or an `AudioError` value: a bad file never
raises, whatever the decoder does with it.

- Any exception in a worker becomes that file's UndecodableAudio, naming the exception.
- A worker that dies (a codec segfault, `os._exit`) fails only the file it had: each worker holds
  one file at a time, so the pool knows which one. A fresh worker takes the next file.
- A decode that runs past `timeout_s` (wall time) is killed with its worker and reported.
- Workers die with their parent: Linux's PR_SET_PDEATHSIG, plus a thread watching getppid() where
  that is missing; a worker whose connection to the pool closes exits too.
- For untrusted input, each worker can get an address-space limit (RLIMIT_AS) and a CPU-time
  limit per file (RLIMIT_CPU, moved forward before each file), and the reader a budget of source
  audio to decode (`max_decoded_seconds`, see ingest/audio.py).
- At most `max_in_flight` files are queued or decoding: `submit` waits for room.

Workers are started as `python -c` running `serve_worker` rather than with multiprocessing's
spawn, which re-imports the caller's `__main__` (the CLI or the server: torch and the model code)
in every worker. A worker imports the decoder only (PyAV, numpy). For the same reason the job a
worker receives is a `DecodeJob` of plain fields, not the caller's `Decoding`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import pickle
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from soundalike.core.errors import AudioError, InvalidRequest, UndecodableAudio
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.excerpt import DecodedAudio, ExcerptPolicy
from soundalike.search.closing import Closing

if TYPE_CHECKING:
    from soundalike.ingest.engine import Decoding

__all__ = [
    "DecodeFunction",
    "DecodeJob",
    "DecodePool",
    "DecodeResult",
    "decode_job",
    "serve_worker",
]

log = logging.getLogger("soundalike.ingest")

DecodeResult: TypeAlias = DecodedAudio | AudioError
Item = TypeVar("Item")

# Seconds a fresh worker may take to import the decoder and answer; not part of a file's time.
WORKER_START_TIMEOUT_SECONDS = 60.0
# How often a worker checks that its parent is still alive where PR_SET_PDEATHSIG is missing.
PARENT_CHECK_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1
_WORKER_COMMAND = "from soundalike.ingest.decode_pool import serve_worker; serve_worker()"


@dataclass(frozen=True)
class DecodeJob:
    """One file to decode and how: the fields of a `Decoding`, plus the decode budget."""

    path: str
    sample_rate: int
    excerpt: ExcerptPolicy
    window_seconds: float
    min_duration_seconds: float
    silence_rms: float
    max_decoded_seconds: float | None = None

    @classmethod
    def of(
        cls,
        path: str | Path,
        decoding: Decoding,
        sample_rate: int,
        max_decoded_seconds: float | None = None,
    ) -> DecodeJob:
        return cls(
            path=str(path),
            sample_rate=sample_rate,
            excerpt=decoding.excerpt,
            window_seconds=decoding.window_seconds,
            min_duration_seconds=decoding.min_duration_seconds,
            silence_rms=decoding.silence_rms,
            max_decoded_seconds=max_decoded_seconds,
        )


def decode_job(job: DecodeJob) -> DecodedAudio:
    """The pool's decode function: the excerpt windows, or an AudioError subclass raised."""
    return decode_excerpt(
        job.path,
        policy=job.excerpt,
        sample_rate=job.sample_rate,
        window_seconds=job.window_seconds,
        min_duration_seconds=job.min_duration_seconds,
        silence_rms=job.silence_rms,
        max_decoded_seconds=job.max_decoded_seconds,
    )


# A module-level function (workers import it by name), e.g. a test's misbehaving decoder.
DecodeFunction = Callable[[DecodeJob], DecodedAudio]


@dataclass(frozen=True)
class _WorkerConfig:
    """What a worker is told once, when it starts."""

    decode: DecodeFunction
    memory_limit_mb: int | None
    cpu_limit_s: int | None


@dataclass(frozen=True)
class _SlotSettings:
    config: _WorkerConfig
    timeout_s: float
    start_timeout_s: float


@dataclass(frozen=True)
class _Queued:
    job: DecodeJob
    future: Future[DecodeResult]


class DecodePool(Closing):
    """Decoder processes; use as a context manager (or call `close`) so the workers stop.

    `workers` processes, each decoding one file at a time. `timeout_s`: wall time per file.
    `memory_limit_mb`: address space per worker (PyAV and numpy alone take ~250 MB).
    `cpu_limit_s`: CPU seconds per file. `max_decoded_seconds`: source audio the reader may
    decode per file. `max_in_flight` (default 2 per worker): files queued or decoding at once.
    `decode`: a module-level function run in the workers (tests inject misbehaving ones).
    """

    def __init__(
        self,
        workers: int,
        *,
        timeout_s: float,
        memory_limit_mb: int | None = None,
        cpu_limit_s: int | None = None,
        max_decoded_seconds: float | None = None,
        max_in_flight: int | None = None,
        decode: DecodeFunction = decode_job,
        start_timeout_s: float = WORKER_START_TIMEOUT_SECONDS,
    ) -> None:
        if workers < 1:
            raise InvalidRequest(f"a decode pool needs at least one worker, not {workers}")
        if not timeout_s > 0:
            raise InvalidRequest(f"timeout_s must be positive, not {timeout_s}")
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_decoded_seconds = max_decoded_seconds
        self.max_in_flight = max_in_flight if max_in_flight is not None else 2 * workers
        if self.max_in_flight < 1:
            raise InvalidRequest(f"max_in_flight must be at least 1, not {self.max_in_flight}")
        config = _WorkerConfig(decode, memory_limit_mb, cpu_limit_s)
        try:
            pickle.dumps(config)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise InvalidRequest(
                f"the decode function must be a module-level function workers can import: {error}"
            ) from error
        settings = _SlotSettings(
            config=config,
            timeout_s=timeout_s,
            start_timeout_s=start_timeout_s,
        )
        self._jobs: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(self.max_in_flight)
        self._closing = threading.Event()
        self._submit_lock = threading.Lock()
        self._slots = [_Slot(settings, self._jobs, self._closing) for _ in range(workers)]
        # Daemon threads: an unclosed pool must not keep the interpreter from exiting; the
        # finalizer (at garbage collection or exit) kills its workers.
        self._threads = [
            threading.Thread(target=slot.run, name=f"decode-pool-{i}", daemon=True)
            for i, slot in enumerate(self._slots)
        ]
        for thread in self._threads:
            thread.start()
        self._finalizer = weakref.finalize(self, _abandon, self._slots, self._jobs, self._closing)

    # --- submitting ----------------------------------------------------------------------

    def submit(
        self, path: str | Path, decoding: Decoding, sample_rate: int
    ) -> Future[DecodeResult]:
        """Queues one file (waits while `max_in_flight` files are queued or decoding)."""
        return self.submit_job(DecodeJob.of(path, decoding, sample_rate, self.max_decoded_seconds))

    def submit_job(self, job: DecodeJob) -> Future[DecodeResult]:
        self._room.acquire()
        future: Future[DecodeResult] = Future()
        future.add_done_callback(lambda _: self._room.release())
        with self._submit_lock:
            if self._closing.is_set():
                future.cancel()
                raise RuntimeError("the decode pool is closed")
            self._jobs.put(_Queued(job, future))
        return future

    def decode(self, path: str | Path, decoding: Decoding, sample_rate: int) -> DecodeResult:
        """One file, waiting for its result (blocking)."""
        return self.submit(path, decoding, sample_rate).result()

    def decode_many(
        self,
        items: Iterable[Item],
        open_file: Callable[[Item], AbstractContextManager[str | Path]],
        decoding: Decoding,
        sample_rate: int,
    ) -> Iterator[tuple[Item, DecodeResult]]:
        """(item, result) in completion order, with at most `max_in_flight` files ahead.

        `open_file(item)` gives the local file to decode as a context manager: entered when the
        file is submitted, exited when its result is in (a remote source's download lives that
        long). An AudioError raised on entering is that item's result."""
        pending: dict[Future[DecodeResult], tuple[Item, AbstractContextManager[str | Path]]] = {}
        upcoming = iter(items)
        more = True
        try:
            while True:
                while more and len(pending) < self.max_in_flight:
                    try:
                        item = next(upcoming)
                    except StopIteration:
                        more = False
                        break
                    opened = open_file(item)
                    try:
                        path = opened.__enter__()
                    except AudioError as error:
                        yield item, error
                        continue
                    try:
                        future = self.submit(path, decoding, sample_rate)
                    except BaseException:
                        opened.__exit__(None, None, None)
                        raise
                    pending[future] = (item, opened)
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    item, opened = pending.pop(future)
                    opened.__exit__(None, None, None)
                    yield item, future.result()
        finally:
            for future, (_, opened) in pending.items():
                future.cancel()
                opened.__exit__(None, None, None)

    # --- lifetime ------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [pid for slot in self._slots if (pid := slot.pid) is not None]

    def close(self) -> None:
        """Stops the workers: files still queued are cancelled, files being decoded get an
        AudioError saying the pool closed."""
        with self._submit_lock:
            self._finalizer.detach()
            _abandon(self._slots, self._jobs, self._closing)
        for thread in self._threads:
            thread.join(timeout=30)


def _abandon(
    slots: list[_Slot], jobs: queue.SimpleQueue[_Queued | None], closing: threading.Event
) -> None:
    """Cancels queued files, tells every slot thread to stop and kills busy workers."""
    closing.set()
    while True:
        try:
            queued = jobs.get_nowait()
        except queue.Empty:
            break
        if queued is not None:
            queued.future.cancel()
    for slot in slots:
        jobs.put(None)
        slot.interrupt()


class _WorkerGone(Exception):
    """A worker could not be started or answered nothing."""


class _Slot:
    """One worker process and the pool thread that feeds it, one file at a time.

    Only the slot's own thread starts its processes: PR_SET_PDEATHSIG fires when the *thread*
    that started a process ends, so a short-lived caller thread must never start one."""

    def __init__(
        self,
        settings: _SlotSettings,
        jobs: queue.SimpleQueue[_Queued | None],
        closing: threading.Event,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._closing = closing
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # the process handle is also read by close() and pids

    @property
    def pid(self) -> int | None:
        with self._lock:
            process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def run(self) -> None:
        try:
            try:
                self._connected()  # started before the first file: its start is not timed
            except _WorkerGone as error:
                log.warning("decode pool: a worker did not start: %s", error)
            while True:
                queued = self._jobs.get()
                if queued is None:
                    return
                if not queued.future.set_running_or_notify_cancel():
                    continue
                try:
                    result = self._decode(queued.job)
                except Exception as error:  # a bug here must not leave the caller waiting
                    log.exception("decode pool: unexpected failure on %s", queued.job.path)
                    self._kill()
                    result = UndecodableAudio(queued.job.path, f"the decode pool failed: {error}")
                queued.future.set_result(result)
        finally:
            self._stop()

    def _decode(self, job: DecodeJob) -> DecodeResult:
        if self._closing.is_set():
            return _pool_closed(job)
        try:
            connection = self._connected()
        except _WorkerGone as error:
            return UndecodableAudio(job.path, f"the decoder process could not start ({error})")
        try:
            connection.send(job)
            answered = connection.poll(self._settings.timeout_s)
        except OSError:
            answered = True  # the worker is gone: receiving says how
        if not answered:
            self._kill()
            log.warning("decode pool: killed a worker stuck on %s", job.path)
            return UndecodableAudio(
                job.path, f"decoding took longer than {self._settings.timeout_s:g} s"
            )
        try:
            result = connection.recv()
        except (EOFError, OSError):
            if self._closing.is_set():
                return _pool_closed(job)
            detail = self._death_detail()
            log.warning("decode pool: a worker died on %s: %s", job.path, detail)
            return UndecodableAudio(job.path, detail)
        if not isinstance(result, DecodedAudio | AudioError):
            self._kill()
            return UndecodableAudio(job.path, f"the decoder answered {type(result).__name__}")
        return result

    # --- the process ---------------------------------------------------------------------

    def _connected(self) -> Connection:
        """The running worker's connection, starting a fresh worker when there is none."""
        with self._lock:
            process, connection = self._process, self._connection
        if process is not None and connection is not None and process.poll() is None:
            return connection
        self._kill()
        if self._closing.is_set():
            raise _WorkerGone("the decode pool is closed")
        parent_end, child_end = socket.socketpair()
        try:
            with child_end:
                process = subprocess.Popen(
                    [sys.executable, "-P", "-c", _WORKER_COMMAND, str(child_end.fileno()),
                     str(os.getpid())],
                    pass_fds=(child_end.fileno(),),
                    stdin=subprocess.DEVNULL,
                    # Codec libraries may print; the caller's stdout can be a JSON report.
                    stdout=subprocess.DEVNULL,
                    env=_worker_environment(),
                )  # fmt: skip
        except OSError as error:
            parent_end.close()
            raise _WorkerGone(f"the decoder process could not be started: {error}") from error
        connection = Connection(parent_end.detach())
        with self._lock:
            self._process, self._connection = process, connection
        if self._closing.is_set():  # close() ran while this process started
            self._kill()
            raise _WorkerGone("the decode pool is closed")
        try:
            connection.send(self._settings.config)
            if not connection.poll(self._settings.start_timeout_s):
                raise _WorkerGone(f"no answer within {self._settings.start_timeout_s:g} s")
            connection.recv()
        except (EOFError, OSError) as error:
            detail = self._death_detail()
            raise _WorkerGone(detail) from error
        except _WorkerGone:
            self._kill()
            raise
        except Exception as error:  # e.g. an answer that does not unpickle
            self._kill()
            raise _WorkerGone(f"it answered {error!r}") from error
        return connection

    def _death_detail(self) -> str:
        """Why the worker ended, once it has (it is killed if it has not)."""
        with self._lock:
            process = self._process
        if process is None:
            return "the decoder process ended"
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            return "the decoder process stopped answering"
        self._kill()
        cpu_limit = self._settings.config.cpu_limit_s
        if code == -signal.SIGXCPU and cpu_limit is not None:
            return f"decoding used more than {cpu_limit} s of CPU time"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the decoder process crashed (killed by {name})"
        return f"the decoder process crashed (exit code {code})"

    def interrupt(self) -> None:
        """Kills a busy worker at once (called from outside the slot's thread by close())."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def _detach(self) -> subprocess.Popen[bytes] | None:
        """Forgets the worker and closes its connection; returns its process to end."""
        with self._lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if connection is not None:
            connection.close()
        return process

    def _kill(self) -> None:
        process = self._detach()
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def _stop(self) -> None:
        """Ends the worker: a closed connection makes an idle worker exit by itself."""
        process = self._detach()
        if process is not None:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _pool_closed(job: DecodeJob) -> UndecodableAudio:
    return UndecodableAudio(job.path, "not decoded: the decode pool was closed")


def _worker_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # glibc reserves 64 MB of address space per thread arena; FFmpeg's decoding threads would
    # spend an address-space limit on reservations instead of data.
    environment.setdefault("MALLOC_ARENA_MAX", "2")
    return environment


# --- the worker process ----------------------------------------------------------------------


def serve_worker() -> None:
    """A worker's main: `python -c ... <connection fd> <parent pid>`. Decodes jobs until its
    connection closes; every outcome goes back as a value."""
    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group; the pool decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A codec crashing on hostile input must not leave core dumps behind.
    _set_soft_limit(resource.RLIMIT_CORE, 0)
    connection = Connection(fd)
    try:
        config: _WorkerConfig = connection.recv()
    except EOFError:
        return
    if config.memory_limit_mb is not None:
        _set_soft_limit(resource.RLIMIT_AS, config.memory_limit_mb * 1024 * 1024, hard=True)
    connection.send(("ready", os.getpid()))
    while True:
        try:
            job: DecodeJob = connection.recv()
        except (EOFError, OSError):
            return  # the pool closed or its process died
        if config.cpu_limit_s is not None:
            _limit_cpu_from_now(config.cpu_limit_s)
        result = _decode_guarded(config, job)
        try:
            connection.send(result)
        except (EOFError, OSError):
            return
        except Exception as error:  # the result would not pickle: nothing was sent yet
            connection.send(
                UndecodableAudio(job.path, f"the decoded audio could not be returned: {error}")
            )


def _decode_guarded(config: _WorkerConfig, job: DecodeJob) -> DecodeResult:
    try:
        return config.decode(job)
    except AudioError as error:
        return error
    except MemoryError:
        if config.memory_limit_mb is None:
            return UndecodableAudio(job.path, "decoding ran out of memory")
        return UndecodableAudio(
            job.path, f"decoding needed more than the memory limit of {config.memory_limit_mb} MB"
        )
    except Exception as error:
        return UndecodableAudio(job.path, f"the decoder failed: {type(error).__name__}: {error}")


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def _set_soft_limit(which: int, value: int, *, hard: bool = False) -> None:
    """Lowers a resource limit (never above the hard limit; `hard` lowers that too)."""
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        value = min(value, current_hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (value, value if hard else current_hard))


def _limit_cpu_from_now(seconds: int) -> None:
    """RLIMIT_CPU counts the process's whole life: move the soft limit to `seconds` from now.
    Past it the kernel sends SIGXCPU, whose default action ends the process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _set_soft_limit(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime) + seconds)
