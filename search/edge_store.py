"""The embedded backend: Qdrant Edge in-process, one shard directory per collection.

Layout under the data dir: `<collection>/` is an Edge shard (segments + WAL) and
`<collection>.meta.json` beside it holds the collection's metadata (the embedding spec),
written atomically. One process owns a data dir: a `<prefix>soundalike.lock` file is
flock'ed on open, and Edge's own WAL lock backs it up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import qdrant_edge as qe

from soundalike.core.errors import StoreError, StoreLocked
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

# Points per page when values are counted (one small payload field each).
VALUE_COUNT_PAGE = 8192

_INDEX_SCHEMAS: dict[IndexKind, qe.PayloadSchemaType] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}


@dataclass(frozen=True)
class EdgeIndexSettings:
    """How new collections are indexed. The defaults are Qdrant's: HNSW m 16, ef_construct
    100; segments smaller than `indexing_threshold_kb` (None: Edge's default) stay
    unindexed, and searches whose filter leaves fewer than `full_scan_threshold_kb` of
    vectors scan them instead of walking the graph."""

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    indexing_threshold_kb: int | None = None
    quantize_int8: bool = False


def owner_note_path(data_dir: Path, lock_name: str = "soundalike.lock") -> Path:
    """Where the process holding the lock says who it is (a server: its pid and URL)."""
    return data_dir / f"{lock_name.removesuffix('.lock')}.owner.json"


def read_owner_note(data_dir: Path, lock_name: str = "soundalike.lock") -> dict[str, Any] | None:
    """The lock holder's note, when there is one and its process still runs."""
    try:
        note = json.loads(owner_note_path(data_dir, lock_name).read_text(encoding="utf-8"))
        pid = int(note["pid"])
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return dict(note)


def locked_message(data_dir: Path, lock_name: str = "soundalike.lock") -> str:
    note = read_owner_note(data_dir, lock_name)
    if note is not None and note.get("url"):
        url = note["url"]
        return (
            f"the data dir {data_dir} is in use by `soundalike serve` (pid {note['pid']}) at "
            f"{url}: hand it the folder with `soundalike ingest DIR --server {url}`, see its "
            f"library with `soundalike library status --server {url}`, or stop it"
        )
    return (
        f"the data dir {data_dir} is in use by another soundalike process (an ingest or serve "
        "running?): stop it, or point SOUNDALIKE_DATA_DIR elsewhere"
    )


class EdgeBackend:
    """`Backend` over Qdrant Edge shards under one data dir."""

    shared = False

    def __init__(
        self,
        data_dir: Path,
        *,
        lock_name: str = "soundalike.lock",
        index: EdgeIndexSettings | None = None,
    ) -> None:
        """`index` applies to collections created from here on; a shard keeps its own."""
        self.data_dir = Path(data_dir).absolute()
        self.description = f"data dir {self.data_dir}"
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise StoreError(f"the data dir {self.data_dir} is a file, not a folder")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data dir {self.data_dir}: {exc}") from exc
        self._lock_name = lock_name
        self._lock_file = self._acquire_lock(self.data_dir / lock_name)
        self._shards: dict[str, qe.EdgeShard] = {}
        # Shards open lazily on first use, from whichever request thread comes first; two
        # threads loading the same shard would collide on Edge's WAL lock.
        self._shards_lock = threading.RLock()
        self._index = index or EdgeIndexSettings()
        self._metadata_lock = threading.Lock()
        # Metadata as last written or read, by collection: the lock above makes this backend
        # the data dir's only writer, so the files change only through it, and hot paths (the
        # catalogue version checked per "artists like X") skip a file read and a JSON parse.
        # Callers get a shallow copy and never mutate the nested values.
        self._metadata: dict[str, dict[str, Any]] = {}
        self._closed = False

    def _acquire_lock(self, path: Path) -> IO[bytes]:
        try:
            handle = open(path, "a+b")  # noqa: SIM115 - held open for the store's lifetime
        except OSError as exc:
            raise StoreError(f"cannot write in the data dir {self.data_dir}: {exc}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLocked(locked_message(self.data_dir, path.name)) from None
        return handle

    def note_owner(self, note: dict[str, Any]) -> None:
        """Records who holds the lock (`{"pid", "url"}`), so a process refused the data dir can
        say which server owns it; removed on close."""
        path = owner_note_path(self.data_dir, self._lock_name)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(note, out)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {exc}") from exc

    # --- collections -------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.data_dir / name

    def _meta_path(self, name: str) -> Path:
        return self.data_dir / f"{name}.meta.json"

    def _shard(self, name: str) -> qe.EdgeShard:
        if self._closed:
            raise StoreError(f"the store on {self.description} is closed")
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._shards_lock:
            if self._closed:
                raise StoreError(f"the store on {self.description} is closed")
            shard = self._shards.get(name)
            if shard is None:
                path = self._path(name)
                if not (path / "edge_config.json").exists():
                    raise StoreError(f"collection {name} does not exist in {self.description}")
                with self._errors(f"open {path}"):
                    shard = qe.EdgeShard.load(str(path))
                self._shards[name] = shard
            return shard

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Edge raises bare `Exception`s; turn them into store errors a user can act on."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreLocked(locked_message(self.data_dir, self._lock_name)) from exc
            raise StoreError(f"Qdrant Edge could not {doing} in {self.data_dir}: {exc}") from exc

    def collection_exists(self, name: str) -> bool:
        return name in self._shards or (self._path(name) / "edge_config.json").exists()

    def create_collection(self, name: str, dim: int, *, quantized: bool = False) -> bool:
        index = self._index
        quantized = quantized or index.quantize_int8
        config = qe.EdgeConfig(
            # Quantized: the int8 copy stays in memory for the graph walk, the float32
            # originals are memory-mapped and read only to rescore the few hits.
            vectors=qe.EdgeVectorParams(
                size=dim, distance=qe.Distance.Cosine, on_disk=True if quantized else None
            ),
            hnsw_config=qe.HnswIndexConfig(
                m=index.m,
                ef_construct=index.ef_construct,
                full_scan_threshold=index.full_scan_threshold_kb,
            ),
            quantization_config=(
                qe.ScalarQuantizationConfig(
                    type=qe.ScalarType.Int8, quantile=QUANTILE, always_ram=True
                )
                if quantized
                else None
            ),
            optimizers=(
                qe.EdgeOptimizersConfig(indexing_threshold=index.indexing_threshold_kb)
                if index.indexing_threshold_kb is not None
                else None
            ),
        )
        path = self._path(name)
        with self._shards_lock:
            if self.collection_exists(name):
                return False
            if path.exists():
                # Leftovers of an interrupted creation (no edge_config.json yet).
                shutil.rmtree(path)
            with self._errors(f"create the collection {name}"):
                self._shards[name] = qe.EdgeShard.create(str(path), config)
        return True

    def vector_size(self, name: str) -> int:
        path = self._path(name) / "edge_config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            return int(config["vectors"][""]["size"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise StoreError(f"cannot read the vector size of {name} from {path}: {exc}") from exc

    def drop_collection(self, name: str) -> None:
        with self._shards_lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                with self._errors(f"close the collection {name}"):
                    shard.close()
            self._meta_path(name).unlink(missing_ok=True)
            self._metadata.pop(name, None)
            shutil.rmtree(self._path(name), ignore_errors=True)

    def read_metadata(self, name: str) -> dict[str, Any]:
        known = self._metadata.get(name)
        if known is not None:
            return dict(known)
        path = self._meta_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        try:
            metadata = dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        self._metadata[name] = metadata
        return dict(metadata)

    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        path = self._meta_path(name)
        text = json.dumps(metadata, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {exc}") from exc
        self._metadata[name] = json.loads(text)  # as a later read would give it
        _fsync_dir(self.data_dir)

    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        # One process owns the data dir, so a lock around read-merge-write is enough.
        with self._metadata_lock:
            self.write_metadata(name, {**self.read_metadata(name), **changes})

    def create_index(self, name: str, field_name: str, kind: IndexKind) -> None:
        shard = self._shard(name)
        with self._errors(f"index {field_name} of {name}"):
            shard.update(qe.UpdateOperation.create_field_index(field_name, _INDEX_SCHEMAS[kind]))

    # --- points ------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        shard = self._shard(name)
        edge_points = [qe.Point(id=p.id, vector=p.vector or [], payload=p.payload) for p in points]
        with self._errors(f"write to {name}"):
            shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool, with_vectors: bool
    ) -> list[StoredPoint]:
        shard = self._shard(name)
        with self._errors(f"read from {name}"):
            records = shard.retrieve(list(ids), with_payload, with_vectors)
        return [point_from_record(r, with_vectors) for r in records]

    def set_payloads(self, name: str, payloads: Sequence[tuple[str, dict[str, Any]]]) -> None:
        shard = self._shard(name)
        with self._errors(f"write to {name}"):
            # Edge applies one operation per call, and a payload differs per point here.
            for point_id, fields in payloads:
                shard.update(qe.UpdateOperation.set_payload([point_id], fields))

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        shard = self._shard(name)
        with self._errors(f"delete from {name}"):
            shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, name: str, where: Where) -> None:
        edge_filter = _edge_filter(where)
        if edge_filter is None:
            raise StoreError(f"refusing to delete from {name} with an empty filter")
        shard = self._shard(name)
        with self._errors(f"delete from {name}"):
            shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter))

    def scroll(self, name: str, scan: Scan) -> Iterator[StoredPoint]:
        shard = self._shard(name)
        payload: Any = qe.PayloadSelector.Include(list(scan.fields)) if scan.fields else True
        edge_filter = _edge_filter(scan.where)

        def page(offset: Any) -> tuple[Sequence[Any], Any]:
            request = qe.ScrollRequest(
                offset=offset,
                limit=scan.batch_size,
                filter=edge_filter,
                with_payload=payload,
                with_vector=scan.with_vectors,
            )
            with self._errors(f"read from {name}"):
                return shard.scroll(request)

        return scroll_pages(page, scan.with_vectors)

    def count(self, name: str, where: Where | None = None) -> int:
        shard = self._shard(name)
        edge_filter = _edge_filter(where)
        with self._errors(f"count {name}"):
            return int(shard.count(qe.CountRequest(exact=True, filter=edge_filter)))

    def search(self, name: str, query: VectorQuery) -> list[tuple[StoredPoint, float]]:
        return self._query(name, f"search {name}", qe.Query.Nearest(query.vector), query)

    def recommend(self, name: str, query: Recommendation) -> list[tuple[StoredPoint, float]]:
        scored = qe.Query.RecommendSumScores(
            # Fresh lists typed by the stub's wider element type (a list is invariant).
            qe.RecommendQuery(positives=[*query.positives], negatives=[*query.negatives])
        )
        return self._query(name, f"recommend from {name}", scored, query)

    def _query(
        self, name: str, doing: str, scored: Any, query: ScoredRead
    ) -> list[tuple[StoredPoint, float]]:
        """The `limit` best points for `scored` passing `query.where`, with its search params."""
        shard = self._shard(name)
        # Rescoring asked for, not left to Qdrant: hits of a quantized collection are then
        # ranked by their float32 scores (a collection without quantization ignores it).
        params = qe.SearchParams(
            hnsw_ef=query.search_ef,
            exact=query.exact,
            quantization=qe.QuantizationSearchParams(rescore=True, oversampling=query.oversampling),
        )
        request = qe.QueryRequest(
            limit=query.limit,
            query=scored,
            filter=_edge_filter(query.where),
            with_payload=True,
            with_vector=query.with_vectors,
            params=params,
        )
        with self._errors(doing):
            hits = shard.query(request)
        return [(point_from_record(h, query.with_vectors), float(h.score)) for h in hits]

    def value_counts(
        self, name: str, field_name: str, where: Where | None, *, limit: int
    ) -> dict[Scalar, int]:
        # Counted over a paged scroll of the one field, not by Edge's facet: its binding holds
        # the GIL through a whole facet (3.5 s over 100,000 tracks, every other thread of the
        # process stopped), while a scroll lets them run between pages.
        counted: Counter[Scalar] = Counter()
        scan = Scan(where=where, fields=[field_name], batch_size=VALUE_COUNT_PAGE)
        for point in self.scroll(name, scan):
            value = point.payload.get(field_name)
            if isinstance(value, list):
                counted.update(set(value))  # as a facet: a point counts once per value
            elif value is not None:
                counted[value] += 1
        return dict(counted.most_common(limit))

    # --- upkeep ------------------------------------------------------------------------

    def _open_shards(self) -> list[tuple[str, qe.EdgeShard]]:
        with self._shards_lock:
            return list(self._shards.items())

    def flush(self) -> None:
        for name, shard in self._open_shards():
            with self._errors(f"flush {name}"):
                shard.flush()

    def optimize(self) -> None:
        for name, shard in self._open_shards():
            with self._errors(f"optimize {name}"):
                shard.optimize()

    def ping(self) -> bool:
        return not self._closed and self.data_dir.is_dir()

    def close(self) -> None:
        with self._shards_lock:
            if self._closed:
                return
            self._closed = True
            shards = list(self._shards.items())
            self._shards.clear()
        errors = []
        for name, shard in shards:
            try:
                shard.flush()
                shard.close()
            except Exception as exc:  # close every shard even when one fails
                errors.append(f"{name}: {exc}")
        owner_note_path(self.data_dir, self._lock_name).unlink(missing_ok=True)
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()
        if errors:
            raise StoreError(f"closing {self.description} failed: {'; '.join(errors)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _edge_filter(where: Where | None) -> qe.Filter | None:
    return spell_filter(where, _EdgeSpelling())


class _EdgeSpelling:
    """Filter conditions in qdrant_edge's classes."""

    def match_any(self, field_name: str, values: list[str] | list[int]) -> Any:
        return qe.FieldCondition(key=field_name, match=qe.MatchAny(values))

    def match_bool(self, field_name: str, value: bool) -> Any:
        return qe.FieldCondition(key=field_name, match=qe.MatchValue(value))

    def in_range(self, field_name: str, gte: float, lte: float | None) -> Any:
        return qe.FieldCondition(key=field_name, range=qe.RangeFloat(gte=gte, lte=lte))

    def has_id(self, ids: list[str]) -> Any:
        return qe.HasIdCondition({uuid.UUID(i) for i in ids})

    def any_of(self, options: list[Any]) -> Any:
        return qe.Filter(should=options)

    def all_of(self, must: list[Any] | None, must_not: list[Any] | None) -> qe.Filter:
        return qe.Filter(must=must, must_not=must_not)
