"""When to try again: the Standard Webhooks example schedule, with jitter, bounded by Retry-After."""

from __future__ import annotations

import random

# Delay before attempt n+1 (index n = failed attempts so far). Index 0 is the first, immediate attempt.
# Spec example: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about 3 days in total).
RETRY_DELAYS_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.10
# A receiver's Retry-After may lengthen a delay, never beyond this.
MAX_RETRY_AFTER_S = 86400.0


def next_retry_delay(
    attempt: int, *, rng: random.Random | None = None, delays: tuple[float, ...] | None = None
) -> float | None:
    """Seconds to wait before the next attempt, given ``attempt`` failed attempts so far; None when exhausted.

    ``next_retry_delay(0)`` is 0 (first delivery now). Delays carry +/-10 % jitter so that receivers
    recovering from an outage are not hit by every queued event at once. ``delays``: another schedule
    (the operator's ``WEBHOOK_RETRY_DELAYS_SECONDS``) instead of ``RETRY_DELAYS_S``.
    """
    schedule = RETRY_DELAYS_S if delays is None else delays
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if attempt >= len(schedule):
        return None
    base = schedule[attempt]
    if base == 0:
        return 0.0
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return base * factor
