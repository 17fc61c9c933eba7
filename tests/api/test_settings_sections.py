"""Settings reach components as typed sections: what a user sets in the environment arrives
in the section the component reads, and nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundalike.api.settings import Settings


def test_the_environment_reaches_each_section(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "SOUNDALIKE_DATA_DIR": str(tmp_path / "data"),
        "SOUNDALIKE_APPROXIMATE_NEIGHBOURS_ABOVE": "1234",
        "SOUNDALIKE_LIBRARY": f"{tmp_path / 'a'},{tmp_path / 'b'}",
        "SOUNDALIKE_LIBRARY_EXCLUDE": "Podcasts,*.part",
        "SOUNDALIKE_LIBRARY_RESCAN_SECONDS": "60",
        "SOUNDALIKE_WORKERS": "3",
        "SOUNDALIKE_EMBED_CONCURRENCY": "2",
        "SOUNDALIKE_EMBED_QUEUE": "7",
        "SOUNDALIKE_MAX_UPLOAD_MB": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()

    store = settings.store_config()
    assert store.data_dir == tmp_path / "data"
    assert store.neighbours.approximate_above == 1234

    library = settings.library_config()
    assert library.roots == (tmp_path / "a", tmp_path / "b")
    assert library.exclude == ("Podcasts", "*.part")
    assert library.rescan_seconds == 60.0 and library.workers == 3

    uploads = settings.upload_limits()
    assert (uploads.concurrency, uploads.queue) == (2, 7)
    assert uploads.max_bytes == 2 * 1024 * 1024
