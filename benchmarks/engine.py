"""Embedding throughput: soundalike's path against the naive reference path, in one run.

    python -m benchmarks.engine [--random-weights | --model M] [--device auto]
        [--clips 3] [--batch-size 1] [--layer 11] [--no-naive] [--steps] [--json]

The benchmark itself is `soundalike.api.bench` (`soundalike bench` runs the same, from an
installed wheel); this module adds the JSON document every benchmark here prints. What each path
is and how its memory is measured: that module's docstring.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from benchmarks.common import bench_parser, document_header, print_document
from soundalike.api.bench import add_bench_flags, format_report, run_from_args

MODULE = "benchmarks.engine"


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(MODULE, __doc__)
    add_bench_flags(parser)
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error("--clips must be >= 1")
    report = run_from_args(args)
    document = document_header(MODULE, sys.argv[1:] if argv is None else argv) | report
    print_document(document, text=None if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
