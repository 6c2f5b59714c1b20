"""When a provider task is checked: pure arithmetic over the settings, shared by submit, poller and push
(a use-case module only because it reads the settings; it does no I/O).

- push off: first near the model's shortest generation time, then every ``poll_interval_s``; both
  rounded up to a grid of ``poll_interval_s`` so that every active task of a model comes due at the same
  instant and one task-list call answers for all of them (see ``inbetween.usecases.polling``);
- push on: the task-finished event is expected, so the first check waits until the event is *overdue*
  (the model's longest usual generation time plus ``push_grace_s`` after submission), then every
  ``push_recheck_s``, on a grid of ``push_recheck_s``. A lost event costs that latency, never a video.
"""

from __future__ import annotations

import math

from inbetween.config import Settings, Timing
from inbetween.domain.catalog import model_spec

# when the catalog does not know the model: the reference's "usually 1-5 minutes"
FALLBACK_MIN_GENERATION_S = 60.0
FALLBACK_MAX_GENERATION_S = 300.0


def first_check_at(settings: Settings, timing: Timing, model: str | None, now: float) -> float:
    """When a just-submitted task is first queried."""
    spec = model_spec(model or "")
    if settings.push_enabled:
        expected = timing.expected_generation_s
        if expected is None:
            expected = float(spec.max_generation_s) if spec else FALLBACK_MAX_GENERATION_S
        return on_poll_grid(now + expected + timing.push_grace_s, timing.push_recheck_s)
    first_delay = timing.first_poll_delay_s
    if first_delay is None:
        first_delay = float(spec.min_generation_s) if spec else FALLBACK_MIN_GENERATION_S
    return on_poll_grid(now + first_delay, settings.poll_interval_s)


def next_check_at(settings: Settings, timing: Timing, now: float) -> float:
    """When a task that was still running is queried again."""
    interval = timing.push_recheck_s if settings.push_enabled else settings.poll_interval_s
    # a quarter interval: a check that ran a little late still keeps to the next grid instant
    return on_poll_grid(now + interval * 0.25, interval)


def on_poll_grid(at: float, interval: float) -> float:
    """The first grid instant at or after ``at``: tasks checked on one grid are due together, so the
    poller can ask about all of a model's tasks with one list call instead of one query each."""
    if interval <= 0:
        return at
    return math.ceil(at / interval) * interval
