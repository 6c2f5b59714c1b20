"""What one webhook attempt came to: a plain value, so the use cases can read it without the sender."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one attempt.

    delivered: 2xx. gone: 410, the receiver asks us to stop (disable the endpoint). retry: worth another
    attempt later (bounded by the caller's schedule). retry_after_s: the receiver's Retry-After, if any.
    error: human-readable, never a secret, never the URL's path or query (they may carry tokens).
    A URL refused by the SSRF guard is not a result: ``deliver`` raises ``UnsafeWebhookUrl``.
    """

    delivered: bool
    status_code: int | None
    retry: bool
    retry_after_s: float | None
    gone: bool
    error: str
