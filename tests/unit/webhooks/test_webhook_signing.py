"""Standard Webhooks signatures: secrets, signing, verifying, the event body."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from inbetween.webhooks import (
    InvalidSignature,
    build_event,
    new_secret,
    sign,
    verify,
)
from standardwebhooks.webhooks import Webhook
from webhook_kit import (
    NOW,
    event_body,
)

# --- signing ---------------------------------------------------------------------------------------


def test_new_secret_is_whsec_and_32_random_bytes():
    # Given / When
    first, second = new_secret(), new_secret()
    # Then
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_sign_is_hmac_sha256_over_id_timestamp_body_and_matches_the_reference_library():
    # Given
    secret = new_secret()
    body = event_body()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    # When
    signature = sign(secret, "msg_1", 1_700_000_000, body)
    # Then
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert signature == f"v1,{expected}"
    reference = Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(1_700_000_000, dt.UTC), body.decode())
    assert signature == reference


def test_sign_rejects_ids_that_would_make_the_signed_string_ambiguous():
    with pytest.raises(ValueError):
        sign(new_secret(), "msg.1", 1, b"{}")
    with pytest.raises(ValueError):
        sign(new_secret(), "", 1, b"{}")


def test_a_secret_that_is_not_base64_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as caught:
        sign("whsec_not*base64!", "msg_1", 1, b"{}")
    assert "not*base64" not in str(caught.value)


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def test_verify_accepts_a_fresh_signature_with_any_header_case():
    # Given
    secret, body = new_secret(), event_body()
    headers = {k.upper(): v for k, v in signed_headers(secret, "msg_1", int(NOW), body).items()}
    # When / Then
    verify(secret, headers, body, now=NOW + 10)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s, h, b: (s, h, b + b" "), "no matching"),
        (lambda s, h, b: (new_secret(), h, b), "no matching"),
        (lambda s, h, b: (s, {**h, "webhook-id": "msg_2"}, b), "no matching"),
        (lambda s, h, b: (s, {**h, "webhook-timestamp": str(int(NOW) - 301)}, b), "too old"),
        (lambda s, h, b: (s, {**h, "webhook-timestamp": str(int(NOW) + 301)}, b), "future"),
        (lambda s, h, b: (s, {**h, "webhook-timestamp": "soon"}, b), "integer"),
        (lambda s, h, b: (s, {k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
        (lambda s, h, b: (s, {**h, "webhook-signature": "v1,@@@ v2,abc garbage"}, b), "no matching"),
    ],
)
def test_verify_rejects_tampering_replay_and_malformed_headers_with_invalid_signature(change, reason):
    # Given a valid webhook, then one thing changed
    secret, body = new_secret(), event_body()
    headers = signed_headers(secret, "msg_1", int(NOW), body)
    used_secret, used_headers, used_body = change(secret, headers, body)
    # When / Then
    with pytest.raises(InvalidSignature, match=reason) as caught:
        verify(used_secret, used_headers, used_body, now=NOW)
    assert secret not in str(caught.value) and used_secret not in str(caught.value)


def test_verify_accepts_any_of_several_space_separated_signatures():
    # Given a message signed with the old and the new secret (rotation)
    old, new, body = new_secret(), new_secret(), event_body()
    header = f"{sign(old, 'msg_1', int(NOW), body)} {sign(new, 'msg_1', int(NOW), body)}"
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(NOW)), "webhook-signature": header}
    # When / Then: a receiver holding either secret accepts it
    verify(old, headers, body, now=NOW)
    verify(new, headers, body, now=NOW)
    with pytest.raises(InvalidSignature):
        verify(new_secret(), headers, body, now=NOW)


def test_build_event_is_compact_json_with_type_utc_timestamp_and_data():
    # Given an event time in another zone
    occurred = dt.datetime(2027, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    # When
    body = build_event("video.completed", {"job_id": "j", "name": "café"}, occurred_at=occurred)
    # Then
    assert (
        body
        == '{"type":"video.completed","timestamp":"2027-01-02T03:04:05.000Z","data":{"job_id":"j","name":"café"}}'.encode()
    )
    assert list(json.loads(body)) == ["type", "timestamp", "data"]


def test_build_event_refuses_a_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        build_event("x", {}, occurred_at=dt.datetime(2027, 1, 1))
