"""Fixtures of the mixes tests: tests/subsonic_listener.py."""

from subsonic_listener import ingested_server, listener  # noqa: F401
