"""HTTP load benchmark: "artists like X" and lookups over real HTTP, 8 concurrent connections.

    python -m benchmarks.http [--artists 100000] [--driver wrk|python]
        [--seconds 10] [--requests 4000] [--backends edge,local] [--clusters 0]
        [--workdir DIR [--reuse]] [--no-live] [--record FILE] [--json]

Writes N artists with random unit centroids (and a few tracks) through the Store API, starts
`soundalike serve` on loopback in a subprocess and drives it route by route. Then, for
"artists like X" only, a second server with SOUNDALIKE_SIMILAR_LOOKUP=false, so the live HNSW
search is measured beside the neighbour-list lookup (the setting is per process, hence the
restart). `--backends edge,local` repeats it all over qdrant-client's local mode.

The load generator must not eat the cores it measures. The default driver is `wrk` (Debian's
`apt-get install wrk`; a Lua script written into the work dir picks a random path per request,
latency percentiles from its `--latency` histogram), run for `--seconds` per route. With two or
more usable cores the server is pinned to all but the last and the client to the last one, and
the report says so; on one core they share it. `--driver python` (the default without wrk)
drives it from this process with keep-alive `http.client` threads instead, a fixed `--requests`
per route: those threads cost about as much CPU as the server, so its figures are lower.

Reports throughput and latency percentiles per route, the lookup-vs-live and route-vs-/healthz
ratios against the targets, as a markdown section and a JSON document; `--record FILE` appends
the markdown section to FILE.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.http_catalogue import (
    artist_name,
    bench_track_ids,
    fill_store,
    open_local_store,
    serve_local,
    server_command,
)
from benchmarks.wrk import (
    Placement,
    drive_wrk,
    pinned,
)
from soundalike.search.store import open_store

MODULE = "benchmarks.http"
BACKENDS = ("edge", "local")
DRIVERS = ("wrk", "python")
SIMILAR = "GET /artists/{artist}/similar"
LIVE = SIMILAR + " (live search)"
HEALTHZ = "GET /healthz"
# Issue #15's targets for artists-like-X at 100k artists, 8 connections, 2 cores.
TARGET_RPS = 1000.0
TARGET_P99_MS = 15.0
TARGET_SPEEDUP_VS_LIVE = 6.0
TARGET_RPS_VS_HEALTHZ = 0.6
TARGET_P99_VS_HEALTHZ = 2.0


# --- clients -----------------------------------------------------------------------------


@dataclass
class RouteResult:
    route: str
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_failure: str | None = None

    def summary(self) -> dict[str, Any]:
        return (
            {
                "route": self.route,
                "requests": self.requests,
                "failures": self.failures,
                "throughput_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            }
            | common.latency_summary(self.latencies_ms)
            | {"first_failure": self.first_failure}
        )


def drive(
    port: int,
    route: str,
    paths: Sequence[str],
    *,
    clients: int,
    requests: int,
    max_seconds: float,
    warmup: int,
) -> RouteResult:
    """`clients` threads, each on its own keep-alive connection, share `requests` requests
    (cycling through `paths`) and stop early after `max_seconds`."""
    result = RouteResult(route)
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + max_seconds

    def client(worker: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies: list[float] = []
        failures, first_failure = 0, None
        for i in range(warmup):  # connection set-up and caches, not measured
            connection.request("GET", paths[(worker * 7919 + i) % len(paths)])
            connection.getresponse().read()
        while time.monotonic() < stop_at:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            path = paths[(index * 7919) % len(paths)]
            started = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, body = 0, str(error).encode()
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                failures += 1
                first_failure = first_failure or f"{status} {path}: {body[:200]!r}"
        connection.close()
        with lock:
            result.latencies_ms += latencies
            result.requests += len(latencies)
            result.failures += failures
            result.first_failure = result.first_failure or first_failure

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def route_paths(artists: int, track_ids: Sequence[str], seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    names = [artist_name(int(i)) for i in rng.integers(0, artists, size=2000)]
    quoted = [urllib.parse.quote(n) for n in names]
    with_tracks = [urllib.parse.quote(artist_name(i)) for i in range(min(len(track_ids), 2000))]
    prefixes = [urllib.parse.quote(n[: -int(rng.integers(1, 4))]) for n in names]
    return {
        "GET /artists/{artist}/similar": [f"/artists/{q}/similar?limit=10" for q in quoted],
        "GET /artists/{artist}": [f"/artists/{q}" for q in with_tracks],
        "GET /artists?q=": [f"/artists?q={p}&limit=20" for p in prefixes],
        "GET /tracks/{track_id}": [f"/tracks/{t}" for t in track_ids[:2000]],
        "GET /healthz": ["/healthz"],
    }


# --- the run -----------------------------------------------------------------------------


def _prepare_data(backend: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Writes the artists (or finds them from an earlier --reuse run); the track ids and the
    seconds writing took (None when reused)."""
    started = time.perf_counter()
    store = open_store(data_dir=data_dir) if backend == "edge" else open_local_store(data_dir)
    try:
        if args.reuse and store.count_artists() == args.artists:
            common.log(f"[{backend}] reusing the {args.artists} artists stored in {data_dir}")
            if store.neighbour_lists_version() is None:  # written before the lists existed
                common.log(f"[{backend}] building the neighbour lists")
                store.rebuild_neighbour_lists()
                store.optimize()
            return {
                "track_ids": bench_track_ids(min(args.tracks, args.artists)),
                "load_seconds": None,
            }
        track_ids = fill_store(store, args.artists, args.tracks, clusters=args.clusters)
    finally:
        store.close()
    load_seconds = round(time.perf_counter() - started, 1)
    common.log(
        f"[{backend}] wrote {args.artists} artists and {len(track_ids)} tracks in {load_seconds} s"
    )
    return {"track_ids": track_ids, "load_seconds": load_seconds}


def measure_routes(
    backend: str,
    args: argparse.Namespace,
    workdir: Path,
    placement: Placement,
    routes: dict[str, list[str]],
    *,
    live: bool,
) -> list[dict[str, Any]]:
    """One server for `backend` (with lookups off when `live`), each of `routes` driven in
    turn; the per-route figures."""
    data_dir = workdir / backend
    port = common.free_port()
    env = common.environment_without_settings()
    if live:
        env["SOUNDALIKE_SIMILAR_LOOKUP"] = "false"
    label = "live" if live else "server"
    results = []
    started = time.perf_counter()
    with (
        pinned(placement.server_cpus),
        common.running_server(
            server_command(backend, data_dir, port),
            port,
            log_path=workdir / f"{backend}-{label}.log",
            ready_timeout_s=args.start_timeout,
            env=env,
        ),
    ):
        common.log(
            f"[{backend}] {label} ready in {time.perf_counter() - started:.1f} s (port {port})"
        )
        if backend == "edge":
            in_memory = wait_until_in_memory(port, args.start_timeout)
            waited = time.perf_counter() - started
            common.log(f"[{backend}] lists in memory: {in_memory} after {waited:.1f} s")
        with pinned(placement.client_cpus):
            for route, paths in routes.items():
                result = drive_route(port, route, paths, backend, args, workdir)
                if live:
                    result["route"] = LIVE
                results.append(result)
                common.log(
                    f"[{backend}] {result['route']:<46} {result['requests']:7d} req "
                    f"{result['throughput_rps']:8.1f}/s  p50 {result['p50_ms']} ms  "
                    f"p99 {result['p99_ms']} ms  failures {result['failures']}"
                )
    return results


def wait_until_in_memory(port: int, timeout_s: float) -> bool:
    """Waits for the server's start-up read of the artists into memory (`/readyz`), so that
    what is measured is the steady state, not the store path it answers from meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/readyz")
            if json.loads(connection.getresponse().read()).get("lookups_in_memory"):
                return True
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    return False


def drive_route(
    port: int,
    route: str,
    paths: Sequence[str],
    backend: str,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    if args.driver == "wrk":
        return drive_wrk(
            port,
            route,
            paths,
            connections=args.clients,
            seconds=args.seconds,
            warmup_seconds=args.warmup_seconds,
            directory=workdir / "wrk",
            wrk=args.wrk,
        )
    return drive(
        port,
        route,
        paths,
        clients=args.clients,
        requests=args.requests if backend == "edge" else args.local_requests,
        max_seconds=args.max_seconds,
        warmup=args.warmup,
    ).summary()


def bench_backend(
    backend: str, args: argparse.Namespace, workdir: Path, placement: Placement
) -> dict[str, Any]:
    data = _prepare_data(backend, args, workdir / backend)
    routes = {
        route: paths
        for route, paths in route_paths(args.artists, data["track_ids"]).items()
        if not args.routes or any(r in route for r in args.routes)
    }
    results = measure_routes(backend, args, workdir, placement, routes, live=False)
    if args.live and SIMILAR in routes:
        results += measure_routes(
            backend, args, workdir, placement, {SIMILAR: routes[SIMILAR]}, live=True
        )
    return {
        "backend": backend,
        "load_seconds": data["load_seconds"],
        "routes": results,
        "comparison": compare(results),
    }


def compare(routes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Artists-like-X against the live search and /healthz on the same machine, with the
    targets each ratio is held to (None where a route was not measured)."""
    by_route = {r["route"]: r for r in routes}
    similar, live, healthz = by_route.get(SIMILAR), by_route.get(LIVE), by_route.get(HEALTHZ)

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
        if a is None or b is None or not b.get(key) or a.get(key) is None:
            return None
        return round(a[key] / b[key], 2)

    figures = {
        "similar_rps": similar["throughput_rps"] if similar else None,
        "similar_p99_ms": similar["p99_ms"] if similar else None,
        "speedup_vs_live": ratio(similar, live, "throughput_rps"),
        "rps_vs_healthz": ratio(similar, healthz, "throughput_rps"),
        "p99_vs_healthz": ratio(similar, healthz, "p99_ms"),
    }
    checks = {
        "similar_rps": (">=", TARGET_RPS),
        "similar_p99_ms": ("<=", TARGET_P99_MS),
        "speedup_vs_live": (">=", TARGET_SPEEDUP_VS_LIVE),
        "rps_vs_healthz": (">=", TARGET_RPS_VS_HEALTHZ),
        "p99_vs_healthz": ("<=", TARGET_P99_VS_HEALTHZ),
    }
    targets = {}
    for key, (sense, target) in checks.items():
        value = figures[key]
        met = None if value is None else (value >= target if sense == ">=" else value <= target)
        targets[key] = {"target": f"{sense} {target:g}", "met": met}
    return figures | {"targets": targets}


_LABELS = {
    "similar_rps": "artists-like-X req/s",
    "similar_p99_ms": "artists-like-X p99 ms",
    "speedup_vs_live": "throughput vs the live search",
    "rps_vs_healthz": "throughput vs `/healthz`",
    "p99_vs_healthz": "p99 vs `/healthz`'s",
}


def markdown(document: dict[str, Any]) -> str:
    driver = (
        "wrk (one thread, a random path per request)"
        if document["driver"] == "wrk"
        else "keep-alive `http.client` threads in the benchmark process"
    )
    lines = [
        "",
        "## HTTP search",
        "",
        f"- date: {document['date']}",
        f"- machine: {common.describe_machine(document['machine'])}; load average when the run "
        f"started: {document['load_average']} (other processes share the cores)",
        f"- command: `{document['command']}`",
        f"- {document['artists']} artists ({document['centroids']}, written through the "
        f"Store API), {document['clients']} concurrent keep-alive connections over loopback "
        "HTTP, one `soundalike serve` process (uvicorn, access log on); latency measured by "
        "the client.",
        f"- load generator: {driver}; placement: {document['placement']['description']}.",
        "- artists-like-X: neighbour-list lookups (SOUNDALIKE_SIMILAR_LOOKUP=true, the "
        "default); the `(live search)` row is a second server started with "
        "SOUNDALIKE_SIMILAR_LOOKUP=false.",
        "",
        "| backend | route | requests | failures | req/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in document["backends"]:
        for r in run["routes"]:
            lines.append(
                f"| {run['backend']} | `{r['route']}` | {r['requests']} | {r['failures']} | "
                f"{r['throughput_rps']} | {r['p50_ms']} | {r.get('p90_ms')} | {r['p99_ms']} | "
                f"{r['max_ms']} |"
            )
    lines.append("")
    for run in document["backends"]:
        comparison = run["comparison"]
        for key, label in _LABELS.items():
            if comparison[key] is None:
                continue
            target = comparison["targets"][key]
            verdict = "met" if target["met"] else "missed"
            lines.append(
                f"- {run['backend']}: {label}: {comparison[key]} (target {target['target']}: "
                f"{verdict})"
            )
        if run["load_seconds"] is not None:
            lines.append(f"- {run['backend']}: writing the data took {run['load_seconds']} s.")
    return "\n".join(lines) + "\n"


# The load generators' knobs: flag, type, default, help.
DRIVER_FLAGS: tuple[tuple[str, type, float, str], ...] = (
    ("--seconds", float, 10.0, "per route, wrk driver"),
    ("--warmup-seconds", float, 2.0, "unmeasured wrk run before each route"),
    ("--requests", int, 4000, "per route, python driver, embedded store"),
    ("--local-requests", int, 200, "per route, python driver, qdrant-client local mode (slower)"),
    ("--max-seconds", float, 60.0, "python driver: most seconds per route, whatever the count"),
    ("--warmup", int, 5, "python driver: unmeasured requests per client"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--artists", type=int, default=100_000)
    parser.add_argument(
        "--tracks",
        type=int,
        default=2000,
        help="artists that also get one track (for the lookup routes)",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=0,
        help="scatter centroids around this many random centres (0: uniform)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the data already in --workdir when it has --artists artists",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument(
        "--driver",
        choices=DRIVERS,
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator (default: wrk when installed)",
    )
    parser.add_argument("--wrk", default="wrk", help=argparse.SUPPRESS)
    for flag, kind, default, text in DRIVER_FLAGS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument(
        "--no-live",
        action="store_false",
        dest="live",
        help="skip the second server (SOUNDALIKE_SIMILAR_LOOKUP=false) for the live search",
    )
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="let server and load generator use every core (no pinning)",
    )
    parser.add_argument("--backends", default="edge,local", help="edge, local or both")
    parser.add_argument("--routes", nargs="*", help="only routes containing one of these")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--record", type=Path, help="append the markdown section to this file")
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    parser.add_argument("--serve-local", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.serve_local is not None:
        serve_local(args.serve_local, args.port)
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}: use edge or local")
    if args.artists < 1 or args.clients < 1:
        parser.error("--artists and --clients must be >= 1")
    if args.driver == "wrk" and shutil.which(args.wrk) is None:
        parser.error("--driver wrk needs wrk on PATH (apt-get install wrk), or use --driver python")
    cpus = usable_cpus()
    placement = Placement(cpus, cpus) if args.shared_cores else Placement.split(cpus)

    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    with common.work_dir(args.workdir, "load") as workdir:
        runs = [bench_backend(b, args, workdir, placement) for b in backends]
    document |= {
        "artists": args.artists,
        "centroids": (
            f"random unit {common.BENCH_DIM}-d centroids around {args.clusters} random cluster"
            " centres"
            if args.clusters
            else f"random unit {common.BENCH_DIM}-d centroids, uniform on the sphere"
        ),
        "clients": args.clients,
        "driver": args.driver,
        "placement": placement.to_dict(),
        "backends": runs,
    }
    report = markdown(document)
    if args.record:
        with open(args.record, "a", encoding="utf-8") as handle:
            handle.write(report)
    common.print_document(document, text=None if args.json else report)
    return 0


if __name__ == "__main__":
    common.exit_on_sigterm()
    raise SystemExit(main())
