"""WEBHOOK_RETRY_DELAYS_SECONDS: an operator's own webhook retry schedule (the Standard Webhooks one when
unset)."""

from __future__ import annotations

import random

import pytest
from inbetween.config import Timing
from inbetween.errors import ConfigError
from inbetween.webhooks import RETRY_DELAYS_S, next_retry_delay


def test_unset_means_the_standard_schedule():
    timing = Timing.from_env({})
    assert timing.webhook_retry_delays_s is None
    assert next_retry_delay(2, rng=random.Random(1), delays=timing.webhook_retry_delays_s) == pytest.approx(
        RETRY_DELAYS_S[2], rel=0.1
    )


def test_a_shorter_schedule_is_followed_with_jitter_then_stops():
    # Given an operator's schedule: now, 2 s, 10 s
    timing = Timing.from_env({"WEBHOOK_RETRY_DELAYS_SECONDS": "0, 2,10"})
    assert timing.webhook_retry_delays_s == (0.0, 2.0, 10.0)
    rng = random.Random(7)
    # Then the retries follow it (+/-10 %) and stop after its last delay
    assert next_retry_delay(1, rng=rng, delays=timing.webhook_retry_delays_s) == pytest.approx(2, rel=0.1)
    assert next_retry_delay(2, rng=rng, delays=timing.webhook_retry_delays_s) == pytest.approx(10, rel=0.1)
    assert next_retry_delay(3, rng=rng, delays=timing.webhook_retry_delays_s) is None


@pytest.mark.parametrize("raw", ["5,10", "0", "0,-1", "0,soon", "0,,5"])
def test_a_schedule_that_cannot_mean_anything_is_a_config_error(raw):
    with pytest.raises(ConfigError, match="WEBHOOK_RETRY_DELAYS_SECONDS"):
        Timing.from_env({"WEBHOOK_RETRY_DELAYS_SECONDS": raw})
