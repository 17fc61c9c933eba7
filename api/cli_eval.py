"""`soundalike eval`: how well the vectors separate artists (ingest/evaluation), from the
command line. Its parser flags stay in cli.py's build_parser with the other commands'."""

from __future__ import annotations

import argparse
import sys

from soundalike.api.services import Services


def cmd_eval(args: argparse.Namespace) -> int:
    """`soundalike eval`: the options from the flags and settings, the report written."""
    # The CLI's helpers, imported when the command runs: cli.py imports this module.
    from soundalike.api.cli import EXIT_OK, UsageError, emit, settings_from
    from soundalike.ingest.defaults import DEFAULT_BATCH_SIZE
    from soundalike.ingest.evaluation import EvaluationOptions, run_evaluation
    from soundalike.ingest.excerpt import ExcerptPolicy

    settings = settings_from(args)
    if args.path is not None and not args.path.exists():
        raise UsageError(f"{args.path} does not exist")
    options = EvaluationOptions(
        out_dir=args.out,
        source=args.path,
        layers=args.layers,
        sample=args.sample,
        compare=args.compare,
        reference=args.reference,
        centre_vectors=args.centre,
        k=args.k,
        # Only a model the user named: otherwise re-embedding uses the catalogue's own.
        model=args.model,
        revision=settings.revision,
        batch_size=settings.batch_size or DEFAULT_BATCH_SIZE,
        layer=settings.layer,
        excerpt=ExcerptPolicy.parse(settings.excerpt),
        window_seconds=settings.window_seconds,
        min_duration_seconds=settings.min_duration_seconds,
        silence_rms=settings.silence_rms,
        artist_from=args.artist_from,
    )
    with Services(settings) as services:
        # A folder or manifest is embedded afresh: it needs no store.
        result = run_evaluation(
            options,
            store=services.store() if args.path is None else None,
            load_model=services.load_model,
            log=lambda line: print(line, file=sys.stderr),
        )
    if args.json:
        emit(result.report)
    else:
        print(result.summary_text)
        print(f"report: {args.out / 'report.md'}")
    return EXIT_OK
