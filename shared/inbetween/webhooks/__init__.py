"""Signed outbound webhooks (Standard Webhooks v1) behind an SSRF guard.

    sender = WebhookSender(secret, AddressPolicy())
    body = build_event("video.completed", {...}, occurred_at=datetime.now(UTC))
    result = sender.deliver(url, msg_id, body)          # one attempt; msg_id stable across retries
    delay = retry_delay_after(result, failed_attempts)  # None: stop (delivered, gone, exhausted)

Runtime dependencies: httpx and the standard library only.
"""

from inbetween.webhooks.guard import (
    AddressPolicy,
    ResolvedTarget,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    blocked_reason,
    check_webhook_url,
)
from inbetween.webhooks.outcome import DeliveryResult
from inbetween.webhooks.schedule import RETRY_DELAYS_S, next_retry_delay
from inbetween.webhooks.sender import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    WebhookSender,
    parse_retry_after,
    retry_delay_after,
)
from inbetween.webhooks.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    InvalidSignature,
    build_event,
    new_secret,
    sign,
    signature_header,
    verify,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MAX_RESPONSE_BYTES",
    "RETRY_DELAYS_S",
    "AddressPolicy",
    "DeliveryResult",
    "InvalidSignature",
    "ResolvedTarget",
    "UnsafeWebhookUrl",
    "WebhookHostUnresolvable",
    "WebhookSender",
    "blocked_reason",
    "build_event",
    "check_webhook_url",
    "new_secret",
    "next_retry_delay",
    "parse_retry_after",
    "retry_delay_after",
    "sign",
    "signature_header",
    "verify",
]
