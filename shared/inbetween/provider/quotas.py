"""The account's live limits, read from the provider's list-quotas endpoint at most every few minutes.

Admission asks before every round of creates; a raised quota (or a workspace override) takes effect
within ``refresh_s`` without a redeploy. A failed read is not retried before ``refresh_s`` either: the
last figures read stay in force, and with none yet, admission falls back to the published ones.
One cache per container: at the poller's one-per-minute ticks and a few submit containers, the provider
sees a handful of reads per five minutes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from inbetween.errors import ProviderError
from inbetween.provider.models import ModelQuota

logger = logging.getLogger("inbetween")

QUOTA_REFRESH_S = 300.0


class LiveQuotas:
    """``inbetween.ports.QuotaSource`` over a ``read(model)`` call (the client's ``get_quota``)."""

    def __init__(
        self,
        read: Callable[[str], ModelQuota | None],
        *,
        now: Callable[[], float],
        refresh_s: float = QUOTA_REFRESH_S,
    ) -> None:
        self._read = read
        self._now = now
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        # model -> (when read, what was read); a failed read keeps the previous figures
        self._known: dict[str, tuple[float, ModelQuota | None]] = {}

    def quota_for(self, model: str) -> ModelQuota | None:
        with self._lock:
            now = self._now()
            cached = self._known.get(model)
            if cached is not None and now - cached[0] < self._refresh_s:
                return cached[1]
            previous = cached[1] if cached else None
            try:
                quota = self._read(model)
            except ProviderError as error:
                # the key may lack the permission, or the region may not answer this path: not an outage
                logger.warning(
                    "list-quotas for %s failed (%s); %s for %.0f s",
                    model,
                    error,
                    "keeping the last figures" if previous else "using the published figures",
                    self._refresh_s,
                )
                quota = previous
            self._known[model] = (now, quota)
            return quota
