"""`SOUNDALIKE_PRECISION` / `--precision`: the setting, the flag, and the model loaders it
reaches (ingest, embed, serve, eval share the model flags; bench has its own)."""

from __future__ import annotations

from typing import Any

import pytest

from soundalike.api import services
from soundalike.api.cli import UsageError, build_parser, settings_from
from soundalike.api.settings import Settings


def test_the_default_is_auto_and_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().precision == "auto"
    monkeypatch.setenv("SOUNDALIKE_PRECISION", "fp32")
    assert Settings().precision == "fp32"


@pytest.mark.parametrize("command", ["ingest", "embed", "serve", "eval", "bench"])
def test_every_model_command_takes_the_flag(command: str) -> None:
    argv = [command, "x"] if command in ("ingest", "embed") else [command]
    args = build_parser().parse_args([*argv, "--precision", "bf16"])
    assert args.precision == "bf16"
    if command != "bench":
        assert settings_from(args).precision == "bf16"


def test_an_unknown_precision_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDALIKE_PRECISION", "fp16")
    args = build_parser().parse_args(["embed", "x"])
    with pytest.raises(UsageError, match="precision"):
        settings_from(args)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed", "x", "--precision", "fp16"])


def test_the_loaders_hand_the_precision_to_load_mert(monkeypatch: pytest.MonkeyPatch) -> None:
    from soundalike.ingest import model

    asked: list[Any] = []
    monkeypatch.setattr(model, "load_mert", lambda *a, **kw: asked.append(kw["precision"]))
    settings = Settings(precision="fp32", device="cpu")
    services.load_model_for(settings, "m", None, 11)
    services.load_model_for(settings, "m", None, 11, "bf16")  # the evaluation's second pass
    assert asked == ["fp32", "bf16"]
