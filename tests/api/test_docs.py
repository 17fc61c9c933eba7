"""The docs users read stay true: README's configuration table and quick start match the code."""

from __future__ import annotations

import re
from pathlib import Path

from soundalike.api.cli import build_parser
from soundalike.api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_env_rows() -> dict[str, str]:
    """`| `SOUNDALIKE_X` | default | description |` rows of the configuration table."""
    rows = re.findall(r"^\| `SOUNDALIKE_([A-Z0-9_]+)` \| ([^|]*) \|", README, flags=re.MULTILINE)
    return {name.lower(): default.strip() for name, default in rows}


def test_configuration_table_lists_exactly_the_settings_fields() -> None:
    documented = readme_env_rows()
    assert set(documented) == set(Settings.model_fields), (
        "README configuration table and Settings drifted: "
        f"only in README {sorted(set(documented) - set(Settings.model_fields))}, "
        f"only in Settings {sorted(set(Settings.model_fields) - set(documented))}"
    )


def test_configuration_table_defaults_match() -> None:
    documented = readme_env_rows()
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        if default is None or default == [] or default == "":
            assert documented[name] in {"unset", "empty", "none"}, name
        else:
            assert documented[name].strip("`").removeprefix("./") == str(default), name


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in README and "make test" in ci
    assert "make demo" in README


def test_every_cli_command_is_documented() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"soundalike {command}" in README, command
