"""End-to-end ingest from compressed files: tracks/s, windows/s, seconds per stage, how busy the
model is, and the host's decode-only rate for comparison.

    python -m benchmarks.ingest_e2e [--tracks 8] [--seconds 45] [--model DIR | --tiny]
        [--device cpu] [--workers N] [--batch-size N] [--precision fp32,auto] [--json]

A catalogue of distinct synthetic tracks (devtools.synth) is written as a mix of MP3, Opus in
Ogg and FLAC (Ogg Vorbis when no Opus encoder exists: the mix is whatever this PyAV has, and
the report says which), then two fresh spawned processes run on it:
- `ingest`: the real flow (`pipeline.ingest`, built the way `soundalike ingest` builds it) into
  a new embedded store, with the default excerpt policy (the 30 s centre window). The run's
  events are subscribed: StageTimed gives decode / embed / write seconds per batch, TrackStored
  counts the tracks.
- `decode-only`: the same decode pool with the same worker count, nothing embedded: what the
  host's cores can decode, the ceiling of the end-to-end rate.
The default model is the full-size MERT-v1-95M architecture with random weights
(devtools.checkpoint); `--tiny` is the test-size one. `--precision` appears only when the
settings have a `precision` field; a comma list ingests the same files once per precision
(fresh process each) and reports each against the first.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks import common
from benchmarks.ingest import benchmark_model
from soundalike.api.bench import peak_rss_mb, run_isolated, usable_cores
from soundalike.api.settings import Settings
from soundalike.core.events import StageTimed, TrackStored
from soundalike.ingest.defaults import DEFAULT_EXCERPT, DEFAULT_WORKERS
from soundalike.ingest.devtools.synth import ARTIST_NAMES, synth_track, write_audio

MODULE = "benchmarks.ingest_e2e"
# (extension, encoder) in order of preference for each family; the first one this PyAV can
# write is used. Opus is what current Ogg files mostly hold; FFmpeg's own Vorbis encoder is
# experimental, so it is only the fallback.
FORMAT_CHOICES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("mp3", "libmp3lame"),),
    (("opus", "libopus"), ("ogg", "libvorbis"), ("ogg", "vorbis")),
    (("flac", "flac"),),
)
TRACKS_PER_ARTIST = 10
# Distinct synthesised signals at most (see _write_one).
BASE_SIGNALS = 32
SAMPLE_RATE = 44100
HAS_PRECISION = "precision" in Settings.model_fields


def has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:  # noqa: BLE001 - PyAV raises several types for an unknown codec
        return False
    return True


def pick_formats() -> dict[str, str]:
    """{extension: encoder} of the mix: the first writable choice of each family."""
    picked: dict[str, str] = {}
    for family in FORMAT_CHOICES:
        for extension, encoder in family:
            if has_encoder(encoder):
                picked[extension] = encoder
                break
    if not picked:
        raise RuntimeError("this PyAV can write none of MP3, Opus, Vorbis or FLAC")
    return picked


@functools.cache
def _base_signal(artist_seed: int, seconds: float) -> np.ndarray:
    return synth_track(
        artist_seed=artist_seed, track_seed=0, seconds=seconds, sample_rate=SAMPLE_RATE
    )


def _write_one(job: tuple[Path, str, int, int, float]) -> None:
    path, artist, index, base, seconds = job
    # Synthesis costs more than encoding, and a GPU run needs thousands of files: each artist
    # has one base signal, and every track is that signal rolled by its own offset and scaled
    # by its own gain, so every file's audio (and identity) is its own.
    artist_index = index // TRACKS_PER_ARTIST
    roll = (index % TRACKS_PER_ARTIST) * 13_229 + (artist_index // BASE_SIGNALS) * 997
    gain = 1.0 - 1e-4 * (artist_index // BASE_SIGNALS)
    audio = np.roll(_base_signal(base, seconds), roll, axis=1) * np.float32(gain)
    tags = {"artist": artist, "album_artist": artist, "title": path.stem}
    write_audio(path, audio, SAMPLE_RATE, tags=tags)


def write_mix(root: Path, tracks: int, seconds: float, extensions: Sequence[str]) -> None:
    """`tracks` distinct files, TRACKS_PER_ARTIST per artist, the formats cycling; written by
    one process per core."""
    jobs = []
    for index in range(tracks):
        artist_index = index // TRACKS_PER_ARTIST
        artist = f"{ARTIST_NAMES[artist_index % len(ARTIST_NAMES)]} {artist_index + 1}"
        extension = extensions[index % len(extensions)]
        title = f"{index % TRACKS_PER_ARTIST + 1:02d} Take {index}"
        path = root / artist / f"{title}.{extension}"
        jobs.append((path, artist, index, artist_index % BASE_SIGNALS, seconds))
    for directory in {job[0].parent for job in jobs}:
        directory.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=max(1, usable_cores())) as pool:
        # One artist's tracks go to one process together: its base signal is made once there.
        list(pool.map(_write_one, jobs, chunksize=TRACKS_PER_ARTIST))


# --- the measured processes ------------------------------------------------------------------


def _settings(options: dict[str, Any], data_dir: Path) -> Settings:
    # A fresh process: the shell's SOUNDALIKE_* settings are dropped so the run measures what
    # the benchmark's options say and the defaults for the rest.
    os.environ.clear()
    os.environ.update(common.environment_without_settings())
    values: dict[str, Any] = {
        "model": options["model"],
        "device": options["device"],
        "excerpt": DEFAULT_EXCERPT,
        "data_dir": data_dir,
    }
    # Unset: the settings' own auto sizing (batch from free CUDA memory, workers from cores).
    for key in ("batch_size", "workers"):
        if options.get(key) is not None:
            values[key] = options[key]
    if options.get("precision") is not None:
        values["precision"] = options["precision"]
    return Settings(**values)


def decode_workers(settings: Settings) -> int:
    """The decode worker count `soundalike ingest` would use for these settings."""
    try:
        from soundalike.ingest.autosize import auto_workers
    except ImportError:  # before auto sizing, workers was always set
        return int(settings.workers or DEFAULT_WORKERS)
    return auto_workers(settings.workers, settings.device)


def copy_seconds(device: Any, batches: Sequence[tuple[int, int]]) -> float:
    """Host→device seconds for batches of (windows, samples) float32. The flow times the copy
    inside its embed stage (the embedder copies from pinned memory on a side stream, overlapped
    with the forward), so on CUDA it is measured here again on its own, from pinned memory like
    the embedder's, each copy waited for: the copy's cost if nothing overlapped it."""
    import torch

    total = 0.0
    for windows, samples in batches:
        host = torch.zeros((windows, samples), dtype=torch.float32, pin_memory=True)
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        host.to(device, non_blocking=True)
        torch.cuda.synchronize(device)
        total += time.perf_counter() - started
    return total


def _run_ingest(options: dict[str, Any], catalogue: Path, data_dir: Path) -> dict[str, Any]:
    """One whole ingest in this (fresh) process, with its stage events summed."""
    process_started = time.perf_counter()
    settings = _settings(options, data_dir)
    from soundalike.api.services import Services
    from soundalike.ingest.pipeline import IngestOptions, ingest
    from soundalike.ingest.sources import FolderSource

    stage_seconds: dict[str, float] = defaultdict(float)
    windows_embedded = 0
    embed_batches: list[int] = []
    stored = 0

    def sink(event: object) -> None:
        nonlocal windows_embedded, stored
        if isinstance(event, StageTimed):
            stage_seconds[event.stage] += event.seconds
            if event.stage == "embed":
                windows_embedded += event.windows
                embed_batches.append(event.windows)
        elif isinstance(event, TrackStored) and event.outcome == "ingested":
            stored += 1

    with Services(settings) as services:
        engine = services.engine()  # the model loads here, outside the timed ingest
        device = getattr(engine.embedder, "loaded", None)
        device = device.device if device is not None else None
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(device)
        services.events.subscribe(sink)
        started = time.perf_counter()
        summary = ingest(
            FolderSource(catalogue),
            store=services.store(),
            engine=engine,
            options=IngestOptions(workers=decode_workers(settings)),
            events=services.events,
        )
        wall = time.perf_counter() - started
    result: dict[str, Any] = {
        "tracks": stored,
        "failed": len(summary.failed),
        "windows": windows_embedded,
        "wall_seconds": wall,
        "process_seconds": time.perf_counter() - process_started,
        # The flow's three stages always, and any stage another change adds (a copy stage).
        "stage_seconds": dict.fromkeys(("decode", "embed", "write"), 0.0) | dict(stage_seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "device": str(device),
        "workers": decode_workers(settings),
        "batch_size": engine.embedder.batch_size,
        # What the settings' precision resolved to (absent before precisions existed).
        "precision": str(getattr(getattr(engine.embedder, "loaded", None), "precision", "fp32")),
    }
    if device is not None and device.type == "cuda":
        import torch

        result["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        samples = int(engine.decoding.window_seconds * engine.sample_rate)
        if "copy" not in stage_seconds:
            result["copy_measured_apart_seconds"] = copy_seconds(
                device, [(windows, samples) for windows in embed_batches]
            )
    return result


def _run_decode_only(options: dict[str, Any], catalogue: Path, sample_rate: int) -> dict[str, Any]:
    """The flow's decode stage alone: the same pool, worker count and decoding settings."""
    settings = _settings(options, catalogue.parent / "unused-data")
    from soundalike.api.services import decoding_for
    from soundalike.core.errors import AudioError
    from soundalike.ingest.pipeline import decode, discover, identify
    from soundalike.ingest.sources import FolderSource

    source = FolderSource(catalogue)
    started = time.perf_counter()
    listed, _ = discover(source)
    pending, _ = identify(source, listed, None)
    decoded = failed = windows = 0
    workers = decode_workers(settings)
    for _, result in decode(source, pending, decoding_for(settings), sample_rate, workers):
        if isinstance(result, AudioError):
            failed += 1
        else:
            decoded += 1
            windows += len(result.windows)
    seconds = time.perf_counter() - started
    return {
        "tracks": decoded,
        "failed": failed,
        "windows": windows,
        "seconds": seconds,
        "workers": workers,
        "tracks_per_s": decoded / seconds,
    }


# --- the report ------------------------------------------------------------------------------


def figures(run: dict[str, Any], decode_only: dict[str, Any] | None) -> dict[str, Any]:
    """The rates and shares read off one ingest run (and the decode-only pass, if made)."""
    wall = run["wall_seconds"]
    stages = run["stage_seconds"]
    on_cuda = run["device"].startswith("cuda")
    copy = stages.get("copy", run.get("copy_measured_apart_seconds"))
    embed = stages["embed"]
    out: dict[str, Any] = {
        "tracks_per_s": run["tracks"] / wall if wall > 0 else 0.0,
        "windows_per_s": run["windows"] / wall if wall > 0 else 0.0,
        "seconds": {
            "decode": round(stages["decode"], 3),
            # On the CPU the model reads host memory: there is no copy stage.
            "copy": round(copy, 3) if on_cuda and copy is not None else None,
            "forward": round(embed - (copy or 0.0) if on_cuda else embed, 3),
            "write": round(stages["write"], 3),
            # Discovery, identification, the store's upkeep (centroids, lists, optimize).
            "rest": round(wall - stages["decode"] - embed - stages["write"], 3),
        },
        "copy_note": (
            "not applicable on the CPU (the model reads host memory)"
            if not on_cuda
            else "host→device measured apart on the same batch shapes (the flow times it "
            "inside embed, overlapped with the forward); forward = embed - copy, a lower bound"
            if "copy" not in stages
            else "the flow's own copy stage"
        ),
        "model_busy_fraction": round(embed / wall, 3) if wall > 0 else 0.0,
    }
    if decode_only is not None:
        out["decode_only_tracks_per_s"] = decode_only["tracks_per_s"]
        out["share_of_decode_only_rate"] = round(
            out["tracks_per_s"] / decode_only["tracks_per_s"], 3
        )
    return out


def host_description() -> dict[str, Any]:
    """lscpu's family, model and flags, and nvidia-smi's lines when there is one."""
    described: dict[str, Any] = {}
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip().lower(), value.strip())
    described["lscpu"] = {
        key: fields.get(key) for key in ("model name", "cpu family", "model", "flags")
    }
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"],
            capture_output=True, text=True, check=True, timeout=20,
        ).stdout.strip()  # fmt: skip
        described["nvidia_smi"] = smi.splitlines()
    except (OSError, subprocess.SubprocessError):
        described["nvidia_smi"] = None
    return described


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "| precision | tracks | windows | wall s | process s | tracks/s | windows/s | decode s "
        "| copy s | forward s | write s | model busy | decode-only tracks/s | peak RSS MB "
        "| peak device MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    decode_only = document["decode_only"]
    rate = f"{decode_only['tracks_per_s']:.2f}" if decode_only else "n/a"
    for entry in document["runs"]:
        run, fig = entry["ingest"], entry["figures"]
        seconds = fig["seconds"]
        copy = "n/a" if seconds["copy"] is None else f"{seconds['copy']:.2f}"
        lines.append(
            f"| {entry['precision'] or 'default'} | {run['tracks']} | {run['windows']} | "
            f"{run['wall_seconds']:.1f} | {run['process_seconds']:.1f} | "
            f"{fig['tracks_per_s']:.3f} | {fig['windows_per_s']:.3f} | "
            f"{seconds['decode']:.2f} | {copy} | {seconds['forward']:.2f} | "
            f"{seconds['write']:.2f} | {fig['model_busy_fraction']:.0%} | {rate} | "
            f"{run['peak_rss_mb']:.0f} | {run.get('peak_device_mb', 'n/a')} |"
        )
    return "\n".join(lines)


def speedups(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each run against the first, same catalogue, same invocation: wall (the ingest call) and
    whole process (imports, model load, ingest and the store's upkeep)."""
    first = runs[0]["ingest"]
    return {
        str(entry["precision"]): {
            "wall": round(first["wall_seconds"] / entry["ingest"]["wall_seconds"], 3),
            "process": round(first["process_seconds"] / entry["ingest"]["process_seconds"], 3),
        }
        for entry in runs[1:]
    }


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument(
        "--seconds", type=float, default=45.0, help="length of each track (the centre 30 s is read)"
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="checkpoint dir (default: full-size random MERT-v1-95M)")
    model.add_argument("--tiny", action="store_true", help="the test-size random checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    if HAS_PRECISION:
        parser.add_argument(
            "--precision",
            type=lambda text: [part for part in text.split(",") if part],
            help="passed to the settings (SOUNDALIKE_PRECISION); a comma list (fp32,auto) "
            "ingests the same files once per precision, each in a fresh process",
        )
    parser.add_argument("--workers", type=int, help="decode workers (default: the settings' auto)")
    parser.add_argument(
        "--batch-size", type=int, dest="batch_size", help="windows per forward (default: auto)"
    )
    parser.add_argument(
        "--no-decode-only", action="store_true", dest="no_decode_only",
        help="skip the decode-only pass",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = [size for size in (args.workers, args.batch_size) if size is not None]
    if args.tracks < 1 or args.seconds <= 0 or min(sizes, default=1) < 1:
        parser.error("--tracks, --workers and --batch-size must be >= 1 and --seconds > 0")
    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    formats = pick_formats()
    with common.work_dir(None, "ingest-e2e") as scratch:
        model, model_label = benchmark_model(args, scratch)
        sample_rate = int(json.loads((Path(model) / "config.json").read_text())["sample_rate"])
        catalogue = scratch / "catalogue"
        started = time.perf_counter()
        write_mix(catalogue, args.tracks, args.seconds, list(formats))
        common.log(
            f"[ingest-e2e] wrote {args.tracks} tracks in {time.perf_counter() - started:.1f} s"
        )
        options = {
            "model": model,
            "device": args.device,
            "batch_size": args.batch_size,
            "workers": args.workers,
        }
        decode_only = None
        if not args.no_decode_only:
            decode_only = run_isolated(_run_decode_only, options, catalogue, sample_rate)
            common.log(f"[ingest-e2e] decode only: {decode_only}")
        runs = []
        for index, precision in enumerate(getattr(args, "precision", None) or [None]):
            run = run_isolated(
                _run_ingest, options | {"precision": precision}, catalogue, scratch / f"data{index}"
            )
            common.log(f"[ingest-e2e] ingest ({precision or 'default precision'}): {run}")
            runs.append(
                {"precision": precision, "ingest": run, "figures": figures(run, decode_only)}
            )
    document |= {
        "host": host_description(),
        "model": model_label,
        "formats": formats,
        "track_seconds": args.seconds,
        "excerpt": DEFAULT_EXCERPT,
        "options": {k: v for k, v in options.items() if k != "model"},
        "decode_only": decode_only,
        # The first run's figures at the top; every run (one per precision) under "runs".
        "ingest": runs[0]["ingest"],
        "figures": runs[0]["figures"],
        "runs": runs,
    }
    if len(runs) > 1:
        document["speedup_vs_first"] = speedups(runs)
    common.print_document(document, text=None if args.json else markdown(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
