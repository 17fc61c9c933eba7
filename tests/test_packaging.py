"""The wheel carries every package: a sub-package missing from pyproject.toml works from a
checkout (editable install) and is absent once installed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_source_tree_is_declared() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    declared = set(setuptools["packages"])
    folders = setuptools["package-dir"]
    assert set(folders) == declared
    found = {
        "soundalike." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("core", "ingest", "search", "mixes", "api")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found == declared
    for package, folder in folders.items():
        assert (ROOT / folder / "__init__.py").is_file(), package


def test_the_image_copies_every_package_folder() -> None:
    """The Dockerfile installs from copied folders: a new top-level package (core/) left out of
    its COPY lines builds an image that cannot import it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    tops = {folder.split("/")[0] for folder in config["tool"]["setuptools"]["package-dir"].values()}
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert tops <= copied, f"not copied into the image: {sorted(tops - copied)}"
