"""The server backend's patience: transient failures are retried within a time budget, with
growing jittered waits; refusals are final; messages never carry credentials or raw responses.

The clock and the sleep are fakes: no test here waits for real."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from soundalike.core.errors import StoreError, StoreUnavailable
from soundalike.search.retry import RetryPolicy
from soundalike.search.server_store import ServerBackend, public_url
from soundalike.search.store import open_store

URL = "http://alice:s3cret@qdrant.internal:6333/?api_key=k3y"
SHOWN_URL = "http://qdrant.internal:6333/"
RAW_BODY = b'{"status":{"error":"raw-body-text"},"time":0.1}'


@dataclass
class FakeTime:
    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _refused() -> Exception:
    return ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))


def _status(code: int, reason: str) -> Exception:
    return UnexpectedResponse(code, reason, RAW_BODY, httpx.Headers())


def _backend(
    fake_time: FakeTime,
    outcomes: list[object],
    monkeypatch: pytest.MonkeyPatch,
    *,
    budget: float = 30.0,
    uniform: Callable[[], float] = lambda: 1.0,
) -> tuple[ServerBackend, list[int]]:
    """A backend whose `collection_exists` meets `outcomes` in turn (an exception is raised,
    anything else returned); also returns the list of calls made."""
    client = QdrantClient(":memory:")
    calls: list[int] = []
    pending: Iterator[object] = iter(outcomes)

    def scripted(name: str) -> object:
        calls.append(1)
        outcome = next(pending)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(client, "collection_exists", scripted)
    policy = RetryPolicy(
        total_seconds=budget, sleep=fake_time.sleep, clock=fake_time.clock, uniform=uniform
    )
    backend = ServerBackend(
        client, description=f"Qdrant server {SHOWN_URL}", local=False, url=URL, retry=policy
    )
    return backend, calls


def test_transient_failures_then_success_give_the_result(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend, calls = _backend(
        fake_time,
        [_refused(), _status(503, "Service Unavailable"), _status(429, "Too Many Requests"), True],
        monkeypatch,
    )
    with caplog.at_level(logging.WARNING, logger="soundalike.store"):
        assert backend.collection_exists("tracks") is True
    assert len(calls) == 4
    assert fake_time.waits == [0.25, 0.5, 1.0]  # ceilings, as the draw is 1.0
    warning = caplog.records[0].getMessage()
    assert warning == (
        f"Qdrant at {SHOWN_URL} not reachable (Connection refused); retrying for up to 30 s"
    )
    assert caplog.records[-1].getMessage() == f"Qdrant at {SHOWN_URL} answers again"
    assert "s3cret" not in caplog.text and "k3y" not in caplog.text


def test_a_refusal_is_final_at_once(fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, calls = _backend(fake_time, [_status(400, "Bad Request")], monkeypatch)
    with pytest.raises(StoreError) as info:
        backend.collection_exists("tracks")
    assert not isinstance(info.value, StoreUnavailable)
    assert len(calls) == 1 and fake_time.waits == []
    assert str(info.value) == (
        f"Qdrant server {SHOWN_URL} refused to look up tracks: HTTP 400 Bad Request: raw-body-text"
    )


def test_a_rejected_api_key_says_what_to_check(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, calls = _backend(fake_time, [_status(403, "Forbidden")], monkeypatch)
    with pytest.raises(StoreError, match="HTTP 403 Forbidden.*SOUNDALIKE_QDRANT_API_KEY"):
        backend.collection_exists("tracks")
    assert len(calls) == 1


def test_transient_failures_past_the_budget_are_store_unavailable(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, calls = _backend(
        fake_time, [_status(502, "Bad Gateway")] * 100, monkeypatch, budget=12.0
    )
    started = fake_time.now
    with pytest.raises(StoreUnavailable) as info:
        backend.collection_exists("tracks")
    # Waits 0.25 + 0.5 + 1 + 2 + 4 = 7.75, then 4.25 (the rest of the budget), then give up.
    assert fake_time.waits == [0.25, 0.5, 1.0, 2.0, 4.0, 4.25]
    assert fake_time.now - started == pytest.approx(12.0)
    assert len(calls) == 7
    message = str(info.value)
    assert message.startswith(f"the Qdrant server at {SHOWN_URL} is not reachable (HTTP 502 ")
    assert "SOUNDALIKE_QDRANT_URL" in message
    for secret in ("s3cret", "alice", "k3y", "raw-body-text"):
        assert secret not in message


def test_no_budget_means_no_retry(fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, calls = _backend(fake_time, [_refused(), True], monkeypatch, budget=0.0)
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        backend.collection_exists("tracks")
    assert len(calls) == 1 and fake_time.waits == []


def test_waits_grow_to_the_cap_and_are_jittered_below_their_ceiling(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = RetryPolicy(total_seconds=60.0)
    assert [policy.ceiling(n) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.ceiling(10_000) == 5.0

    draws = iter([0.9, 0.1, 0.5, 0.0, 0.99, 0.3, 0.7, 0.2])
    backend, _ = _backend(
        fake_time,
        [_refused()] * 8 + [False],
        monkeypatch,
        budget=60.0,
        uniform=lambda: next(draws),
    )
    assert backend.collection_exists("tracks") is False
    expected = [0.9 * 0.25, 0.1 * 0.5, 0.5 * 1.0, 0.0, 0.99 * 4.0, 0.3 * 5.0, 0.7 * 5.0, 0.2 * 5.0]
    assert fake_time.waits == pytest.approx(expected)


def test_real_jitter_stays_within_the_ceilings(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, _ = _backend(fake_time, [_refused()] * 30 + [True], monkeypatch, budget=1e6)
    policy = RetryPolicy(total_seconds=1e6)
    assert backend.collection_exists("tracks") is True
    assert len(fake_time.waits) == 30
    assert len(set(fake_time.waits)) > 1
    for n, wait in enumerate(fake_time.waits):
        assert 0.0 <= wait <= policy.ceiling(n)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@qdrant:6333", "http://qdrant:6333"),
        (
            "https://user@qdrant.example.com/prefix?api_key=x#frag",
            "https://qdrant.example.com/prefix",
        ),
        ("http://[::1]:6333", "http://[::1]:6333"),
        ("http://localhost:6333", "http://localhost:6333"),
        ("http://qdrant:notaport", "(an unparseable URL)"),
    ],
)
def test_public_url_drops_credentials_and_queries(url: str, shown: str) -> None:
    assert public_url(url) == shown


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_named_without_its_credentials() -> None:
    port = _free_port()
    with pytest.raises(StoreUnavailable) as info:
        open_store(url=f"http://bob:hunter2@127.0.0.1:{port}", timeout=2.0, retry_seconds=0)
    message = str(info.value)
    assert f"the Qdrant server at http://127.0.0.1:{port} is not reachable" in message
    assert "hunter2" not in message and "bob" not in message
