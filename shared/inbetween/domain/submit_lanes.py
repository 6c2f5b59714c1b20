"""Submit lanes: one per API key, so that creates overlap while each stays reconcilable.

Creates through one lane are serialized (one open lease per lane), so one lane makes at most one
create per round trip: ~2 a second at 0.4 s, where wan2.7 allows 5 and a burst at a raised quota
would fill its slots faster. Two creates in flight under one key cannot be told apart if both end
without an answer: the task list gives each task its creation time and its ``api_key_id``, nothing
more. Under different keys they can: each lane's reconciliation lists only its own key's tasks
(``api_key_id``), over its own window. So each API key of the account gets a lane of its own.

The provider counts creates per account, not per key (wan27-i2v reference §5.1), so the account's
creates a second are shared out among the lanes in whole creates: ``floor(rate)`` of them, one lane
per key up to that many (a key beyond it would get no share), the remainder to the first lanes.
Within its share each lane spaces its creates as one lane always did (``CreateSpacing``); the shares
add up to no more than the account's rate, whatever each lane's round trips do.

With one key there is one lane, the account's (``name == ""``): exactly the single-lease design, with
the lease item it always had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SubmitLane:
    """One lane: the key it creates with, its share of the creates a second, its place."""

    key_ref: str | None  # None: the first (only) key, through the account's lane
    rate_per_s: float
    # its place among the lanes: the lanes filling a burst together take the waiting jobs in turn (the
    # n-th lane the n-th oldest), so that they do not all reach for the oldest one at once
    position: int = 0

    @property
    def name(self) -> str:
        """Its lease's name: "" for the account's lane, else its key's reference."""
        return self.key_ref or ""


def submit_lanes(key_refs: tuple[str, ...], rate_per_s: float) -> tuple[SubmitLane, ...]:
    """The lanes for these keys at the account's create rate (see the module docstring)."""
    whole = math.floor(rate_per_s)
    if len(key_refs) <= 1 or whole < 2:
        return (SubmitLane(None, rate_per_s),)
    count = min(len(key_refs), whole)
    base, extra = divmod(whole, count)
    return tuple(
        SubmitLane(ref, float(base + (1 if i < extra else 0)), i) for i, ref in enumerate(key_refs[:count])
    )


__all__ = ["SubmitLane", "submit_lanes"]
