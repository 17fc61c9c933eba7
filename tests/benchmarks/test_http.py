"""The HTTP benchmark: a tiny run with the in-process driver (both servers answer every route,
nothing fails, the markdown section is appended to --record), and the wrk driver's parts that
need no wrk binary: the Lua script and paths file it writes, the command, the parsing of wrk's
report, where server and client are placed, and the target checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.http import (
    HEALTHZ,
    LIVE,
    SIMILAR,
    compare,
    main,
)
from benchmarks.http_catalogue import bench_track_ids, fill_store
from benchmarks.wrk import (
    WRK_SCRIPT,
    Placement,
    parse_wrk_output,
    pinned,
    write_wrk_files,
    wrk_command,
)
from soundalike.search.store import open_store

# wrk 4.1's report for `--latency` with failures of both kinds (canned: no wrk needed).
WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:8791
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.37ms    1.02ms  1.20s    84.16%
    Req/Sec     1.84k   101.53     2.01k    77.00%
  Latency Distribution
     50%  850.00us
     75%    4.61ms
     90%    5.50ms
     99%    1.02s
  18345 requests in 10.01s, 15.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1832.61
Transfer/sec:      1.50MB
"""


@pytest.mark.slow
def test_a_tiny_run_serves_both_backends_without_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "bench.md"
    argv = ["--artists", "300", "--tracks", "50", "--requests", "80", "--local-requests", "40"]
    argv += ["--backends", "edge,local", "--record", str(record), "--start-timeout", "120"]
    argv += ["--driver", "python"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    document = json.loads(out[-1])
    assert document["driver"] == "python"
    assert [run["backend"] for run in document["backends"]] == ["edge", "local"]
    for run in document["backends"]:
        routes = {r["route"]: r for r in run["routes"]}
        # Five routes on one server, then artists-like-X again on a live-search server.
        assert len(routes) == 6 and LIVE in routes
        for route in routes.values():
            assert route["failures"] == 0, route
        for name in (SIMILAR, LIVE):
            similar = routes[name]
            assert similar["requests"] == {"edge": 80, "local": 40}[run["backend"]]
            assert 0 < similar["p50_ms"] <= similar["p99_ms"]
        assert run["comparison"]["speedup_vs_live"] == pytest.approx(
            routes[SIMILAR]["throughput_rps"] / routes[LIVE]["throughput_rps"], abs=0.01
        )
    recorded = record.read_text()
    assert recorded.startswith("\n## HTTP search")
    assert "| edge | `GET /artists/{artist}/similar` | 80 | 0 |" in recorded
    assert "| edge | `GET /artists/{artist}/similar (live search)` | 80 | 0 |" in recorded
    assert "placement: " in recorded and "throughput vs the live search" in recorded
    assert "\n".join(out[:-1]).strip() == recorded.strip()


@pytest.mark.slow
def test_a_reused_store_gives_the_track_ids_it_was_filled_with(tmp_path: Path) -> None:
    with open_store(data_dir=tmp_path / "edge") as store:
        written = fill_store(store, artists=30, tracks=12)
        # Filled like an ingest leaves a store: artists-like-X can be a lookup.
        assert store.neighbour_lists_version() is not None
    assert bench_track_ids(12) == written


def test_the_wrk_script_requests_random_lines_of_the_paths_file(tmp_path: Path) -> None:
    paths = ["/artists/A%20B/similar?limit=10", "/artists/C/similar?limit=10"]
    script, paths_file = write_wrk_files(tmp_path / "wrk", "similar", paths)
    assert script.read_text() == WRK_SCRIPT
    assert paths_file.read_text().splitlines() == paths
    # init reads the file named by the first script argument, request picks one of its lines.
    assert "io.lines(args[1])" in WRK_SCRIPT and "math.randomseed(tonumber(args[2])" in WRK_SCRIPT
    assert 'wrk.format("GET", paths[math.random(#paths)])' in WRK_SCRIPT
    command = wrk_command(8000, script, paths_file, connections=8, seconds=10.0, seed=3)
    assert command[:2] == ["wrk", "--threads"]
    assert "--latency" in command and command[command.index("--connections") + 1] == "8"
    assert command[command.index("--duration") + 1] == "10s"
    assert command[-4:] == ["http://127.0.0.1:8000", "--", str(paths_file), "3"]


def test_wrk_reports_are_parsed_in_milliseconds_with_every_failure_counted() -> None:
    figures = parse_wrk_output(WRK_REPORT)
    assert figures["requests"] == 18345 and figures["seconds"] == 10.01
    assert figures["throughput_rps"] == 1832.6
    assert figures["p50_ms"] == 0.85 and figures["p75_ms"] == 4.61
    assert figures["p90_ms"] == 5.5 and figures["p99_ms"] == 1020.0
    assert figures["mean_ms"] == 4.37 and figures["max_ms"] == 1200.0
    assert figures["failures"] == 7 + 2 + 3


def test_a_clean_wrk_report_has_no_failures_and_anything_else_is_refused() -> None:
    clean = "\n".join(
        line
        for line in WRK_REPORT.splitlines()
        if "Socket errors" not in line and "Non-2xx" not in line
    )
    assert parse_wrk_output(clean)["failures"] == 0
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk_output("unable to connect to 127.0.0.1:8791 Connection refused")


def test_the_client_gets_a_core_of_its_own_when_there_are_two() -> None:
    split = Placement.split([1, 0])
    assert (split.server_cpus, split.client_cpus, split.shared) == ([0], [1], False)
    assert "server pinned to CPU(s) 0, load generator to CPU(s) 1" in split.describe()
    four = Placement.split([0, 1, 2, 3])
    assert (four.server_cpus, four.client_cpus) == ([0, 1, 2], [3])
    alone = Placement.split([5])
    assert alone.shared and alone.describe() == "server and load generator share CPU(s) 5"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_pinning_is_undone_afterwards() -> None:
    before = os.sched_getaffinity(0)
    one = min(before)
    with pinned([one]):
        assert os.sched_getaffinity(0) == {one}
    assert os.sched_getaffinity(0) == before


def test_the_comparison_holds_artists_like_x_to_its_targets() -> None:
    routes = [
        {"route": SIMILAR, "throughput_rps": 1500.0, "p99_ms": 9.0},
        {"route": LIVE, "throughput_rps": 200.0, "p99_ms": 60.0},
        {"route": HEALTHZ, "throughput_rps": 3000.0, "p99_ms": 6.0},
    ]
    comparison = compare(routes)
    assert comparison["speedup_vs_live"] == 7.5
    assert comparison["rps_vs_healthz"] == 0.5 and comparison["p99_vs_healthz"] == 1.5
    met = {key: target["met"] for key, target in comparison["targets"].items()}
    assert met == {
        "similar_rps": True,
        "similar_p99_ms": True,
        "speedup_vs_live": True,
        "rps_vs_healthz": False,
        "p99_vs_healthz": True,
    }
    # Without the live server (--no-live) that ratio is unknown, not failed.
    unknown = compare(routes[:1] + routes[2:])
    assert (
        unknown["speedup_vs_live"] is None and unknown["targets"]["speedup_vs_live"]["met"] is None
    )
