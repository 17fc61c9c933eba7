"""What the store needs from a Qdrant, whichever one it is.

Two backends implement `Backend`: Qdrant Edge in-process (edge_store.py) and a Qdrant server
through qdrant-client (server_store.py). Both receive filters as a `Where` and turn it into
their own filter type through `spell_filter`: the meaning of a filter is decided here, once
(`conditions_of`), and each backend only names its client's class for each kind of condition
(a `FilterSpelling`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

Scalar = str | int | float | bool
IndexKind = Literal["keyword", "integer", "float", "bool"]

# A quantized collection's int8 range covers this share of its vector components (outliers
# are clipped), as Qdrant recommends.
QUANTILE = 0.99


@dataclass(frozen=True)
class StoredPoint:
    id: str
    vector: list[float] | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Where:
    """A backend-neutral filter; every condition must hold.

    `equals[f]` / `not_equals[f]`: the field's value is / is not one of the given values.
    `at_least[f]`: numeric lower bound. `only_ids` / `exclude_ids`: point ids.
    """

    equals: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    not_equals: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    at_least: Mapping[str, float] = field(default_factory=dict)
    only_ids: frozenset[str] | None = None
    exclude_ids: frozenset[str] = frozenset()

    def is_empty(self) -> bool:
        return not (
            self.equals
            or self.not_equals
            or self.at_least
            or self.only_ids is not None
            or self.exclude_ids
        )


@dataclass(frozen=True, kw_only=True)
class ScoredRead:
    """What every scored read of points says besides how it scores: the `limit` best points
    passing `where`.

    `search_ef`: HNSW candidates (None: the index's default); `exact`: scan every vector;
    `with_vectors`: return the points' vectors too; `oversampling`: in a quantized
    collection, how many times `limit` candidates the int8 search keeps for rescoring with
    the float32 originals (None: Qdrant's default, 1)."""

    limit: int
    where: Where | None = None
    search_ef: int | None = None
    exact: bool = False
    with_vectors: bool = False
    oversampling: float | None = None


@dataclass(frozen=True)
class VectorQuery(ScoredRead):
    """A nearest-neighbour search: the `limit` closest points (cosine) to `vector`."""

    vector: list[float]


@dataclass(frozen=True)
class Recommendation(ScoredRead):
    """Qdrant's recommendation query, "sum of scores" strategy: the `limit` points passing
    `where` with the highest sum of cosines to the `positives` minus the sum of cosines to the
    `negatives` (example vectors). For unit vectors that orders points by cosine to
    Σpositives − Σnegatives, the score being that cosine times the sum's length."""

    positives: list[list[float]]
    negatives: list[list[float]]


@dataclass(frozen=True, kw_only=True)
class Scan:
    """Every point passing `where`, read `batch_size` at a time.

    `fields`: the payload fields to read (None: all of them)."""

    batch_size: int
    where: Where | None = None
    with_vectors: bool = False
    fields: Sequence[str] | None = None


class Backend(Protocol):
    """What the store needs from a Qdrant: one collection per name, cosine vectors, uuid ids."""

    description: str
    # True when another process may write to the same collections (server, not embedded).
    shared: bool

    def collection_exists(self, name: str) -> bool: ...
    def create_collection(self, name: str, dim: int, *, quantized: bool = False) -> bool:
        """Creates the collection unless it exists; False when it existed (or another
        process created it meanwhile), True when this call created it. `quantized`: int8
        scalar quantization kept in memory for the vector search, the float32 originals on
        disk for rescoring the hits (see `QUANTILE`)."""
        ...

    def vector_size(self, name: str) -> int: ...
    def drop_collection(self, name: str) -> None: ...
    def read_metadata(self, name: str) -> dict[str, Any]: ...
    def write_metadata(self, name: str, metadata: dict[str, Any]) -> None: ...
    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        """Sets the given top-level metadata keys, keeping the others: what another process
        wrote meanwhile under another key is never overwritten."""
        ...

    def create_index(self, name: str, field_name: str, kind: IndexKind) -> None: ...
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None: ...
    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool, with_vectors: bool
    ) -> list[StoredPoint]: ...
    def set_payloads(self, name: str, payloads: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Sets payload fields of existing points, (id, fields) each; vectors and the other
        fields are left alone, and ids not stored are skipped."""
        ...

    def delete_ids(self, name: str, ids: Sequence[str]) -> None: ...
    def delete_where(self, name: str, where: Where) -> None: ...
    def scroll(self, name: str, scan: Scan) -> Iterator[StoredPoint]: ...
    def count(self, name: str, where: Where | None = None) -> int: ...
    def search(self, name: str, query: VectorQuery) -> list[tuple[StoredPoint, float]]: ...
    def recommend(self, name: str, query: Recommendation) -> list[tuple[StoredPoint, float]]: ...
    def value_counts(
        self, name: str, field_name: str, where: Where | None, *, limit: int
    ) -> dict[Scalar, int]:
        """How many points passing `where` hold each value of the field, for up to `limit`
        distinct values."""
        ...

    def flush(self) -> None: ...
    def optimize(self) -> None: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


# --- filters, decided once ------------------------------------------------------------------
#
# Qdrant matches keywords and integers by value lists, but floats only by range and booleans
# only one at a time; a value list of mixed types therefore becomes several conditions, any
# of which may hold. Backends map each of these five shapes to their client's classes.
# MatchValue carries booleans only: integers go through MatchAny.


@dataclass(frozen=True)
class MatchAny:
    """The field equals one of `values` (all strings, or all integers)."""

    field: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class MatchValue:
    field: str
    value: bool


@dataclass(frozen=True)
class InRange:
    """gte <= field (<= lte, when given)."""

    field: str
    gte: float
    lte: float | None = None


@dataclass(frozen=True)
class HasId:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Condition, ...]


Condition = MatchAny | MatchValue | InRange | HasId | AnyOf


@dataclass(frozen=True)
class Conditions:
    """Every `must` condition holds and no `must_not` condition does."""

    must: tuple[Condition, ...]
    must_not: tuple[Condition, ...]


def conditions_of(where: Where | None) -> Conditions | None:
    """The conditions a `Where` stands for; None when it filters nothing."""
    if where is None or where.is_empty():
        return None
    must: list[Condition] = []
    must_not: list[Condition] = []
    for field_name, values in where.equals.items():
        options = _equal_to_any(field_name, values)
        must.append(options[0] if len(options) == 1 else AnyOf(tuple(options)))
    for field_name, values in where.not_equals.items():
        must_not.extend(_equal_to_any(field_name, values))
    for field_name, bound in where.at_least.items():
        must.append(InRange(field_name, gte=float(bound)))
    if where.only_ids is not None:
        # An empty id set must match nothing; HasId with no ids does just that.
        must.append(HasId(tuple(sorted(where.only_ids))))
    if where.exclude_ids:
        must_not.append(HasId(tuple(sorted(where.exclude_ids))))
    return Conditions(tuple(must), tuple(must_not))


def _equal_to_any(field_name: str, values: Sequence[Scalar]) -> list[Condition]:
    """Conditions (one per value type) that hold when the field equals any of `values`."""
    strings = tuple(v for v in values if isinstance(v, str))
    ints = tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    conditions: list[Condition] = []
    if strings:
        conditions.append(MatchAny(field_name, strings))
    if ints:
        conditions.append(MatchAny(field_name, ints))
    for value in values:
        if isinstance(value, bool):
            conditions.append(MatchValue(field_name, value))
        elif isinstance(value, float):
            # A range, not a match: it finds 3.0 stored as a float and 3 stored as an integer.
            conditions.append(InRange(field_name, gte=value, lte=value))
    return conditions


def point_from_record(record: Any, with_vector: bool) -> StoredPoint:
    """A StoredPoint from a Qdrant record (Edge and qdrant-client records have one shape)."""
    vector = record.vector if with_vector else None
    if isinstance(vector, dict):  # named-vector form: ours is the unnamed default
        vector = vector.get("")
    if vector is not None and type(vector) is not list:
        vector = [float(x) for x in vector]
    return StoredPoint(
        id=str(record.id),
        # Both clients hand over a fresh list of floats: copying it again cost more than the
        # read itself when every centroid is read (a neighbour-list rebuild, the map).
        vector=vector,
        payload=dict(record.payload or {}),
    )


def scroll_pages(
    fetch_page: Callable[[Any], tuple[Sequence[Any], Any]], with_vectors: bool
) -> Iterator[StoredPoint]:
    """Every point of a paged scroll; `fetch_page(offset)` returns one page of records and the
    next page's offset, None after the last page (both clients page this way)."""
    offset: Any = None
    while True:
        records, offset = fetch_page(offset)
        for record in records:
            yield point_from_record(record, with_vectors)
        if offset is None:
            return


Native = TypeVar("Native")


class FilterSpelling(Protocol, Generic[Native]):
    """A client's class for each kind of condition; `Native` is its condition type."""

    def match_any(self, field_name: str, values: list[str] | list[int]) -> Native: ...
    def match_bool(self, field_name: str, value: bool) -> Native: ...
    def in_range(self, field_name: str, gte: float, lte: float | None) -> Native: ...
    def has_id(self, ids: list[str]) -> Native: ...
    def any_of(self, options: list[Native]) -> Native: ...
    def all_of(self, must: list[Native] | None, must_not: list[Native] | None) -> Any: ...


def spell_filter(where: Where | None, spelling: FilterSpelling[Native]) -> Any:
    """The client's filter for `where` (what `spelling.all_of` makes); None when it filters
    nothing."""
    conditions = conditions_of(where)
    if conditions is None:
        return None
    must = [_spell(c, spelling) for c in conditions.must]
    must_not = [_spell(c, spelling) for c in conditions.must_not]
    return spelling.all_of(must or None, must_not or None)


def _spell(condition: Condition, spelling: FilterSpelling[Native]) -> Native:
    match condition:
        case MatchAny(field_name, values):
            # list() of `tuple[str, ...] | tuple[int, ...]` joins to list[object] in mypy.
            return spelling.match_any(field_name, cast("list[str] | list[int]", list(values)))
        case MatchValue(field_name, value):
            return spelling.match_bool(field_name, value)
        case InRange(field_name, gte, lte):
            return spelling.in_range(field_name, gte, lte)
        case HasId(ids):
            return spelling.has_id(list(ids))
        case AnyOf(options):
            return spelling.any_of([_spell(o, spelling) for o in options])
    raise TypeError(f"not a filter condition: {condition!r}")
