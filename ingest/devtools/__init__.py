"""Tools for demos, tests and benchmarks, not for the ingest path: synthetic music and random
MERT-layout checkpoints (no hub access needed)."""
