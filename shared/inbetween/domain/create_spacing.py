"""When the next create call may start, so that the provider never counts more creates in a second
than it allows, whatever the network's jitter.

The provider counts creates as they reach it, in a sliding second (``Throttling.RateQuota`` beyond).
We cannot see when a create reaches it, only that it does so inside the call's round trip: after we
began sending, before its answer came back. So we space by the round trips' ends: if a create starts
at least a second (and a margin) after the round trip of the create ``k`` places before it ended,
with ``k`` the creates a second allows, no second ever holds more than ``k`` arrivals, however the
round trips vary. Spacing from the start of the previous create instead (with a 10 % margin) lets two
arrivals come closer than the gap by as much as the jitter of the outbound leg, which on a real
network is more than the margin.

The price is throughput, and it is stated rather than hidden: creates are serialized by the submit
lease (see ``inbetween.usecases.admission``), so one holder makes at most one create per round trip,
and at ``k`` creates a second a holder that fills a burst waits, after each ``k`` creates, for the
second that began when the first of them ended. At 2 creates a second and a 0.4 s round trip that is
2 creates per 1.45 s (1.4/s), at 5 a second the round trip alone sets the pace (2.5/s).

Across holders (one invocation after another) only one number is kept, the lease's ``next_submit_at``.
The next holder takes it as the start of a uniform grid (one create per ``1/rate`` from it) until it
has ``k`` round trips of its own; ``handoff`` places that grid so that every create on it is at
least a second after the create ``k`` places before it ended, the last holder's included.
"""

from __future__ import annotations

import math
from collections import deque

# The provider counts in milliseconds, and a create reaching it exactly a second after another may be
# counted in that other's second: start a little later than the bound.
SPACING_MARGIN_S = 0.05


class CreateSpacing:
    """The create schedule of one submit-lease holder, from ``floor`` (the lease's ``next_submit_at``)."""

    def __init__(self, rate_per_s: float, *, floor: float) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"a create rate must be positive, got {rate_per_s!r}")
        # k creates in any window of ``window_s``: the rate, in whole creates (2.5/s allows 2 a second)
        self.per_window = max(1, math.floor(rate_per_s))
        self.window_s = max(1.0, self.per_window / rate_per_s)
        self.step_s = self.window_s / self.per_window
        # the round trips' ends of the last k creates, oldest first; before this holder's own, the
        # uniform grid the last holder handed over (see ``handoff``)
        self._ends: deque[float] = deque(
            (floor - (self.per_window - i) * self.step_s for i in range(self.per_window)),
            maxlen=self.per_window,
        )

    def next_start(self) -> float:
        """The earliest instant the next create may start."""
        return max(self._ends[0] + self.window_s + SPACING_MARGIN_S, self._ends[-1])

    def ended(self, at: float) -> None:
        """A create's round trip ended at ``at`` (whatever its outcome: a refused create was counted too)."""
        self._ends.append(at)

    def handoff(self) -> float:
        """The ``next_submit_at`` to leave for the next holder: the start of its uniform grid, placed so
        that its i-th create is a second after the round trip i creates before it ended."""
        k = self.per_window
        return max(end + (k - i) * self.step_s for i, end in enumerate(self._ends))


__all__ = ["SPACING_MARGIN_S", "CreateSpacing"]
