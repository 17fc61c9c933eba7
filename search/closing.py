"""`with` support for soundalike's objects that own resources (a store, a decode pool, the
composition root): entering gives the object, leaving calls its `close()`."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Mix in for a class with a `close()` method."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
