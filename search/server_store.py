"""The server backend: a Qdrant server or cluster through qdrant-client.

Also runs qdrant-client's local mode (`:memory:` or a path), which is the test double of a
server: same API, no payload indexes, no shards. Writes wait for the server (`wait=True`).
Transient failures (connection errors, timeouts, 429, 5xx) are retried with capped exponential
backoff for up to `retry_seconds` in all, so a Qdrant restart does not abort a long ingest;
a refusal (any other 4xx) is final at once. The embedding spec lives in the collection's
metadata (Qdrant >= 1.16).

Messages name the server by its URL without userinfo (no user:password) and never quote the
server's raw response.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from soundalike.core.errors import StoreError, StoreUnavailable
from soundalike.search.backend import (
    QUANTILE,
    IndexKind,
    Recommendation,
    Scalar,
    Scan,
    ScoredRead,
    StoredPoint,
    VectorQuery,
    Where,
    point_from_record,
    scroll_pages,
    spell_filter,
)
from soundalike.search.retry import RetryPolicy

T = TypeVar("T")

log = logging.getLogger("soundalike.store")

_INDEX_SCHEMAS: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_CONFLICT = 409
OPTIMIZE_WAIT_S = 600.0
# Payload updates per request (each point's payload differs, so one operation each).
SET_PAYLOAD_BATCH = 256


def public_url(url: str) -> str:
    """`url` fit for messages and logs: no user:password@, no query string or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparseable URL)"
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def unavailable_message(url: str, problem: str) -> str:
    return (
        f"the Qdrant server at {public_url(url)} is not reachable ({problem}): start it "
        "(docker compose up qdrant), check SOUNDALIKE_QDRANT_URL and "
        "SOUNDALIKE_QDRANT_API_KEY, or unset SOUNDALIKE_QDRANT_URL to use the embedded store"
    )


class ServerBackend:
    """`Backend` over a qdrant-client connection."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        description: str,
        local: bool,
        url: str = "",
        shard_number: int = 1,
        replication_factor: int = 1,
        retry: RetryPolicy | None = None,
    ) -> None:
        """`retry`: how long and how to wait on transient failures (default: not at all)."""
        self._client = client
        self.description = description
        self._local = local
        self._url = public_url(url) if url else description
        # Local mode is one process's memory or file: no one else writes to it.
        self.shared = not local
        self._shard_number = shard_number
        self._replication_factor = replication_factor
        self._retry = retry or RetryPolicy(total_seconds=0.0)
        self._closed = False

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        shard_number: int = 1,
        replication_factor: int = 1,
        retry_seconds: float = 0.0,
    ) -> ServerBackend:
        """Connects and checks the server answers (retrying for up to `retry_seconds`);
        StoreUnavailable when it does not."""
        try:
            client = QdrantClient(
                url=url,
                api_key=api_key,
                timeout=max(1, math.ceil(timeout)),
                check_compatibility=False,
            )
        except ValueError:
            # qdrant-client's message would repeat the URL, credentials included.
            raise StoreError(
                f"SOUNDALIKE_QDRANT_URL {public_url(url)} is not a usable URL: give "
                "http(s)://host:port"
            ) from None
        backend = cls(
            client,
            description=f"Qdrant server {public_url(url)}",
            local=False,
            url=url,
            shard_number=shard_number,
            replication_factor=replication_factor,
            retry=RetryPolicy(total_seconds=retry_seconds),
        )
        try:
            backend._call("list the collections", client.get_collections)
        except StoreError:
            client.close()
            raise
        return backend

    @classmethod
    def in_memory(cls) -> ServerBackend:
        return cls(QdrantClient(":memory:"), description="in-memory Qdrant", local=True)

    @classmethod
    def local_path(cls, path: Path) -> ServerBackend:
        """qdrant-client's local mode persisted under `path` (benchmarks and comparisons)."""
        return cls(QdrantClient(path=str(path)), description=f"local Qdrant {path}", local=True)

    # --- calls -------------------------------------------------------------------------

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        """`fn()`, retrying transient failures within the retry budget."""
        if self._closed:
            raise StoreError(f"the store on {self.description} is closed")
        policy = self._retry
        deadline: float | None = None
        retry = 0
        while True:
            try:
                result = fn()
            except (ResponseHandlingException, httpx.TransportError) as exc:
                failure: Exception = exc
                problem = _transport_problem(exc)
            except UnexpectedResponse as exc:
                if exc.status_code not in _TRANSIENT_STATUS:
                    raise StoreError(
                        f"{self.description} refused to {doing}: {_refusal(exc)}"
                    ) from exc
                failure, problem = exc, _status_text(exc)
            except (ValueError, KeyError) as exc:  # local mode reports misuse this way
                raise StoreError(f"{self.description} could not {doing}: {exc}") from exc
            else:
                if retry:
                    log.warning("Qdrant at %s answers again", self._url)
                return result
            now = policy.clock()
            if deadline is None:
                deadline = now + policy.total_seconds
                if policy.total_seconds > 0:
                    log.warning(
                        "Qdrant at %s not reachable (%s); retrying for up to %g s",
                        self._url,
                        problem,
                        policy.total_seconds,
                    )
            remaining = deadline - now
            if remaining <= 0:
                raise StoreUnavailable(unavailable_message(self._url, problem)) from failure
            policy.sleep(policy.wait(retry, remaining))
            retry += 1

    # --- collections -------------------------------------------------------------------

    def collection_exists(self, name: str) -> bool:
        return self._call(f"look up {name}", lambda: self._client.collection_exists(name))

    def create_collection(self, name: str, dim: int, *, quantized: bool = False) -> bool:
        if self.collection_exists(name):
            return False
        vectors = qm.VectorParams(
            size=dim, distance=qm.Distance.COSINE, on_disk=True if quantized else None
        )
        quantization = (
            qm.ScalarQuantization(
                scalar=qm.ScalarQuantizationConfig(
                    type=qm.ScalarType.INT8, quantile=QUANTILE, always_ram=True
                )
            )
            if quantized
            else None
        )
        layout: dict[str, Any] = (
            {}
            if self._local
            else {
                "shard_number": self._shard_number,
                "replication_factor": self._replication_factor,
            }
        )

        def create() -> bool:
            # Another process may create it between the look-up and here (shard workers
            # starting together): "already exists" is then an answer, not a failure.
            try:
                self._client.create_collection(
                    name, vectors_config=vectors, quantization_config=quantization, **layout
                )
            except UnexpectedResponse as exc:
                if exc.status_code == _CONFLICT:
                    return False
                raise
            except ValueError as exc:
                if "already exists" in str(exc):  # local mode's way of saying 409
                    return False
                raise
            return True

        return self._call(f"create the collection {name}", create)

    def vector_size(self, name: str) -> int:
        info = self._call(f"read {name}", lambda: self._client.get_collection(name))
        vectors = info.config.params.vectors
        if isinstance(vectors, dict):  # named vectors: ours is the unnamed default
            vectors = vectors.get("")
        if not isinstance(vectors, qm.VectorParams):
            raise StoreError(f"collection {name} in {self.description} has no unnamed vector")
        return int(vectors.size)

    def drop_collection(self, name: str) -> None:
        self._call(f"drop {name}", lambda: self._client.delete_collection(name))

    def read_metadata(self, name: str) -> dict[str, Any]:
        info = self._call(f"read {name}", lambda: self._client.get_collection(name))
        return dict(info.config.metadata or {})

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self._call(
            f"write the metadata of {name}",
            lambda: self._client.update_collection(name, metadata=metadata),
        )

    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        # Qdrant merges the given keys into the stored metadata (local mode too).
        self.write_metadata(name, changes)

    def create_index(self, name: str, field_name: str, kind: IndexKind) -> None:
        def create() -> None:
            with warnings.catch_warnings():
                # Local mode warns that indexes do nothing there; a server uses them.
                warnings.simplefilter("ignore", UserWarning)
                self._client.create_payload_index(
                    name, field_name, field_schema=_INDEX_SCHEMAS[kind], wait=True
                )

        self._call(f"index {field_name} of {name}", create)

    # --- points ------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        structs = [
            qm.PointStruct(id=p.id, vector=p.vector or [], payload=p.payload) for p in points
        ]
        self._call(f"write to {name}", lambda: self._client.upsert(name, points=structs, wait=True))

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool, with_vectors: bool
    ) -> list[StoredPoint]:
        records = self._call(
            f"read from {name}",
            lambda: self._client.retrieve(
                name, list(ids), with_payload=with_payload, with_vectors=with_vectors
            ),
        )
        return [point_from_record(r, with_vectors) for r in records]

    def set_payloads(self, name: str, payloads: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for start in range(0, len(payloads), SET_PAYLOAD_BATCH):
            operations = [
                qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=fields, points=[pid]))
                for pid, fields in payloads[start : start + SET_PAYLOAD_BATCH]
            ]
            self._call(
                f"write to {name}",
                functools.partial(
                    self._client.batch_update_points, name, update_operations=operations, wait=True
                ),
            )

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        self._delete(name, qm.PointIdsList(points=list(ids)))

    def delete_where(self, name: str, where: Where) -> None:
        query_filter = _server_filter(where)
        if query_filter is None:
            raise StoreError(f"refusing to delete from {name} with an empty filter")
        self._delete(name, qm.FilterSelector(filter=query_filter))

    def _delete(self, name: str, selector: qm.PointIdsList | qm.FilterSelector) -> None:
        self._call(
            f"delete from {name}",
            lambda: self._client.delete(name, points_selector=selector, wait=True),
        )

    def scroll(self, name: str, scan: Scan) -> Iterator[StoredPoint]:
        query_filter = _server_filter(scan.where)
        payload: Any = list(scan.fields) if scan.fields else True

        def page(offset: Any) -> tuple[Sequence[Any], Any]:
            return self._call(
                f"read from {name}",
                lambda: self._client.scroll(
                    name,
                    scroll_filter=query_filter,
                    limit=scan.batch_size,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=scan.with_vectors,
                ),
            )

        return scroll_pages(page, scan.with_vectors)

    def count(self, name: str, where: Where | None = None) -> int:
        query_filter = _server_filter(where)
        result = self._call(
            f"count {name}",
            lambda: self._client.count(name, count_filter=query_filter, exact=True),
        )
        return int(result.count)

    def search(self, name: str, query: VectorQuery) -> list[tuple[StoredPoint, float]]:
        return self._query(name, f"search {name}", query.vector, query)

    def recommend(self, name: str, query: Recommendation) -> list[tuple[StoredPoint, float]]:
        recommendation = qm.RecommendQuery(
            recommend=qm.RecommendInput(
                # Fresh lists typed by the stub's wider element type (a list is invariant).
                positive=[*query.positives],
                negative=[*query.negatives],
                strategy=qm.RecommendStrategy.SUM_SCORES,
            )
        )
        return self._query(name, f"recommend from {name}", recommendation, query)

    def _query(
        self, name: str, doing: str, scored: Any, query: ScoredRead
    ) -> list[tuple[StoredPoint, float]]:
        """The `limit` best points for `scored` passing `query.where`, with its search params."""
        # Local mode always scans every vector (and warns that search params do nothing).
        params = (
            qm.SearchParams(
                hnsw_ef=query.search_ef,
                exact=query.exact,
                quantization=qm.QuantizationSearchParams(
                    rescore=True, oversampling=query.oversampling
                ),
            )
            if not self._local
            else None
        )
        query_filter = _server_filter(query.where)
        response = self._call(
            doing,
            lambda: self._client.query_points(
                name,
                query=scored,
                query_filter=query_filter,
                search_params=params,
                limit=query.limit,
                with_payload=True,
                with_vectors=query.with_vectors,
            ),
        )
        return [(point_from_record(p, query.with_vectors), float(p.score)) for p in response.points]

    def value_counts(
        self, name: str, field_name: str, where: Where | None, *, limit: int
    ) -> dict[Scalar, int]:
        query_filter = _server_filter(where)
        response = self._call(
            f"list the values of {field_name} in {name}",
            lambda: self._client.facet(
                name, field_name, facet_filter=query_filter, limit=limit, exact=True
            ),
        )
        return {hit.value: int(hit.count) for hit in response.hits}

    # --- upkeep ------------------------------------------------------------------------

    def flush(self) -> None:
        """Writes already waited for the server; nothing is buffered here."""

    def optimize(self) -> None:
        """A server indexes in the background; wait until every collection is green."""
        if self._local:
            return
        deadline = time.monotonic() + OPTIMIZE_WAIT_S
        collections = self._call("list collections", self._client.get_collections).collections
        for collection in collections:
            while time.monotonic() < deadline:
                info = self._call(
                    f"read {collection.name}",
                    functools.partial(self._client.get_collection, collection.name),
                )
                if info.status == qm.CollectionStatus.GREEN:
                    break
                time.sleep(0.5)

    def ping(self) -> bool:
        if self._closed:
            return False
        try:
            self._client.get_collections()
        except Exception:
            return False
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()


# --- what went wrong, in words safe to print --------------------------------------------------

_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^\]\n]{1,80})")


def _transport_problem(exc: Exception) -> str:
    """What kept the request from an answer: a timeout, or the OS's reason ("Connection
    refused"); never the exception's text, which may repeat the URL."""
    source = exc.source if isinstance(exc, ResponseHandlingException) else exc
    if isinstance(source, httpx.TimeoutException):
        return "timed out"
    if isinstance(source, httpx.TransportError):
        reason = _OS_ERROR.search(str(source))
        return reason.group(1).strip() if reason else f"connection failed ({type(source).__name__})"
    return f"no usable response ({type(source).__name__})"


def _status_text(exc: UnexpectedResponse) -> str:
    return f"HTTP {exc.status_code} {exc.reason_phrase}".strip()


def _refusal(exc: UnexpectedResponse) -> str:
    """Status, Qdrant's own one-line reason when it gave one, and what to check for auth."""
    text = _status_text(exc)
    try:
        reason = exc.structured()["status"]["error"]
    except (ValueError, KeyError, TypeError):
        reason = None
    if isinstance(reason, str) and reason.strip():
        text += f": {reason.strip().splitlines()[0][:200]}"
    if exc.status_code in (401, 403):
        text += " (check SOUNDALIKE_QDRANT_API_KEY)"
    return text


# --- filters ---------------------------------------------------------------------------------


def _server_filter(where: Where | None) -> qm.Filter | None:
    return spell_filter(where, _ServerSpelling())


class _ServerSpelling:
    """Filter conditions in qdrant-client's models."""

    def match_any(self, field_name: str, values: list[str] | list[int]) -> qm.Condition:
        return qm.FieldCondition(key=field_name, match=qm.MatchAny(any=values))

    def match_bool(self, field_name: str, value: bool) -> qm.Condition:
        return qm.FieldCondition(key=field_name, match=qm.MatchValue(value=value))

    def in_range(self, field_name: str, gte: float, lte: float | None) -> qm.Condition:
        return qm.FieldCondition(key=field_name, range=qm.Range(gte=gte, lte=lte))

    def has_id(self, ids: list[str]) -> qm.Condition:
        return qm.HasIdCondition(has_id=list(ids))

    def any_of(self, options: list[qm.Condition]) -> qm.Condition:
        return qm.Filter(should=options)

    def all_of(
        self, must: list[qm.Condition] | None, must_not: list[qm.Condition] | None
    ) -> qm.Filter:
        return qm.Filter(must=must, must_not=must_not)
