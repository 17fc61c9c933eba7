"""Module constants set for one test (tuning knobs shrunk so small data takes the big paths)."""

from __future__ import annotations

from types import ModuleType

import pytest


def set_constants(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **values: object) -> None:
    """monkeypatch.setattr(module, NAME, value) for each NAME=value; each name must exist."""
    for name, value in values.items():
        monkeypatch.setattr(module, name, value)
