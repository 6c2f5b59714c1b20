"""Provider time, scaled: one clock for the emulator, the pipeline's schedule and the SDK's sleeps."""

from __future__ import annotations

import time


class ProviderClock:
    """``scale`` provider seconds pass per real second (60: one provider minute is one real second)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._epoch0 = time.time()
        self._mono0 = time.perf_counter()

    def __call__(self) -> float:
        return self._epoch0 + (time.perf_counter() - self._mono0) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)


class ScaledTimeModule:
    """Stands in for the ``time`` module inside ``dashscope.client.base_api``: the SDK's own wait loop runs
    unchanged, its ``time.sleep(n)`` lasting n provider seconds."""

    def __init__(self, clock: ProviderClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)
