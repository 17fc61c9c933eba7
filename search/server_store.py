"""The server backend: a Qdrant server or cluster through qdrant-client.

Also runs qdrant-client's local mode (`:memory:` or a path), which is the test double of a
server: same API, no payload indexes, no shards. Writes wait for the server (`wait=True`);
transient failures (connection errors, 429, 5xx) are retried with backoff a few times.
The embedding spec lives in the collection's metadata (Qdrant >= 1.16).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from soundalike.search.errors import StoreError, StoreUnavailable
from soundalike.search.store import IndexKind, Scalar, StoredPoint, Where

T = TypeVar("T")

_INDEX_SCHEMAS: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
RETRIES = 4
BACKOFF_S = 0.25
OPTIMIZE_WAIT_S = 600.0


def unavailable_message(url: str, detail: str) -> str:
    return (
        f"cannot reach the Qdrant server at {url} ({detail}): start it (docker compose up "
        "qdrant), check SOUNDALIKE_QDRANT_URL and SOUNDALIKE_QDRANT_API_KEY, or unset "
        "SOUNDALIKE_QDRANT_URL to use the embedded store"
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
        retries: int = RETRIES,
    ) -> None:
        self._client = client
        self.description = description
        self._local = local
        self._url = url
        # Local mode is one process's memory or file: no one else writes to it.
        self.shared = not local
        self._shard_number = shard_number
        self._replication_factor = replication_factor
        self._retries = retries
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
    ) -> ServerBackend:
        """Connects and checks the server answers; StoreUnavailable when it does not."""
        try:
            client = QdrantClient(
                url=url,
                api_key=api_key,
                timeout=max(1, math.ceil(timeout)),
                check_compatibility=False,
            )
        except ValueError as exc:
            raise StoreError(f"SOUNDALIKE_QDRANT_URL {url!r} is not a usable URL: {exc}") from exc
        backend = cls(
            client,
            description=f"Qdrant server {url}",
            local=False,
            url=url,
            shard_number=shard_number,
            replication_factor=replication_factor,
        )
        try:
            client.get_collections()
        except Exception as exc:
            client.close()
            raise StoreUnavailable(unavailable_message(url, _short(exc))) from exc
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
        if self._closed:
            raise StoreError(f"the store on {self.description} is closed")
        delay = BACKOFF_S
        for attempt in range(1, self._retries + 1):
            try:
                return fn()
            except (ResponseHandlingException, httpx.TransportError) as exc:
                if attempt == self._retries:
                    raise StoreUnavailable(
                        unavailable_message(self._url or self.description, _short(exc))
                    ) from exc
            except UnexpectedResponse as exc:
                if exc.status_code not in _TRANSIENT_STATUS:
                    raise StoreError(
                        f"{self.description} refused to {doing}: {_short(exc)}"
                    ) from exc
                if attempt == self._retries:
                    raise StoreUnavailable(
                        unavailable_message(self._url or self.description, _short(exc))
                    ) from exc
            except (ValueError, KeyError) as exc:  # local mode reports misuse this way
                raise StoreError(f"{self.description} could not {doing}: {exc}") from exc
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    # --- collections -------------------------------------------------------------------

    def collection_exists(self, name: str) -> bool:
        return self._call(f"look up {name}", lambda: self._client.collection_exists(name))

    def create_collection(self, name: str, dim: int) -> None:
        vectors = qm.VectorParams(size=dim, distance=qm.Distance.COSINE)
        if self._local:
            create = lambda: self._client.create_collection(name, vectors_config=vectors)  # noqa: E731
        else:
            create = lambda: self._client.create_collection(  # noqa: E731
                name,
                vectors_config=vectors,
                shard_number=self._shard_number,
                replication_factor=self._replication_factor,
            )
        self._call(f"create the collection {name}", create)

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
        return [_point(r, with_vectors) for r in records]

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        selector = qm.PointIdsList(points=list(ids))
        self._call(
            f"delete from {name}",
            lambda: self._client.delete(name, points_selector=selector, wait=True),
        )

    def delete_where(self, name: str, where: Where) -> None:
        selector = qm.FilterSelector(filter=_filter(where))
        self._call(
            f"delete from {name}",
            lambda: self._client.delete(name, points_selector=selector, wait=True),
        )

    def scroll(
        self,
        name: str,
        where: Where | None,
        *,
        with_vectors: bool,
        fields: Sequence[str] | None,
        batch_size: int,
    ) -> Iterator[StoredPoint]:
        query_filter = _optional_filter(where)
        payload: Any = list(fields) if fields else True
        offset: Any = None
        while True:
            records, offset = self._call(
                f"read from {name}",
                lambda offset=offset: self._client.scroll(
                    name,
                    scroll_filter=query_filter,
                    limit=batch_size,
                    offset=offset,
                    with_payload=payload,
                    with_vectors=with_vectors,
                ),
            )
            for record in records:
                yield _point(record, with_vectors)
            if offset is None:
                return

    def count(self, name: str, where: Where | None = None) -> int:
        query_filter = _optional_filter(where)
        result = self._call(
            f"count {name}",
            lambda: self._client.count(name, count_filter=query_filter, exact=True),
        )
        return int(result.count)

    def search(
        self,
        name: str,
        vector: list[float],
        *,
        limit: int,
        where: Where | None,
        search_ef: int | None = None,
        exact: bool = False,
    ) -> list[tuple[StoredPoint, float]]:
        query_filter = _optional_filter(where)
        # Local mode always scans every vector (and warns that search params do nothing).
        params = (
            qm.SearchParams(hnsw_ef=search_ef, exact=exact)
            if (search_ef is not None or exact) and not self._local
            else None
        )
        response = self._call(
            f"search {name}",
            lambda: self._client.query_points(
                name,
                query=vector,
                query_filter=query_filter,
                search_params=params,
                limit=limit,
                with_payload=True,
                with_vectors=False,
            ),
        )
        return [(_point(p, False), float(p.score)) for p in response.points]

    def value_counts(
        self, name: str, field_name: str, where: Where | None = None
    ) -> dict[Scalar, int]:
        total = self.count(name, where)
        if total == 0:
            return {}
        query_filter = _optional_filter(where)
        response = self._call(
            f"list the values of {field_name} in {name}",
            lambda: self._client.facet(
                name, field_name, facet_filter=query_filter, limit=total, exact=True
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
                    lambda c=collection: self._client.get_collection(c.name),
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _point(record: Any, with_vector: bool) -> StoredPoint:
    vector = record.vector if with_vector else None
    if isinstance(vector, dict):
        vector = vector.get("")
    return StoredPoint(
        id=str(record.id),
        vector=[float(x) for x in vector] if vector is not None else None,
        payload=dict(record.payload or {}),
    )


def _any_of(field_name: str, values: Sequence[Scalar]) -> list[qm.Condition]:
    strings = [v for v in values if isinstance(v, str)]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    others = [v for v in values if isinstance(v, bool | float)]
    conditions: list[qm.Condition] = []
    if strings:
        conditions.append(qm.FieldCondition(key=field_name, match=qm.MatchAny(any=strings)))
    if ints:
        conditions.append(qm.FieldCondition(key=field_name, match=qm.MatchAny(any=ints)))
    for value in others:
        if isinstance(value, float) and not value.is_integer():
            conditions.append(
                qm.FieldCondition(key=field_name, range=qm.Range(gte=value, lte=value))
            )
        else:
            match = value if isinstance(value, bool) else int(value)
            conditions.append(qm.FieldCondition(key=field_name, match=qm.MatchValue(value=match)))
    return conditions


def _filter(where: Where) -> qm.Filter:
    must: list[qm.Condition] = []
    must_not: list[qm.Condition] = []
    for field_name, values in where.equals.items():
        options = _any_of(field_name, values)
        must.append(options[0] if len(options) == 1 else qm.Filter(should=options))
    for field_name, values in where.not_equals.items():
        must_not.extend(_any_of(field_name, values))
    for field_name, bound in where.at_least.items():
        must.append(qm.FieldCondition(key=field_name, range=qm.Range(gte=float(bound))))
    if where.only_ids is not None:
        must.append(qm.HasIdCondition(has_id=sorted(where.only_ids)))
    if where.exclude_ids:
        must_not.append(qm.HasIdCondition(has_id=sorted(where.exclude_ids)))
    return qm.Filter(must=must or None, must_not=must_not or None)


def _optional_filter(where: Where | None) -> qm.Filter | None:
    return None if where is None or where.is_empty() else _filter(where)
