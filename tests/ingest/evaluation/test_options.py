"""What `soundalike eval` accepts: every option checked when the options are built."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.evaluation.options import Comparison, EvaluationOptions, LayerChoice


def test_layers_are_parsed_then_checked_against_the_model() -> None:
    assert LayerChoice.parse("all").resolve(12) == list(range(13))
    assert LayerChoice.parse("11, 0,3,3").resolve(12) == [0, 3, 11]
    assert LayerChoice.parse("4").resolve(4) == [4]
    with pytest.raises(InvalidRequest, match="layer 13 does not exist; the model has 0..12"):
        LayerChoice.parse("13").resolve(12)
    for bad in ("-1", "", "1,,2", "eleven"):
        with pytest.raises(InvalidRequest, match="list like"):
            LayerChoice.parse(bad)


def test_comparisons() -> None:
    assert Comparison.parse("chunked") == Comparison("chunked", 10.0)
    assert Comparison.parse("Chunked:2.5") == Comparison("chunked", 2.5)
    assert Comparison.parse("artist-model") == Comparison("artist-model")
    for bad in ("chunked:0", "chunked:-3", "chunked:nan", "chunked:x"):
        with pytest.raises(InvalidRequest, match="seconds > 0"):
            Comparison.parse(bad)
    with pytest.raises(InvalidRequest, match="use 'chunked'"):
        Comparison.parse("chunks")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k": 0}, "--k must be >= 1"),
        ({"sample": 0}, "--sample must be >= 1"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
        ({"compare": "chunks"}, "--compare"),
        ({"layers": "0-12"}, "--layers"),
        ({"artist_from": "titles"}, "--artist-from"),
    ],
)
def test_bad_options_are_refused_when_built(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        EvaluationOptions(out_dir=Path("out"), **change)  # type: ignore[arg-type]


def test_what_makes_a_run_re_embed_audio() -> None:
    out = Path("out")
    assert not EvaluationOptions(out_dir=out).must_embed()
    # The artist-model comparison works on stored vectors; chunks must be embedded.
    assert not EvaluationOptions(out_dir=out, compare="artist-model").must_embed()
    assert EvaluationOptions(out_dir=out, compare="chunked:5").must_embed()
    assert EvaluationOptions(out_dir=out, compare="chunked:5").chunk_seconds() == 5.0
    assert EvaluationOptions(out_dir=out, layers="11").must_embed()
    assert EvaluationOptions(out_dir=out, source=Path("music")).must_embed()
