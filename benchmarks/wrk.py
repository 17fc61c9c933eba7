"""The load generator side of the HTTP benchmark: Debian's `wrk` driven with a Lua script that
picks a random path per request, its report parsed, and the CPU placement that keeps the load
generator off the core the measured server runs on."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Seconds a wrk connection waits for one answer before counting a timeout (the local mode's
# brute-force searches take seconds).
WRK_TIMEOUT_S = 30

# Each request GETs a random line of the paths file (args[1]); args[2] seeds the choice.
WRK_SCRIPT = """-- Written by benchmarks.http: a random path of a file per request.
local paths = {}

init = function(args)
  for line in io.lines(args[1]) do
    if line ~= "" then paths[#paths + 1] = line end
  end
  if #paths == 0 then error("no paths in " .. args[1]) end
  math.randomseed(tonumber(args[2]) or 1)
end

request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return round(float(value) * _UNIT_MS[unit], 3)


def write_wrk_files(directory: Path, name: str, paths: Sequence[str]) -> tuple[Path, Path]:
    """The Lua script (one for every route) and `name`'s paths file, one path a line."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "random-path.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    paths_file = directory / f"{name}.paths"
    paths_file.write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
    return script, paths_file


def wrk_command(
    port: int,
    script: Path,
    paths_file: Path,
    *,
    connections: int,
    seconds: float,
    seed: int = 1,
    wrk: str = "wrk",
) -> list[str]:
    """One wrk thread (enough for tens of thousands of requests/s on one core), `connections`
    keep-alive connections, the latency histogram on."""
    return [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{WRK_TIMEOUT_S}s",
        "--latency",
        "--script",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths_file),
        str(seed),
    ]


def parse_wrk_output(text: str) -> dict[str, Any]:
    """Requests, seconds, throughput, failures and latency (mean, max, p50/p75/p90/p99 in ms)
    from wrk's report with `--latency`. Failures: non-2xx/3xx answers plus socket errors."""
    done = re.search(r"(\d+) requests in " + _DURATION, text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if done is None or rate is None:
        raise ValueError(f"not a wrk report:\n{text[-2000:]}")
    stats = re.search(r"Latency\s+" + _DURATION + r"\s+\S+\s+" + _DURATION, text)
    figures: dict[str, Any] = {
        "requests": int(done.group(1)),
        "seconds": round(_ms(done.group(2), done.group(3)) / 1000, 2),
        "throughput_rps": round(float(rate.group(1)), 1),
        "failures": 0,
    }
    for percent, value, unit in re.findall(r"^\s*(\d+)%\s+" + _DURATION, text, re.MULTILINE):
        figures[f"p{percent}_ms"] = _ms(value, unit)
    figures["mean_ms"] = _ms(*stats.groups()[:2]) if stats else None
    figures["max_ms"] = _ms(*stats.groups()[2:]) if stats else None
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        figures["failures"] += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        figures["failures"] += sum(int(n) for n in sockets.groups())
        figures["socket_errors"] = sockets.group(0)
    return figures


def drive_wrk(
    port: int,
    route: str,
    paths: Sequence[str],
    *,
    connections: int,
    seconds: float,
    warmup_seconds: float,
    directory: Path,
    wrk: str = "wrk",
) -> dict[str, Any]:
    """`route` under wrk for `seconds` (after an unmeasured `warmup_seconds` run)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", route).strip("-").lower()
    script, paths_file = write_wrk_files(directory, name, paths)
    first_failure = probe(port, paths[0])
    if warmup_seconds > 0:
        _run_wrk(
            wrk_command(
                port, script, paths_file, connections=connections, seconds=warmup_seconds, wrk=wrk
            )
        )
    text = _run_wrk(
        wrk_command(port, script, paths_file, connections=connections, seconds=seconds, wrk=wrk)
    )
    figures = parse_wrk_output(text)
    if first_failure is None and figures["failures"]:
        first_failure = f"{figures['failures']} failed requests (wrk does not say which)"
    return {"route": route} | figures | {"first_failure": first_failure}


def _run_wrk(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def probe(port: int, path: str) -> str | None:
    """One request before a run: wrk counts failures but cannot say what they were."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WRK_TIMEOUT_S)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        return f"0 {path}: {error}"
    finally:
        connection.close()
    return None if response.status == 200 else f"{response.status} {path}: {body[:200]!r}"


# --- where the server and the client run -----------------------------------------------------


@dataclass
class Placement:
    """The CPUs the server and the load generator may use, and what that means."""

    server_cpus: list[int]
    client_cpus: list[int]

    @classmethod
    def split(cls, cpus: Sequence[int]) -> Placement:
        """The last usable CPU for the client, the others for the server; one CPU: shared."""
        ordered = sorted(cpus)
        if len(ordered) < 2:
            return cls(ordered, ordered)
        return cls(ordered[:-1], ordered[-1:])

    @property
    def shared(self) -> bool:
        return bool(set(self.server_cpus) & set(self.client_cpus))

    def describe(self) -> str:
        if self.shared:
            return f"server and load generator share CPU(s) {_cpus(self.server_cpus)}"
        return (
            f"server pinned to CPU(s) {_cpus(self.server_cpus)}, load generator to CPU(s) "
            f"{_cpus(self.client_cpus)} (the server has {len(self.server_cpus)} of the "
            f"{len(self.server_cpus) + len(self.client_cpus)} cores; the kernel and other "
            "processes still run anywhere)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "server_cpus": self.server_cpus,
            "client_cpus": self.client_cpus,
            "description": self.describe(),
        }


def _cpus(cpus: Sequence[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


@contextlib.contextmanager
def pinned(cpus: Sequence[int]) -> Iterator[None]:
    """This process (and what it starts meanwhile: servers, wrk) on `cpus`, then as before."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
