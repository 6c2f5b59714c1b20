"""When a provider task is checked: pure arithmetic over the settings, shared by submit, poller and push
(a use-case module only because it reads the settings; it does no I/O).

- push off: first near the model's shortest generation time, then every ``poll_interval_s``; both
  rounded up to a grid of ``poll_interval_s`` so that every active task of a model comes due at the same
  instant and one task-list call answers for all of them (see ``inbetween.usecases.polling``);
- push on: the task-finished event is expected, so the first check waits until the event is *overdue*
  (the model's longest usual generation time plus ``push_grace_s`` after submission), then every
  ``push_recheck_s``, on a grid of ``push_recheck_s``. A lost event costs that latency, never a video.
- a straggler (push off: a task RUNNING for more than twice its model's longest usual generation time)
  is checked less and less often: a quarter of how long it has run past that, at most every 5 minutes.
  A task stuck for hours then costs tens of queries instead of one every interval; when it ends, it is
  found at most 5 minutes late. Counted from when it was first seen RUNNING, so a task that waited in
  the provider's own queue (PENDING) is not mistaken for one.
"""

from __future__ import annotations

import math

from inbetween.config import Settings, Timing
from inbetween.domain.catalog import model_spec

# when the catalog does not know the model: the reference's "usually 1-5 minutes"
FALLBACK_MIN_GENERATION_S = 60.0
FALLBACK_MAX_GENERATION_S = 300.0
# a straggler: RUNNING for more than this many times its model's longest usual generation time
STRAGGLER_AFTER_FACTOR = 2.0
STRAGGLER_BACKOFF_FRACTION = 0.25  # of how long it has run past that
STRAGGLER_MAX_INTERVAL_S = 300.0


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


def next_check_at(
    settings: Settings,
    timing: Timing,
    now: float,
    *,
    model: str | None = None,
    running_since: float | None = None,
) -> float:
    """When a task that was still running is queried again (``running_since``: when it was first seen
    RUNNING, None while it is PENDING)."""
    interval = timing.push_recheck_s if settings.push_enabled else settings.poll_interval_s
    # a quarter interval: a check that ran a little late still keeps to the next grid instant
    stretch = interval
    if running_since is not None and not settings.push_enabled:
        spec = model_spec(model or "")
        longest = float(spec.max_generation_s) if spec else FALLBACK_MAX_GENERATION_S
        late_by = now - running_since - STRAGGLER_AFTER_FACTOR * longest
        if late_by > 0:
            stretch = min(STRAGGLER_MAX_INTERVAL_S, max(interval, late_by * STRAGGLER_BACKOFF_FRACTION))
    return on_poll_grid(now + stretch - interval * 0.75, interval)


def on_poll_grid(at: float, interval: float) -> float:
    """The first grid instant at or after ``at``: tasks checked on one grid are due together, so the
    poller can ask about all of a model's tasks with one list call instead of one query each."""
    if interval <= 0:
        return at
    return math.ceil(at / interval) * interval
