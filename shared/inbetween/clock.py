"""Time for the use cases: the system's clock in the cloud, any pair of functions in tests and the bench."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class FunctionClock:
    """A clock made of two functions (an offset clock, a virtual one)."""

    now_fn: Callable[[], float]
    sleep_fn: Callable[[float], None] = time.sleep

    def now(self) -> float:
        return self.now_fn()

    def sleep(self, seconds: float) -> None:
        self.sleep_fn(seconds)
