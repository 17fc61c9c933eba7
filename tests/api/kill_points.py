"""Runs the real `soundalike` CLI with one step of the ingest wrapped to stop at a kill point.

    python tests/api/kill_points.py POINT MARKER -- ingest PATH --data-dir ... (CLI arguments)

On reaching POINT the process writes its pid to MARKER and sleeps, so that a test can SIGKILL it
exactly there. Nothing in the product knows about this: the wrapping happens here, around the
product's own methods, before `soundalike.api.cli.main` runs.

POINTS:
- create-between: collection creation, after the first collection was created and before the
  second one is.
- create-after: collection creation, after both collections were created and before their
  payload indexes and the embedding spec are written.
- embed: the embed loop, after EMBED_CALLS_BEFORE_PAUSE batches were embedded (some written).
- centroids: the centroid recompute, after its first batch of CENTROID_BATCH artists was
  rewritten and before the second one is.
- centroids-start: the centroid recompute, before its first batch of artists is written.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EMBED_CALLS_BEFORE_PAUSE = 5
CENTROID_BATCH = 2
# The test kills the process long before this; the cap only bounds a test gone wrong.
PAUSE_SECONDS = 300.0


def pause(marker: Path, point: str) -> None:
    """Announces the kill point (atomically: a half-written marker is never read) and waits."""
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(f"{os.getpid()} {point}\n", encoding="utf-8")
    os.replace(partial, marker)
    time.sleep(PAUSE_SECONDS)
    os._exit(3)


def pause_on_call(
    method: Callable[..., Any], call: int, marker: Path, point: str, *, after: bool = False
) -> Callable[..., Any]:
    """`method`, pausing on its `call`-th call (1-based): before it runs, or after with `after`."""
    calls = 0

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and not after:
            pause(marker, point)
        result = method(*args, **kwargs)
        if calls == call and after:
            pause(marker, point)
        return result

    return wrapped


def install(point: str, marker: Path) -> None:
    from soundalike.ingest.engine import VectorEngine
    from soundalike.search.edge_store import EdgeBackend
    from soundalike.search.store import artists as artists_module

    if point == "create-between":
        EdgeBackend.create_collection = pause_on_call(  # type: ignore[method-assign]
            EdgeBackend.create_collection, 2, marker, point
        )
    elif point == "create-after":
        EdgeBackend.create_collection = pause_on_call(  # type: ignore[method-assign]
            EdgeBackend.create_collection, 2, marker, point, after=True
        )
    elif point == "embed":
        VectorEngine.embed = pause_on_call(  # type: ignore[method-assign]
            VectorEngine.embed, EMBED_CALLS_BEFORE_PAUSE + 1, marker, point
        )
    elif point == "centroids":
        # Small batches so that the recompute of a dozen artists takes several of them.
        artists_module.CENTROID_KEY_BATCH = CENTROID_BATCH  # type: ignore[misc]
        artists_module.ArtistSide._write_artists = pause_on_call(  # type: ignore[method-assign]
            artists_module.ArtistSide._write_artists, 2, marker, point
        )
    elif point == "centroids-start":
        artists_module.ArtistSide._write_artists = pause_on_call(  # type: ignore[method-assign]
            artists_module.ArtistSide._write_artists, 1, marker, point
        )
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def run(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--":
        raise SystemExit(f"usage: {Path(__file__).name} POINT MARKER -- CLI-ARGS...")
    point, marker, cli_args = argv[0], Path(argv[1]), argv[3:]
    install(point, marker)
    from soundalike.api.cli import main

    return main(cli_args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
