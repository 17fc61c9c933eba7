"""Track filters as users give them ({"genre": "rock", "year": [1990, 2001]}), checked and
turned into the exact-match conditions of a `Where`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soundalike.core.errors import InvalidRequest
from soundalike.search.backend import Scalar
from soundalike.search.schema import (
    DIRECT_FILTER_FIELDS,
    F_ARTIST_KEY,
    F_EXTRA,
    F_YEAR,
    NOT_FILTERABLE,
)


def filter_field(name: str) -> str:
    """The payload field a filter name reads: a track field, or an extra column by bare name."""
    if not name or name in NOT_FILTERABLE or name == F_ARTIST_KEY:
        raise InvalidRequest(f"cannot filter tracks on {name!r}")
    if name in DIRECT_FILTER_FIELDS:
        return name
    return f"{F_EXTRA}.{name}"


def equality_conditions(filters: Mapping[str, Any]) -> dict[str, tuple[Scalar, ...]]:
    """Payload field -> accepted values, for `Where.equals`; a list value matches any item."""
    conditions: dict[str, tuple[Scalar, ...]] = {}
    for name, value in filters.items():
        target = filter_field(name)
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if not values:
            raise InvalidRequest(f"filter {name!r}: an empty list matches nothing")
        checked: list[Scalar] = []
        for item in values:
            if item is None or not isinstance(item, str | int | float | bool):
                raise InvalidRequest(
                    f"filter {name!r}: {item!r} is not a string, number or boolean"
                )
            if target == F_YEAR:
                checked.append(_as_year(item))
            elif isinstance(item, str) and target.startswith(f"{F_EXTRA}.") and _is_int(item):
                # Query strings carry every value as text; a JSONL column may hold numbers.
                checked += [item, int(item)]
            else:
                checked.append(item)
        conditions[target] = tuple(dict.fromkeys(checked))
    return conditions


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _as_year(value: Scalar) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"filter 'year': {value!r} is not a year")
    try:
        year = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"filter 'year': {value!r} is not a year") from None
    if isinstance(value, float) and value != year:
        raise InvalidRequest(f"filter 'year': {value!r} is not a whole year")
    return year
