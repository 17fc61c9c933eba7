"""The benchmarks' shared helpers: spec, machine description, percentiles, isolated processes,
and a server subprocess that never outlives its run (the machine description and isolated
processes are soundalike.api.bench's, which the benchmarks share with `soundalike bench`)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from benchmarks.common import (
    BENCH_SPEC,
    describe_machine,
    free_port,
    latency_summary,
    running_server,
)
from soundalike.api.bench import parse_cpu_description, run_isolated
from soundalike.ingest.excerpt import ExcerptPolicy

LSCPU = """\
Architecture:                            x86_64
Model name:                              Intel(R) Xeon(R) Platinum 8480+
CPU family:                              6
Flags:                                   fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
CPUINFO = """\
processor\t: 0
cpu family\t: 25
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx2
processor\t: 1
cpu family\t: 25
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx2
"""

# A server that answers /readyz and starts a worker which ignores SIGTERM, the way a stuck
# uvicorn worker would: only a SIGKILL to the whole group ends it.
SERVER_WITH_STUBBORN_WORKER = """\
import http.server, pathlib, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
pathlib.Path(sys.argv[2]).write_text(str(worker.pid))

class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
"""


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once `pid` no longer runs: no such process, or a zombie left for init to reap."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_the_bench_spec_is_one_an_ingest_with_the_defaults_would_write() -> None:
    assert ExcerptPolicy.parse(BENCH_SPEC.excerpt) == ExcerptPolicy("centre")
    assert (BENCH_SPEC.layer, BENCH_SPEC.window_seconds) == (11, 30.0)
    assert (BENCH_SPEC.sample_rate, BENCH_SPEC.dim, BENCH_SPEC.pooling) == (24000, 768, "mean")


def test_latency_summary_of_1_to_100_ms() -> None:
    assert latency_summary([float(ms) for ms in range(1, 101)]) == {
        "p50_ms": 50.5,
        "p90_ms": 90.1,
        "p99_ms": 99.01,
        "mean_ms": 50.5,
        "max_ms": 100.0,
    }
    assert set(latency_summary([]).values()) == {None}


def test_cpu_description_from_lscpu_names_the_model_family_and_the_flags_that_matter() -> None:
    assert parse_cpu_description(LSCPU) == {
        "cpu": "Intel(R) Xeon(R) Platinum 8480+",
        "cpu_family": "6",
        "cpu_flags": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"],
    }


def test_cpu_description_from_proc_cpuinfo_reads_the_first_core() -> None:
    assert parse_cpu_description(CPUINFO) == {
        "cpu": "AMD EPYC 7B13",
        "cpu_family": "25",
        "cpu_flags": ["avx2"],
    }
    described = parse_cpu_description(CPUINFO) | {"cores": 2, "python": "3.11.7"}
    assert describe_machine(described) == "2 cores, AMD EPYC 7B13 (family 25; avx2), Python 3.11.7"


def test_run_isolated_runs_in_another_process_and_reports_a_crash() -> None:
    assert run_isolated(os.getpid) != os.getpid()
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_isolated(os._exit, 3)


def test_running_server_stops_the_server_and_a_worker_that_ignores_sigterm(
    tmp_path: Path,
) -> None:
    script, worker_pid_file = tmp_path / "server.py", tmp_path / "worker.pid"
    script.write_text(SERVER_WITH_STUBBORN_WORKER)
    port = free_port()
    command = [sys.executable, str(script), str(port), str(worker_pid_file)]
    with running_server(command, port, log_path=tmp_path / "server.log", ready_timeout_s=60) as p:
        server_pid, worker_pid = p.pid, int(worker_pid_file.read_text())
        os.kill(worker_pid, signal.SIGTERM)  # ignored: the worker lives on
        time.sleep(0.2)
        assert not _gone(worker_pid, within_s=0.0)
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert _gone(worker_pid)


def test_running_server_stops_the_server_when_the_run_fails(tmp_path: Path) -> None:
    script, worker_pid_file = tmp_path / "server.py", tmp_path / "worker.pid"
    script.write_text(SERVER_WITH_STUBBORN_WORKER)
    port = free_port()
    command = [sys.executable, str(script), str(port), str(worker_pid_file)]
    with (
        pytest.raises(ValueError, match="the benchmark broke"),
        running_server(command, port, log_path=tmp_path / "server.log", ready_timeout_s=60) as p,
    ):
        server_pid = p.pid
        raise ValueError("the benchmark broke")
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert _gone(int(worker_pid_file.read_text()))


def test_a_server_that_exits_before_it_is_ready_is_reported(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with (
        pytest.raises(RuntimeError, match="exited with 3 before it was ready"),
        running_server(command, free_port(), log_path=tmp_path / "server.log"),
    ):
        pytest.fail("the block must not run")


@pytest.mark.parametrize("name", ["engine", "ingest", "store", "http"])
def test_each_benchmark_documents_its_one_command_in_help(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    assert f"python -m benchmarks.{name} [" in capsys.readouterr().out
