"""soundalike's benchmarks, one module each, all run the same way from a checkout (the
repository root as the working directory, or on sys.path; the wheel does not carry them):

    python -m benchmarks.engine [--random-weights] [--clips 3] ...
    python -m benchmarks.ingest [--tracks 100 1000] ...
    python -m benchmarks.store [--tracks 100000] [--recall] ...
    python -m benchmarks.http [--artists 100000] ...

Each takes `--help` and prints one JSON document on the last line of stdout (date, machine,
command and its figures); progress goes to stderr. The engine benchmark is
`soundalike.api.bench`, which the wheel carries as `soundalike bench`; the machine description,
memory figures and isolated processes are there too. The other shared helpers (the store spec,
percentiles, a `soundalike serve` subprocess) are in `common`.
"""
