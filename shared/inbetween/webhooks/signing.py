"""Standard Webhooks v1 signatures: HMAC-SHA256 over ``{id}.{timestamp}.{body}``, keyed by a ``whsec_`` secret.

Pure functions over bytes; no I/O. Receivers verify the exact bytes we send, so nothing here re-serialises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from inbetween.errors import InbetweenError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks key prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class InvalidSignature(InbetweenError):
    """A webhook failed verification. The message says why and never contains the secret or a signature."""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 random bytes (the form receivers paste into SDKs)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    # The message must not echo the secret: a misconfigured secret is still a secret.
    encoded = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64 after the 'whsec_' prefix") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _check_msg_id(msg_id: str) -> None:
    # The id travels in a header and inside the signed string: printable ASCII only, no separators that
    # could make two (id, timestamp) pairs sign the same bytes.
    if not msg_id or not msg_id.isascii() or not msg_id.isprintable() or any(c in msg_id for c in " .,"):
        raise ValueError("webhook msg_id must be non-empty printable ASCII without spaces, dots or commas")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode("ascii") + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``f"{msg_id}.{timestamp}." + body`` (one entry of ``webhook-signature``)."""
    _check_msg_id(msg_id)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("webhook timestamp must be integer Unix seconds")
    signature = _digest(_secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(signature).decode('ascii')}"


def signature_header(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one or more secrets (several while a secret is being rotated)."""
    entries = [sign(secret, msg_id, timestamp, body) for secret in secrets_]
    if not entries:
        raise ValueError("no webhook secret to sign with")
    return " ".join(entries)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise ``InvalidSignature`` unless one ``v1`` entry matches.

    Header names are matched case-insensitively. ``webhook-signature`` may hold several space-separated
    entries (key rotation); unknown versions and malformed entries are skipped, not fatal.
    """
    msg_id = _header(headers, HEADER_ID)
    raw_timestamp = _header(headers, HEADER_TIMESTAMP)
    raw_signatures = _header(headers, HEADER_SIGNATURE)
    if not (msg_id and raw_timestamp and raw_signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not integer Unix seconds") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise InvalidSignature("webhook-timestamp is too old (replayed or delayed message)")
    if timestamp > current + tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far in the future (check the clock)")
    try:
        expected = _digest(_secret_key(secret), msg_id, timestamp, body)
    except UnicodeEncodeError:
        raise InvalidSignature("webhook-id is not ASCII") from None
    matched = False
    for entry in raw_signatures.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Compare every entry: no early exit that would tell which one matched.
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("no matching webhook signature")


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("occurred_at must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(event_type: str, data: dict[str, Any], *, occurred_at: datetime) -> bytes:
    """The Standard Webhooks payload ``{"type", "timestamp", "data"}`` as compact UTF-8 JSON bytes.

    Sign and send these exact bytes. ``timestamp`` is the event time (ISO 8601, UTC, milliseconds), which
    lets receivers drop stale events delivered out of order.
    """
    if not event_type:
        raise ValueError("event_type must not be empty")
    payload = {"type": event_type, "timestamp": _utc_iso(occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
