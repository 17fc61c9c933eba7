"""Patience with a server that does not answer: exponential backoff with full jitter, within a
total time budget.

Full jitter (each wait drawn uniformly below its ceiling) keeps many workers that lost the
server together from all knocking again at the same instant when it comes back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_WAIT_S = 0.25
MAX_WAIT_S = 5.0
# 0.25 s doubled 20 times is far past any cap; bounding the exponent keeps floats finite.
_MAX_DOUBLINGS = 20


@dataclass(frozen=True)
class RetryPolicy:
    """Retry for up to `total_seconds` after the first failure; `sleep`, `clock` and
    `uniform` (a draw from [0, 1)) are replaceable so that tests need not wait."""

    total_seconds: float
    first_wait_seconds: float = FIRST_WAIT_S
    max_wait_seconds: float = MAX_WAIT_S
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    uniform: Callable[[], float] = field(default=random.random, compare=False)

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry` (0 for the first)."""
        doublings = min(retry, _MAX_DOUBLINGS)
        return min(self.max_wait_seconds, self.first_wait_seconds * 2**doublings)

    def wait(self, retry: int, remaining_seconds: float) -> float:
        """How long to wait before retry number `retry`, never past the budget's end."""
        return max(0.0, min(remaining_seconds, self.uniform() * self.ceiling(retry)))
