"""What every benchmark shares: the spec of its random vectors, the JSON document's header,
latency percentiles, and a `soundalike serve` subprocess that is stopped, children included,
however the benchmark ends.

The machine description, memory figures and isolated measurement processes belong to
`soundalike.api.bench` (the `soundalike bench` command, which the wheel carries); the benchmarks
import them from there."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.api.bench import machine
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.defaults import DEFAULT_EXCERPT, DEFAULT_LAYER, DEFAULT_WINDOW_SECONDS
from soundalike.ingest.devtools.checkpoint import MERT_V1_95M_CONFIG

BENCH_DIM = int(MERT_V1_95M_CONFIG["hidden_size"])
# Everything but the model name is what an ingest with the defaults writes, so the stores behave
# like real ones; the name marks the vectors as random so a bench store never passes for a
# catalogue.
BENCH_SPEC = EmbeddingSpec(
    model="soundalike-bench/random-vectors",
    revision=None,
    layer=DEFAULT_LAYER,
    window_seconds=DEFAULT_WINDOW_SECONDS,
    excerpt=DEFAULT_EXCERPT,
    pooling="mean",
    sample_rate=int(MERT_V1_95M_CONFIG["sample_rate"]),
    dim=BENCH_DIM,
)

PERCENTILES = (50, 90, 99)
# How much of a server's log a start-up failure quotes.
LOG_TAIL_CHARS = 3000


# --- the machine and the document ------------------------------------------------------------


def describe_machine(described: dict[str, Any]) -> str:
    """One line for a markdown report: "2 cores, AMD EPYC (family 25; avx2 avx512f), Python …"."""
    details = [f"family {described['cpu_family']}"] if described.get("cpu_family") else []
    if described.get("cpu_flags"):
        details.append(" ".join(described["cpu_flags"]))
    cpu = described["cpu"] + (f" ({'; '.join(details)})" if details else "")
    return f"{described['cores']} cores, {cpu}, Python {described['python']}"


def document_header(module: str, argv: Sequence[str]) -> dict[str, Any]:
    """When, where and how a run was made: the first keys of every benchmark's JSON document."""
    # Other processes on the cores change every figure: the load average says how much.
    load_average = " / ".join(f"{load:.2f}" for load in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average": load_average,
        "command": f"python -m {module} {' '.join(argv)}".strip(),
    }


def bench_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser for `python -m module` whose --help shows the module's docstring as written (its
    usage lines and what it measures)."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def int_list(text: str) -> list[int]:
    """An argparse `type`: a comma list of whole numbers (`64,128,256`)."""
    return [int(part) for part in text.split(",") if part]


def print_document(document: dict[str, Any], *, text: str | None = None) -> None:
    """Optional human-readable text, then the JSON document on the last line of stdout."""
    if text:
        print(text, flush=True)
    print(json.dumps(document), flush=True)


def log(line: str) -> None:
    """Progress: stderr, so stdout stays the report."""
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def work_dir(kept: Path | None, name: str) -> Iterator[Path]:
    """The folder a benchmark writes its data to: `kept` (created, left in place for a rerun or
    a look), or a temporary one removed afterwards."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"soundalike-{name}-bench-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- figures ---------------------------------------------------------------------------------


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99, mean and max of latencies in milliseconds (None for no samples)."""
    keys = [f"p{p}_ms" for p in PERCENTILES] + ["mean_ms", "max_ms"]
    if len(samples_ms) == 0:
        return dict.fromkeys(keys)
    samples = np.asarray(samples_ms, dtype=np.float64)
    values = [*np.percentile(samples, PERCENTILES), samples.mean(), samples.max()]
    return {key: round(float(value), 3) for key, value in zip(keys, values, strict=True)}


# --- a server in a subprocess ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(data_dir: Path, port: int, *flags: str) -> list[str]:
    """`soundalike serve` on loopback over the embedded store in `data_dir`, plus `flags`."""
    return [
        sys.executable,
        "-m",
        "soundalike.api.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *flags,
    ]


def environment_without_settings() -> dict[str, str]:
    """This environment minus SOUNDALIKE_* settings, so a benchmark server measures the
    defaults rather than whatever the shell it was started from configures."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Polls GET /readyz until it answers 200; fails early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s")


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the process's whole group, SIGKILL to whatever is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # Also after a clean exit: a worker the server failed to reap must not outlive the run.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def exit_on_sigterm() -> None:
    """Makes SIGTERM (`timeout`, `kill`) raise SystemExit in this process, so `finally` blocks
    and `running_server` still stop the servers a benchmark started."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    port: int,
    *,
    log_path: Path,
    ready_timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts `command` (a server on `port`), yields once /readyz answers 200, and stops it and
    every process it started on the way out, whether the block ended or raised."""
    with open(log_path, "ab") as server_log:
        # Its own session, so one signal to the group reaches uvicorn's workers as well.
        process = subprocess.Popen(
            list(command),
            stdout=server_log,
            stderr=server_log,
            env=environment_without_settings() if env is None else env,
            start_new_session=True,
        )
    try:
        try:
            wait_ready(port, process, ready_timeout_s)
        except RuntimeError as error:
            log_tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise RuntimeError(f"{error}; the end of {log_path}:\n{log_tail}") from None
        yield process
    finally:
        stop_process_group(process)
