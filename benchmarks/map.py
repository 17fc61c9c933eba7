"""Catalogue map benchmark: the 2-D projection behind GET /map at N artists.

    python -m benchmarks.map [--artists 100000] [--store [--browser]] [--dir DIR]

Clustered 768-d centroids shaped like MERT's (`clustered_centroids`). Measures the PCA
projection in NumPy (search/projection.py `project`), and with `--store` the whole of what the
first GET /map after a catalogue change does through an Edge store: read every centroid, project,
build and serialise the JSON body (its size too). Later requests are served from the cache until
the catalogue version changes. `--browser` then serves that store (`soundalike serve`) and
opens the map page in Chromium (Playwright, `--chromium PATH`): the time from opening the page
to every artist drawn, and the time from a zoom (a wheel event) to the next painted frame, 40
times (`--screenshot PNG` keeps a picture of the whole map). Prints a JSON document on the
last line of stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.store import clustered_centroids
from soundalike.api.bench import peak_rss_mb
from soundalike.api.schemas import CatalogueMapBody, MapArtist, ModelResponse
from soundalike.core.artist_names import artist_key
from soundalike.core.types import Artist
from soundalike.search.projection import catalogue_map, project
from soundalike.search.store import open_store

MODULE = "benchmarks.map"
GENRES = ("rock", "jazz", "ambient", "folk", "electronic", "classical", "hip hop", "metal")


def measure_numpy(matrix: np.ndarray) -> dict[str, Any]:
    common.log(f"projecting {matrix.shape[0]} centroids")
    started = time.perf_counter()
    xy = project(matrix)
    seconds = time.perf_counter() - started
    common.log(f"  {seconds:.2f} s")
    return {"project_s": round(seconds, 3), "finite": bool(np.isfinite(xy).all())}


def measure_store(matrix: np.ndarray, folder: Path) -> dict[str, Any]:
    n = matrix.shape[0]
    store = open_store(data_dir=folder / "data")
    try:
        store.ensure_spec(common.BENCH_SPEC, force=True)
        common.log(f"store: writing {n} artists")
        for start in range(0, n, 5000):
            store.upsert_artists(
                [
                    Artist(
                        name=f"artist {i:07d}",
                        artist_key=artist_key(f"artist {i:07d}"),
                        track_count=1 + i % 12,
                        centroid=matrix[i].tolist(),
                        genres=[GENRES[i % len(GENRES)]],
                    )
                    for i in range(start, min(start + 5000, n))
                ]
            )
        store.flush()
        common.log("store: the first GET /map's work")
        started = time.perf_counter()
        computed = catalogue_map(store)
        read_and_project_s = time.perf_counter() - started
        body = CatalogueMapBody(
            artists=[
                MapArtist(artist=p.artist, x=p.x, y=p.y, track_count=p.track_count, genre=p.genre)
                for p in computed.points
            ],
            projection=computed.projection,
        )
        payload = ModelResponse(body).body
        total_s = time.perf_counter() - started
        common.log(f"  {total_s:.2f} s, {len(payload) / 1e6:.1f} MB of JSON")
        return {
            "artists_mapped": len(computed.points),
            "read_and_project_s": round(read_and_project_s, 3),
            "first_request_s": round(total_s, 3),
            "json_bytes": len(payload),
            "peak_rss_mb": round(peak_rss_mb()),
        }
    finally:
        store.close()


# Zooms in and out around the middle of the canvas and times each wheel event to the end of
# the next animation frame: the map's redraw is queued first, so it runs inside that frame.
ZOOM_FRAMES_JS = """
async (count) => {
  const canvas = document.getElementById("map-canvas");
  const box = canvas.getBoundingClientRect();
  const times = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: i % 2 ? 240 : -240, bubbles: true,
      cancelable: true, clientX: box.x + box.width / 2, clientY: box.y + box.height / 2}));
    await new Promise((done) => requestAnimationFrame(done));
    times.push(performance.now() - started);
  }
  return times;
}
"""


def measure_browser(
    folder: Path, artists: int, chromium: str, screenshot: Path | None
) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # a test extra
        raise SystemExit("--browser needs playwright: pip install -e '.[test]'") from error
    port = common.free_port()
    command = common.serve_command(folder / "data", port)
    with (
        common.running_server(command, port, log_path=folder / "server.log"),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            common.log("browser: opening the map")
            started = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/#/map")
            page.wait_for_function(
                f"document.getElementById('map-canvas')?.dataset.drawn === '{artists}'",
                timeout=300_000,
            )
            first_draw_s = time.perf_counter() - started
            frames_ms = page.evaluate(ZOOM_FRAMES_JS, 40)
            if screenshot is not None:
                page.get_by_role("button", name="Whole map").click()
                page.wait_for_timeout(300)
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    common.log(f"  drawn after {first_draw_s:.2f} s")
    return {
        "open_to_drawn_s": round(first_draw_s, 2),
        "zoom_to_painted_frame_ms": common.latency_summary(frames_ms),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--artists", type=int, default=100_000)
    parser.add_argument("--store", action="store_true", help="also through an Edge store")
    parser.add_argument("--browser", action="store_true", help="with --store: the page too")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium for --browser")
    parser.add_argument("--screenshot", type=Path, default=None, help="with --browser: a PNG")
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    args = parser.parse_args(argv)
    if args.browser and not args.store:
        parser.error("--browser needs --store")
    common.exit_on_sigterm()
    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    matrix = clustered_centroids(np.random.default_rng(0), args.artists)
    document["artists"] = args.artists
    document["numpy"] = measure_numpy(matrix)
    if args.store:
        with common.work_dir(args.dir, "map") as folder:
            document["store"] = measure_store(matrix, folder)
            if args.browser:
                document["browser"] = measure_browser(
                    folder, args.artists, args.chromium, args.screenshot
                )
    common.print_document(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
