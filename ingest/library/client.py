"""Talking to a running server's library from the command line: hand it a folder
(`soundalike ingest DIR --server URL`) or print its state (`soundalike library status`)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from soundalike.core.errors import SoundalikeError

TIMEOUT_SECONDS = 30.0


class ServerUnreachable(SoundalikeError):
    """The server did not answer, or answered with an error (its `detail` is the message)."""


def call(
    url: str, method: str, route: str, *, body: Any = None, api_key: str | None = None
) -> dict[str, Any]:
    """One JSON request to the server at `url`; the decoded JSON answer."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + route, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return dict(json.loads(response.read().decode("utf-8")))
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read().decode("utf-8")).get("detail")
        except (ValueError, AttributeError):
            detail = None
        raise ServerUnreachable(f"{url} answered {error.code}: {detail or error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ServerUnreachable(f"cannot reach the soundalike server at {url}: {reason}") from None


def hand_over(url: str, folder: str, api_key: str | None) -> dict[str, Any]:
    """Asks the server to scan `folder` (it must be under one of its library folders, or the
    server must allow adding folders); the library's state after the request."""
    return call(
        url, "POST", "/library/scan", body={"path": os.path.abspath(folder)}, api_key=api_key
    )


def status(url: str, api_key: str | None) -> dict[str, Any]:
    return call(url, "GET", "/library", api_key=api_key)


def describe(state: dict[str, Any]) -> str:
    """The state as a few lines for a terminal."""
    lines = [f"library: {state.get('state')}"]
    for root in state.get("roots", []):
        lines.append(f"  folder: {root}")
    lines.append(
        f"  files seen {state.get('files_seen')}, queued {state.get('queued')}, "
        f"ingested {state.get('ingested')}, failed {state.get('failed')}, "
        f"removed {state.get('removed')}"
    )
    if state.get("eta_seconds") is not None:
        lines.append(f"  about {state['eta_seconds']:.0f} s left")
    lines.append(
        f"  last scan started {state.get('last_scan_started') or '-'}, "
        f"finished {state.get('last_scan_finished') or '-'}"
    )
    for failure in state.get("failures", []):
        lines.append(f"  failed: {failure['path']}: {failure['reason']}")
    return "\n".join(lines)
