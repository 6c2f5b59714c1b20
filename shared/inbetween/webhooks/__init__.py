"""Signed outbound webhooks (Standard Webhooks v1) behind an SSRF guard.

    sender = WebhookSender(secret, AddressPolicy())
    body = build_event("video.completed", {...}, occurred_at=datetime.now(UTC))
    result = sender.deliver(url, msg_id, body)          # one attempt; msg_id stable across retries
    delay = retry_delay_after(result, failed_attempts)  # None: stop (delivered, gone, exhausted)

Runtime dependencies: httpx and the standard library only.
"""

# Names are imported from their modules on first use (PEP 562), so that importing a pure module of
# this package (its models, its schedule) does not load the HTTP client, and with it httpx.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AddressPolicy": "inbetween.webhooks.guard",
    "DEFAULT_TIMEOUT": "inbetween.webhooks.sender",
    "DeliveryResult": "inbetween.webhooks.outcome",
    "HEADER_ID": "inbetween.webhooks.signing",
    "HEADER_SIGNATURE": "inbetween.webhooks.signing",
    "HEADER_TIMESTAMP": "inbetween.webhooks.signing",
    "InvalidSignature": "inbetween.webhooks.signing",
    "MAX_RESPONSE_BYTES": "inbetween.webhooks.sender",
    "RETRY_DELAYS_S": "inbetween.webhooks.schedule",
    "ResolvedTarget": "inbetween.webhooks.guard",
    "UnsafeWebhookUrl": "inbetween.webhooks.guard",
    "WebhookHostUnresolvable": "inbetween.webhooks.guard",
    "WebhookSender": "inbetween.webhooks.sender",
    "blocked_reason": "inbetween.webhooks.guard",
    "build_event": "inbetween.webhooks.signing",
    "check_webhook_url": "inbetween.webhooks.guard",
    "new_secret": "inbetween.webhooks.signing",
    "next_retry_delay": "inbetween.webhooks.schedule",
    "parse_retry_after": "inbetween.webhooks.sender",
    "retry_delay_after": "inbetween.webhooks.sender",
    "sign": "inbetween.webhooks.signing",
    "signature_header": "inbetween.webhooks.signing",
    "verify": "inbetween.webhooks.signing",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
