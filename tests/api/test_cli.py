"""The `soundalike` command line as a user runs it: subprocesses, exit codes, `--json` shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.search.store import open_store


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soundalike.api.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
    )


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALIKE_")}
    env.update({"HF_HUB_OFFLINE": "1", **extra})
    return env


def ingest_with_cli(
    catalogue: Path, model_dir: Path, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "ingest",
        str(catalogue),
        "--model",
        str(model_dir),
        "--data-dir",
        str(data_dir),
        "--workers",
        "1",
        "--json",
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-catalogue")
    write_catalogue(root, artists=3, tracks_per_artist=2, seconds=5.0, formats=("flac", "mp3"))
    broken = sorted(p for p in root.iterdir() if p.is_dir())[0] / "broken.flac"
    broken.write_bytes(b"fLaC" + os.urandom(4000))
    return root


@pytest.fixture(scope="module")
def ingested(
    catalogue: Path, tiny_mert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("cli-data")
    result = ingest_with_cli(catalogue, tiny_mert_dir, data_dir)
    assert result.returncode == 0, result.stderr
    return data_dir, last_json(result.stdout)


def test_ingest_json_summary(ingested: tuple[Path, dict]) -> None:
    _, summary = ingested
    assert set(summary) == {
        "ingested", "skipped", "failed", "artists_updated", "seconds", "windows", "stage_seconds"
    }  # fmt: skip
    assert summary["ingested"] == 6
    # The same figures /metrics exports for a server's own ingest: one window per track here.
    assert summary["windows"] == 6
    assert set(summary["stage_seconds"]) == {"decode", "embed", "write"}
    assert all(seconds > 0 for seconds in summary["stage_seconds"].values())
    assert summary["artists_updated"] == 3
    assert [Path(f["path"]).name for f in summary["failed"]] == ["broken.flac"]
    assert summary["failed"][0]["reason"]


def test_artists_and_similar(ingested: tuple[Path, dict]) -> None:
    data_dir, _ = ingested
    listing = last_json(run_cli("artists", "--data-dir", str(data_dir), "--json").stdout)
    names = [row["artist"] for row in listing["artists"]]
    assert len(names) == 3 and all(row["track_count"] == 2 for row in listing["artists"])

    query = names[0].upper()  # names match case-insensitively
    result = run_cli("similar", query, "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    similar = last_json(result.stdout)
    assert similar["artist"] == names[0]
    assert [r["artist"] for r in similar["results"]] != []
    assert names[0] not in [r["artist"] for r in similar["results"]]
    scores = [r["score"] for r in similar["results"]]
    assert scores == sorted(scores, reverse=True)


def test_unknown_artist_exits_1_with_suggestions(ingested: tuple[Path, dict]) -> None:
    data_dir, _ = ingested
    listing = last_json(run_cli("artists", "--data-dir", str(data_dir), "--json").stdout)
    real = listing["artists"][0]["artist"]
    typo = real[:-1] + ("x" if real[-1] != "x" else "y")
    result = run_cli("similar", typo, "--data-dir", str(data_dir), "--json")
    assert result.returncode == 1
    assert real in last_json(result.stdout)["suggestions"]
    assert "unknown artist" in result.stderr


def test_embed_json(catalogue: Path, tiny_mert_dir: Path) -> None:
    track = next(p for p in sorted(catalogue.rglob("*.flac")) if p.name != "broken.flac")
    result = run_cli("embed", str(track), "--model", str(tiny_mert_dir), "--json")
    assert result.returncode == 0, result.stderr
    document = last_json(result.stdout)
    assert document["dim"] == len(document["vector"])
    assert abs(sum(x * x for x in document["vector"]) - 1.0) < 1e-4
    assert document["spec"]["layer"] == 11
    assert document["spec"]["excerpt"] == "centre"


def test_eval_writes_report_of_stored_vectors(ingested: tuple[Path, dict], tmp_path: Path) -> None:
    data_dir, _ = ingested
    out = tmp_path / "report"
    result = run_cli("eval", "--out", str(out), "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = last_json(result.stdout)
    # The span is max minus min of the cosines between distinct artists' stored centroids.
    with open_store(data_dir=data_dir) as store:
        artists = store.get_artists(store.artist_names(), with_centroid=True).values()
        centroids = np.asarray([a.centroid for a in artists], dtype=np.float64)
    cosines = (centroids @ centroids.T)[np.triu_indices(len(centroids), k=1)]
    assert report["span"] == pytest.approx(cosines.max() - cosines.min(), abs=1e-5)
    assert report["artists"] == 3 and report["tracks"] == 6
    for name in ("report.md", "report.json", "heatmap.png", "map.png"):
        assert (out / name).stat().st_size > 0, name


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("ingest", str(tmp_path / "missing")).returncode == 2
    assert run_cli("ingest", str(tmp_path), "--layer", "13").returncode == 2
    assert run_cli("ingest", str(tmp_path), "--shard", "5/2").returncode == 2
    assert run_cli("similar").returncode == 2
    several = run_cli("serve", "--http-workers", "2", "--data-dir", str(tmp_path))
    assert several.returncode == 2 and "Qdrant server" in several.stderr
    mixes = run_cli("serve", "--http-workers", "2", "--qdrant-url", "http://127.0.0.1:9",
                    env=cli_env(SOUNDALIKE_MIXES_URL="subsonic+http://me@127.0.0.1:9"))  # fmt: skip
    assert mixes.returncode == 2 and "SOUNDALIKE_MIXES_URL needs --http-workers 1" in mixes.stderr


def test_delete_removes_artist(ingested: tuple[Path, dict], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(ingested[0], data_dir)  # the ingested store, without ingesting it again
    names = [
        r["artist"]
        for r in last_json(run_cli("artists", "--data-dir", str(data_dir), "--json").stdout)[
            "artists"
        ]
    ]
    deleted = run_cli("delete", "--artist", names[0], "--data-dir", str(data_dir), "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert last_json(deleted.stdout)["tracks_deleted"] == 2
    left = last_json(run_cli("artists", "--data-dir", str(data_dir), "--json").stdout)["artists"]
    assert [r["artist"] for r in left] == names[1:]


def test_demo_ingests_a_generated_catalogue_and_prints_neighbours(
    tiny_mert_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", str(out), "--model", str(tiny_mert_dir), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "15 tracks embedded" in result.stdout
    assert result.stdout.count("artists like ") == 5
    assert "artist similarity" in result.stdout
    assert f"soundalike serve --data-dir {out / 'data'}" in result.stdout
    formats = {p.suffix for p in (out / "catalogue").rglob("*") if p.is_file()}
    assert len(formats) >= 4

    again = run_cli("demo", "--out", str(out), "--model", str(tiny_mert_dir), "--workers", "1")
    assert again.returncode == 0 and "15 already stored" in again.stdout


@pytest.mark.slow
def test_serve_with_several_workers_on_a_server_store(tmp_path: Path) -> None:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the Qdrant URL: the workers must start, be alive and say not ready.
    args = [
        "serve",
        "--http-workers",
        "2",
        "--port",
        str(port),
        "--qdrant-url",
        "http://127.0.0.1:9",
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", "soundalike.api.cli", *args],
        env=cli_env(SOUNDALIKE_QDRANT_TIMEOUT="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not come up")
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("the store is not reachable; retry shortly")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert stderr.count("Started server process") == 2
    # The operator's log names the server that does not answer; the client's body does not.
    assert "http://127.0.0.1:9" in stderr


def test_neighbours_reports_the_lists_and_rebuilds_them(
    copy_data_dir: Callable[[], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from soundalike.api.cli import main
    from soundalike.search.store import open_store

    data_dir = copy_data_dir()
    with open_store(data_dir=data_dir) as store:
        (victim,) = store.get_artists(
            [store.list_artists(limit=1)[0][0].artist_key], with_centroid=True
        ).values()
        store.upsert_artists([victim])  # any centroid write makes the stored lists stale
    assert main(["neighbours", "--data-dir", str(data_dir), "--json"]) == 0
    assert last_json(capsys.readouterr().out) == {
        "valid": False,
        "catalogue_version": None,
        "exact": None,
    }
    assert main(["neighbours", "--rebuild", "--data-dir", str(data_dir), "--json"]) == 0
    rebuilt = last_json(capsys.readouterr().out)
    assert rebuilt["valid"] is True and rebuilt["rebuilt"]["artists"] == 4
    assert rebuilt["exact"] is True
    with open_store(data_dir=data_dir) as store:
        assert store.neighbour_lists_version() == rebuilt["catalogue_version"]


def test_approximate_lists_are_a_setting_of_the_store_zero_meaning_never() -> None:
    from soundalike.api.settings import Settings
    from soundalike.search.neighbours import APPROXIMATE_ABOVE

    assert Settings().store_config().neighbours.approximate_above == APPROXIMATE_ABOVE
    never = Settings(approximate_neighbours_above=0).store_config()
    assert never.neighbours.approximate_above is None


def test_a_shard_that_owns_no_artist_succeeds_with_nothing_to_do(
    catalogue: Path, tiny_mert_dir: Path, tmp_path: Path
) -> None:
    """N ingest workers over a catalogue of fewer artists: the idle ones exit 0 (an indexed
    Kubernetes Job retries a failed index and waits for it before the lists' rebuild)."""
    from soundalike.core.artist_names import artist_key
    from soundalike.ingest.stages import Shard

    keys = [artist_key(folder.name) for folder in catalogue.iterdir() if folder.is_dir()]
    count = 64
    idle = next(i for i in range(count) if not any(Shard(i, count).owns(k) for k in keys))
    result = run_cli(
        "ingest", str(catalogue), "--model", str(tiny_mert_dir), "--workers", "1",
        "--data-dir", str(tmp_path / "data"), "--shard", f"{idle}/{count}", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["ingested"] == summary["skipped"] == 0 and summary["failed"] == []
    nothing = tmp_path / "no-music"
    nothing.mkdir()
    unsharded = run_cli("ingest", str(nothing), "--model", str(tiny_mert_dir), "--workers", "1",
                        "--data-dir", str(tmp_path / "data2"), "--json")  # fmt: skip
    assert unsharded.returncode == 1  # an unsharded run that finds nothing still fails
