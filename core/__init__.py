"""The shared core every floor speaks: domain errors, types, identities and artist names.

Imports nothing of ours; `search/`, `ingest/` and `api/` all build on it.
"""
