"""HTTP load benchmark: "artists like X" and lookups over real HTTP, 8 concurrent clients.

    python -m soundalike.api.benchmarks.http [--artists 100000] [--requests 4000]
        [--backends edge,local] [--clusters 0] [--workdir DIR [--reuse]] [--record FILE] [--json]

Writes N artists with random unit centroids (and a few tracks) through the Store API, starts
`soundalike serve` on loopback in a subprocess, and drives it with concurrent keep-alive clients
for a bounded number of requests (and seconds) per route. Then the same against qdrant-client's
local mode (`--backends edge,local`), served by this module in a subprocess. Reports throughput
and latency percentiles per route as a markdown table and a JSON document; `--record FILE`
appends the markdown section to FILE.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.api.benchmarks.common import (
    BENCH_DIM,
    BENCH_SPEC,
    bench_parser,
    describe_machine,
    document_header,
    exit_on_sigterm,
    free_port,
    latency_summary,
    log,
    print_document,
    running_server,
    serve_command,
    work_dir,
)
from soundalike.search.identity import track_id
from soundalike.search.names import artist_key
from soundalike.search.store import Store, open_store
from soundalike.search.types import Artist, Track

MODULE = "soundalike.api.benchmarks.http"
BACKENDS = ("edge", "local")
WRITE_BATCH = 2000
TARGET_P99_MS = 30.0
CLUSTER_SPREAD = 0.6


def artist_name(index: int) -> str:
    return f"Bench Artist {index:06d}"


# --- data --------------------------------------------------------------------------------


def bench_track_ids(tracks: int) -> list[str]:
    """The ids `fill_store` gives the tracks of the first `tracks` artists."""
    keys = [artist_key(artist_name(i)) for i in range(tracks)]
    return [track_id(f"bench-{key}", key) for key in keys]


def random_centroids(
    rng: np.random.Generator, count: int, centres: np.ndarray | None
) -> np.ndarray:
    """Unit vectors: uniform on the sphere, or scattered around random cluster centres (cosine
    ~0.86 to their centre), which is closer to how real artists group into styles."""
    vectors = rng.standard_normal((count, BENCH_DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if centres is not None:
        vectors = centres[rng.integers(0, len(centres), size=count)] + CLUSTER_SPREAD * vectors
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def fill_store(
    store: Store, artists: int, tracks: int, *, clusters: int = 0, seed: int = 0
) -> list[str]:
    """Writes `artists` artists with random unit centroids and one track for each of the first
    `tracks` artists; returns the track ids."""
    rng = np.random.default_rng(seed)
    centres = random_centroids(rng, clusters, None) if clusters > 0 else None
    store.ensure_spec(BENCH_SPEC)
    track_ids: list[str] = []
    for start in range(0, artists, WRITE_BATCH):
        count = min(WRITE_BATCH, artists - start)
        centroids = random_centroids(rng, count, centres)
        batch = [
            Artist(
                name=artist_name(start + i),
                artist_key=artist_key(artist_name(start + i)),
                track_count=int(rng.integers(1, 20)),
                centroid=centroids[i].tolist(),
            )
            for i in range(count)
        ]
        store.upsert_artists(batch)
        batch_tracks = [
            Track(
                track_id=track_id(f"bench-{a.artist_key}", a.artist_key),
                artist=a.name,
                artist_key=a.artist_key,
                vector=a.centroid,
                title=f"{a.name} - first track",
                album="Bench",
                genre="bench",
                year=2024,
            )
            for index, a in enumerate(batch, start)
            if index < tracks
        ]
        if batch_tracks:
            store.upsert_tracks(batch_tracks)
            track_ids += [t.track_id for t in batch_tracks]
    store.flush()
    store.optimize()
    return track_ids


def open_local_store(path: Path) -> Store:
    """qdrant-client's local mode persisted under `path` (the store's test double)."""
    from soundalike.search.server_store import ServerBackend

    return Store(ServerBackend.local_path(path))


def server_command(backend: str, data_dir: Path, port: int) -> list[str]:
    if backend == "edge":
        return serve_command(data_dir, port)
    # The CLI serves Edge or a Qdrant server only: this module serves local mode itself.
    return [sys.executable, "-m", MODULE, "--serve-local", str(data_dir), "--port", str(port)]


def serve_local(data_dir: Path, port: int) -> None:
    """The API over qdrant-client's local mode."""
    import uvicorn

    from soundalike.api.main import create_app
    from soundalike.api.services import Services
    from soundalike.api.settings import Settings

    settings = Settings(data_dir=data_dir, log_level="warning")

    def open_local(_settings: Settings) -> Store:
        return open_local_store(data_dir)

    with Services(settings, store_opener=open_local) as services:
        app = create_app(services=services)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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
            | latency_summary(self.latencies_ms)
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
            log(f"[{backend}] reusing the {args.artists} artists stored in {data_dir}")
            return {
                "track_ids": bench_track_ids(min(args.tracks, args.artists)),
                "load_seconds": None,
            }
        track_ids = fill_store(store, args.artists, args.tracks, clusters=args.clusters)
    finally:
        store.close()
    load_seconds = round(time.perf_counter() - started, 1)
    log(f"[{backend}] wrote {args.artists} artists and {len(track_ids)} tracks in {load_seconds} s")
    return {"track_ids": track_ids, "load_seconds": load_seconds}


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / backend
    data = _prepare_data(backend, args, data_dir)
    port = free_port()
    requests = args.requests if backend == "edge" else args.local_requests
    routes = []
    started = time.perf_counter()
    with running_server(
        server_command(backend, data_dir, port),
        port,
        log_path=workdir / f"{backend}-server.log",
        ready_timeout_s=args.start_timeout,
    ):
        log(f"[{backend}] server ready in {time.perf_counter() - started:.1f} s (port {port})")
        for route, paths in route_paths(args.artists, data["track_ids"]).items():
            if args.routes and not any(r in route for r in args.routes):
                continue
            result = drive(
                port,
                route,
                paths,
                clients=args.clients,
                requests=requests,
                max_seconds=args.max_seconds,
                warmup=args.warmup,
            ).summary()
            routes.append(result)
            log(
                f"[{backend}] {route:<32} {result['requests']:6d} req "
                f"{result['throughput_rps']:8.1f}/s  p50 {result['p50_ms']} ms  "
                f"p99 {result['p99_ms']} ms  failures {result['failures']}"
            )
    return {"backend": backend, "load_seconds": data["load_seconds"], "routes": routes}


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "",
        "## HTTP search",
        "",
        f"- date: {document['date']}",
        f"- machine: {describe_machine(document['machine'])}; load average when the run "
        f"started: {document['load_average']} (other processes share the cores)",
        f"- command: `{document['command']}`",
        f"- {document['artists']} artists ({document['centroids']}, written through the "
        f"Store API), {document['clients']} concurrent keep-alive clients over loopback HTTP, "
        "one `soundalike serve` process (uvicorn); latency measured by the clients.",
        f"- target: artists-like-X p99 < {TARGET_P99_MS:g} ms with the embedded store (Edge).",
        "",
        "| backend | route | requests | failures | req/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in document["backends"]:
        for r in run["routes"]:
            lines.append(
                f"| {run['backend']} | `{r['route']}` | {r['requests']} | {r['failures']} | "
                f"{r['throughput_rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                f"{r['max_ms']} |"
            )
    lines.append("")
    for run in document["backends"]:
        if run["load_seconds"] is not None:
            lines.append(f"- {run['backend']}: writing the data took {run['load_seconds']} s.")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser(MODULE, __doc__)
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
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4000, help="per route, embedded store")
    parser.add_argument(
        "--local-requests",
        type=int,
        default=200,
        dest="local_requests",
        help="per route, qdrant-client local mode (much slower)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        dest="max_seconds",
        help="stop a route's run after this long, whatever the count",
    )
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests per client")
    parser.add_argument("--backends", default="edge,local", help="edge, local or both")
    parser.add_argument("--routes", nargs="*", help="only routes containing one of these")
    parser.add_argument("--start-timeout", type=float, default=600.0, dest="start_timeout")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--record", type=Path, help="append the markdown section to this file")
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    parser.add_argument("--serve-local", type=Path, dest="serve_local", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


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

    document = document_header(MODULE, sys.argv[1:] if argv is None else argv)
    with work_dir(args.workdir, "load") as workdir:
        runs = [bench_backend(b, args, workdir) for b in backends]
    document |= {
        "artists": args.artists,
        "centroids": (
            f"random unit {BENCH_DIM}-d centroids around {args.clusters} random cluster centres"
            if args.clusters
            else f"random unit {BENCH_DIM}-d centroids, uniform on the sphere"
        ),
        "clients": args.clients,
        "backends": runs,
    }
    report = markdown(document)
    if args.record:
        with open(args.record, "a", encoding="utf-8") as handle:
            handle.write(report)
    print_document(document, text=None if args.json else report)
    return 0


if __name__ == "__main__":
    exit_on_sigterm()
    raise SystemExit(main())
