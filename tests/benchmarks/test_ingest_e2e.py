"""The end-to-end ingest benchmark: a tiny real run's report, the figures read off known
timings, and the model-only replica benchmark's layouts."""

from __future__ import annotations

import json

import pytest

from benchmarks.cpu_replicas import main as replicas_main
from benchmarks.ingest_e2e import HAS_PRECISION, figures, main, pick_formats


def test_figures_from_known_timings_on_the_cpu() -> None:
    run = {
        "tracks": 4,
        "windows": 4,
        "wall_seconds": 10.0,
        "device": "cpu",
        "stage_seconds": {"decode": 1.0, "embed": 8.0, "write": 0.5},
    }
    out = figures(run, {"tracks_per_s": 2.0})
    assert out["tracks_per_s"] == 0.4 and out["windows_per_s"] == 0.4
    # The CPU has no host→device copy: reported as not applicable, forward is all of embed.
    assert out["seconds"]["copy"] is None and out["seconds"]["forward"] == 8.0
    assert out["seconds"]["rest"] == 0.5
    assert out["model_busy_fraction"] == 0.8
    assert out["share_of_decode_only_rate"] == 0.2


def test_figures_on_cuda_take_the_copy_out_of_embed() -> None:
    run = {
        "tracks": 8,
        "windows": 8,
        "wall_seconds": 2.0,
        "device": "cuda:0",
        "stage_seconds": {"decode": 0.2, "embed": 1.0, "write": 0.1},
        "copy_measured_apart_seconds": 0.25,
    }
    seconds = figures(run, None)["seconds"]
    assert seconds["copy"] == 0.25 and seconds["forward"] == 0.75


def test_the_mix_has_a_compressed_format() -> None:
    assert set(pick_formats()) & {"mp3", "opus", "ogg", "flac"}


@pytest.mark.slow
def test_a_tiny_run_reports_rates_and_stage_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    # Where the settings have a precision, the same files are ingested once per precision.
    precisions = ["--precision", "fp32,auto"] if HAS_PRECISION else []
    assert main(["--tiny", "--tracks", "3", "--seconds", "4", *precisions, "--json"]) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(document["runs"]) == (2 if HAS_PRECISION else 1)
    if HAS_PRECISION:
        assert set(document["speedup_vs_first"]) == {"auto"}
        assert all(run["ingest"]["tracks"] == 3 for run in document["runs"])
    assert {"date", "command", "host", "formats", "ingest", "decode_only"} <= set(document)
    assert document["host"]["lscpu"]["flags"] is not None or document["machine"]["cpu"]
    assert document["ingest"]["tracks"] == 3 and document["ingest"]["peak_rss_mb"] > 0
    fig = document["figures"]
    assert fig["tracks_per_s"] > 0 and fig["windows_per_s"] > 0
    assert {"decode", "copy", "forward", "write"} <= set(fig["seconds"])
    assert fig["seconds"]["forward"] > 0 and fig["seconds"]["decode"] >= 0
    assert 0 < fig["model_busy_fraction"] <= 1
    assert fig["decode_only_tracks_per_s"] > 0


@pytest.mark.slow
def test_replica_layouts_each_report_a_rate(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--tiny", "--replicas", "1,2", "--windows", "2", "--batch-size", "1", "--cores", "2"]
    assert replicas_main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    layouts = document["layouts"]
    assert [(row["replicas"], row["threads_each"]) for row in layouts] == [(1, 2), (2, 1)]
    assert all(row["windows"] == 2 and row["windows_per_s"] > 0 for row in layouts)
    assert document["fastest"] in {"1 x 2 threads", "2 x 1 threads"}
