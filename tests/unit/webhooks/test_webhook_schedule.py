"""The retry schedule of webhook deliveries (the Standard Webhooks one) and when to stop."""

from __future__ import annotations

import random

import pytest
from inbetween.webhooks import (
    RETRY_DELAYS_S,
    DeliveryResult,
    next_retry_delay,
    retry_delay_after,
)

# --- the schedule ----------------------------------------------------------------------------------


def test_the_schedule_is_the_standard_webhooks_example():
    assert RETRY_DELAYS_S == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert sum(RETRY_DELAYS_S) > 24 * 3600


def test_next_retry_delay_follows_the_schedule_with_ten_percent_jitter_then_stops():
    rng = random.Random(7)
    assert next_retry_delay(0, rng=rng) == 0
    for attempt, base in enumerate(RETRY_DELAYS_S[1:], start=1):
        delays = [next_retry_delay(attempt, rng=rng) for _ in range(50)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1
    assert next_retry_delay(len(RETRY_DELAYS_S)) is None
    with pytest.raises(ValueError):
        next_retry_delay(-1)


def test_retry_delay_after_stops_on_success_no_retry_and_exhaustion():
    ok = DeliveryResult(True, 200, False, None, False, "")
    refused = DeliveryResult(False, None, False, None, False, "unsafe")
    failed = DeliveryResult(False, 500, True, None, False, "500")
    assert retry_delay_after(ok, 1) is None
    assert retry_delay_after(refused, 1) is None
    assert retry_delay_after(failed, len(RETRY_DELAYS_S)) is None
    assert retry_delay_after(failed, 1) is not None
