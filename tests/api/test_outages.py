"""Outages and slow dependencies: fixed 503s that leak nothing, liveness that never waits on the
store, a deadline on every request, and keys that cannot be empty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from soundalike.api.cli import main
from soundalike.api.deps import get_store
from soundalike.api.settings import Settings
from soundalike.core.errors import StoreLocked, StoreUnavailable

ClientFactory = Callable[..., AbstractContextManager[TestClient]]
KEY = "an-api-key-of-24-chars!!"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            StoreUnavailable("http://admin:hunter2@qdrant:6333 said: 502 <html>raw</html>"),
            "the store is not reachable",
        ),
        (
            StoreLocked("/srv/secret-data-dir is locked by pid 4242"),
            "the store's data dir is in use by another soundalike process",
        ),
    ],
)
def test_store_outages_answer_a_fixed_503_with_retry_after(
    client: TestClient, error: Exception, said: str
) -> None:
    def failing() -> None:
        raise error

    client.app.dependency_overrides[get_store] = failing  # type: ignore[attr-defined]
    try:
        response = client.get("/artists")
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    request_id = response.headers["x-request-id"]
    assert response.json() == {"detail": f"{said}; retry shortly (request id {request_id})"}
    for secret in ("hunter2", "admin", "qdrant:6333", "<html>", "/srv/secret", "4242"):
        assert secret not in response.text


def test_readiness_counts_are_for_key_holders_only(make_client: ClientFactory) -> None:
    with make_client(api_key=KEY) as locked:
        anonymous = locked.get("/readyz")
        holder = locked.get("/readyz", headers={"Authorization": f"Bearer {KEY}"})
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
    counts = holder.json()
    assert counts.pop("lookups_in_memory") in (True, False)  # read in the background
    assert counts == {"status": "ready", "artists": 4, "tracks": 12}


def test_liveness_answers_while_every_worker_thread_waits_on_the_store(
    make_client: ClientFactory,
) -> None:
    release = threading.Event()

    def stuck_store() -> None:
        release.wait(20)  # a Qdrant that silently drops traffic
        raise StoreUnavailable("timed out")

    with make_client(request_timeout_seconds=30) as client:
        app = client.app
        # One worker thread, so a single stuck request holds the whole pool.
        client.portal.call(  # type: ignore[union-attr]
            lambda: setattr(anyio.to_thread.current_default_thread_limiter(), "total_tokens", 1)
        )
        app.dependency_overrides[get_store] = stuck_store  # type: ignore[attr-defined]
        waiting = threading.Thread(target=lambda: client.get("/artists"))
        waiting.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            live = client.get("/healthz")
            elapsed = time.monotonic() - started
        finally:
            release.set()
            waiting.join(20)
            app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert live.status_code == 200 and elapsed < 2.0


def test_a_request_past_its_deadline_gets_503(make_client: ClientFactory) -> None:
    release = threading.Event()

    def slow_store() -> None:
        release.wait(10)
        raise StoreUnavailable("too late")

    with make_client(request_timeout_seconds=0.5) as client:
        # Stuck where both the route and the artists-like-X fast path get their store: not
        # open yet, and opening it hangs.
        services = client.app.state.services  # type: ignore[attr-defined]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(services, "opened_store", lambda: None)
            patch.setattr(services, "store", slow_store)
            try:
                started = time.monotonic()
                response = client.get("/artists/anyone/similar")
                elapsed = time.monotonic() - started
            finally:
                release.set()
        assert client.get("/healthz").status_code == 200  # the late request harmed nothing
    assert response.status_code == 503 and elapsed < 5
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"].startswith("no answer within 0.5 s; retry shortly")


@pytest.mark.parametrize("key", ["", "short-key"])
def test_an_empty_or_short_api_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_key=key)


def test_serve_refuses_to_start_with_an_empty_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An unset `${API_KEY}` in a compose file gives exactly this.
    monkeypatch.setenv("SOUNDALIKE_API_KEY", "")
    assert main(["serve", "--data-dir", str(tmp_path / "data")]) == 2
    assert "api_key: Value error, must be at least 16 characters" in capsys.readouterr().err
