"""`forward`: a façade method that only hands its call to one of the façade's parts.

The store's façade (store.py) answers most questions by asking one part (tracks.py, artists.py);
writing each such method out again repeats the part's signature. `forward` takes the signature
from the part's method, so mypy checks callers against the one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")


class forward(Generic[P, R]):  # noqa: N801 - used like a decorator-made method
    """`search_tracks = forward("_track_side", TrackSide.search_tracks)`: on an instance, the
    bound method of its `_track_side` (same name, same signature, same docstring)."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self._part = part
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> forward[P, R]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Callable[P, R]: ...
    def __get__(
        self, instance: object | None, owner: type | None = None
    ) -> forward[P, R] | Callable[P, R]:
        if instance is None:
            return self
        method: Callable[P, R] = getattr(getattr(instance, self._part), self._name)
        return method


T = TypeVar("T")


class forwarded(Generic[T]):  # noqa: N801 - used like `property`
    """`search_ef = forwarded[int | None]("_vectors", "search_ef")`: a read-only attribute that
    is the part's attribute of that name. The type is stated where it is declared, since a name
    given as a string carries none (the part's own annotation is the one to match)."""

    def __init__(self, part: str, name: str) -> None:
        self._part = part
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> forwarded[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> forwarded[T] | T:
        if instance is None:
            return self
        value: T = getattr(getattr(instance, self._part), self._name)
        return value
