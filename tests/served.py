"""Helpers of the tests that start `soundalike serve` as a real process: the process itself, a
free port, waiting for a condition, and whether the server answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def serve_process(
    env: dict[str, str], stop: signal.Signals = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    """`soundalike serve` in its own process group with `env`; at the end the group gets `stop`
    (SIGKILL after 30 s), so its decoder processes end with it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "soundalike.api.cli", "serve"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, stop)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def converge(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Polls `check` until it holds; fails the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"did not converge: {what}"
        time.sleep(0.1)


def answering(url: str) -> Callable[[], bool]:
    """Whether the server at `url` answers its liveness probe."""

    def check() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check
