"""Signed outbound webhooks: signatures, the SSRF guard, delivery outcomes, the retry schedule.

Name resolution is always stubbed; the only sockets opened go to 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import ipaddress
import json
import logging
import random
import socket
import ssl
import threading
from collections.abc import Iterator
from email.utils import format_datetime

import httpx
import pytest
from inbetween.errors import ConfigError, InvalidJob
from inbetween.webhooks import (
    RETRY_DELAYS_S,
    AddressPolicy,
    DeliveryResult,
    InvalidSignature,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    WebhookSender,
    build_event,
    check_webhook_url,
    new_secret,
    next_retry_delay,
    parse_retry_after,
    retry_delay_after,
    sign,
    verify,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST = "hooks.example.com"
URL = f"https://{HOST}/inbetween/hook?token=url-token-123"
PUBLIC_V4 = "8.8.8.8"
PUBLIC_V6 = "2606:4700:4700::1111"
CLOUD = AddressPolicy()
LOCAL = AddressPolicy(allow_loopback=True, allow_http=True)
NOW = 1_800_000_000.0


# --- helpers ---------------------------------------------------------------------------------------


class StubResolver:
    """getaddrinfo stand-in: host -> addresses, optionally a different answer on each call. Counts calls."""

    def __init__(self, *answers: dict[str, list[str]]):
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        table = self.answers[min(len(self.calls), len(self.answers) - 1)]
        self.calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in table[host]
        ]


def resolving(host: str, *addresses: str) -> StubResolver:
    return StubResolver({host: list(addresses)})


def no_resolution(*args, **kwargs):
    raise AssertionError("the guard must not resolve this host")


class Recorder:
    """A MockTransport handler that answers from a list of responses and keeps every request."""

    def __init__(self, *responses: httpx.Response):
        self.responses = list(responses) or [httpx.Response(204)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        template = self.responses[min(len(self.requests), len(self.responses)) - 1]
        return httpx.Response(template.status_code, headers=template.headers, content=template.content)


def sender_with(
    handler, *, secret: str | None = None, policy: AddressPolicy = CLOUD, resolver=None
) -> WebhookSender:
    return WebhookSender(
        secret or new_secret(),
        policy,
        resolver=resolver or resolving(HOST, PUBLIC_V4),
        transport=httpx.MockTransport(handler),
    )


def event_body() -> bytes:
    return build_event(
        "video.completed",
        {"job_id": "job_1", "status": "SUCCEEDED", "video_url": "https://cdn.example.com/v.mp4"},
        occurred_at=dt.datetime(2027, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
    )


class LoopbackServer:
    """http.server on 127.0.0.1:<ephemeral> in a thread; records (headers, body) and answers `status`."""

    def __init__(self, status: int = 204):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                owner.received.append(
                    ({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                )
                self.send_response(owner.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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


# --- the guard: addresses ----------------------------------------------------------------------------

BLOCKED_ADDRESSES = [
    "0.0.0.0", "0.1.2.3",
    "10.0.0.5", "10.255.255.255",
    "100.64.0.1", "100.127.255.254",
    "127.0.0.1", "127.255.255.254",
    "169.254.169.254", "169.254.0.1",
    "172.16.0.1", "172.31.255.255",
    "192.0.0.1", "192.0.0.170",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1", "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255",
    "::1", "::",
    "fe80::1", "febf::1",
    "fc00::1", "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.5", "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe", "64:ff9b::808:808", "64:ff9b:1::a00:5",
    "2002:a9fe:a9fe::1", "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "fd00:ec2::254",
    "::127.0.0.1",
]  # fmt: skip


@pytest.mark.parametrize("address", BLOCKED_ADDRESSES)
def test_a_host_resolving_to_a_non_public_address_is_refused_with_an_actionable_message(address):
    # Given a public-looking host name that resolves to a non-public address
    resolver = resolving(HOST, address)
    # When
    with pytest.raises(UnsafeWebhookUrl) as caught:
        check_webhook_url(URL, CLOUD, resolver=resolver)
    # Then
    error = caught.value
    assert isinstance(error, InvalidJob)
    assert error.code == "UnsafeWebhookUrl" and error.field == "webhook_url"
    assert f"host '{HOST}' resolves to " in error.message
    assert "use a public https endpoint" in error.message
    assert "token" not in error.message and "/inbetween/hook" not in error.message
    assert error.hint


@pytest.mark.parametrize("address", BLOCKED_ADDRESSES)
def test_a_non_public_address_literal_is_refused_without_resolution(address):
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeWebhookUrl, match="use a public https endpoint"):
        check_webhook_url(f"https://{literal}/hook", CLOUD, resolver=no_resolution)


def test_the_private_address_message_names_host_and_address():
    with pytest.raises(UnsafeWebhookUrl) as caught:
        check_webhook_url("https://x.example.net/", CLOUD, resolver=resolving("x.example.net", "10.0.0.5"))
    assert caught.value.message == (
        "webhook_url host 'x.example.net' resolves to 10.0.0.5, a private address; use a public https endpoint"
    )


def test_nat64_message_names_the_embedded_ipv4():
    with pytest.raises(UnsafeWebhookUrl, match=r"NAT64 address embedding 169\.254\.169\.254"):
        check_webhook_url(URL, CLOUD, resolver=resolving(HOST, "64:ff9b::a9fe:a9fe"))


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0177.1/",
        "http://127.1/",
        "http://017700000001/",
        "http://0/",
        "http://0.0.0.0/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://2852039166/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
        "http://127.0.0.1./",
        "http://10.1/",
    ],
)
def test_decimal_octal_hex_and_mapped_ipv4_literals_do_not_sneak_through(url):
    with pytest.raises(UnsafeWebhookUrl) as caught:
        check_webhook_url(url, AddressPolicy(allow_http=True), resolver=no_resolution)
    # Refused either by the URL parser (4-part forms it knows are not dotted-decimal) or by the guard
    assert caught.value.message in ("webhook_url is not a valid URL",) or caught.value.message.endswith(
        "use a public https endpoint"
    )


@pytest.mark.parametrize(
    "url",
    ["http://256.1/", "http://1.16777216/", "http://08.1/", "http://4294967296/", "http://1.2.0x10000/"],
)
def test_out_of_range_numeric_hosts_are_refused(url):
    with pytest.raises(UnsafeWebhookUrl, match="not a valid address"):
        check_webhook_url(url, AddressPolicy(allow_http=True), resolver=no_resolution)


@pytest.mark.parametrize(
    ("addresses", "expected_ip"),
    [
        ([PUBLIC_V4], PUBLIC_V4),
        ([PUBLIC_V6], PUBLIC_V6),
        ([PUBLIC_V6, "1.1.1.1"], "1.1.1.1"),
        (["::ffff:8.8.8.8"], "8.8.8.8"),
    ],
)
def test_a_public_host_is_accepted_and_the_checked_address_returned(addresses, expected_ip):
    # Given / When
    target = check_webhook_url(
        "https://Hooks.Example.com.:8443/a/b?c=1", CLOUD, resolver=resolving(HOST, *addresses)
    )
    # Then
    assert (target.host, target.port, target.ip) == (HOST, 8443, expected_ip)
    assert target.addresses == tuple(str(ipaddress.ip_address(a)) for a in addresses)
    assert target.target == "/a/b?c=1"
    assert target.host_header == f"{HOST}:8443"


def test_every_resolved_address_is_checked_not_just_the_first():
    resolver = resolving(HOST, PUBLIC_V4, "2001:4860:4860::8888", "169.254.169.254")
    with pytest.raises(UnsafeWebhookUrl, match="169.254.169.254"):
        check_webhook_url(URL, CLOUD, resolver=resolver)


def test_the_host_is_resolved_exactly_once():
    resolver = resolving(HOST, PUBLIC_V4)
    check_webhook_url(URL, CLOUD, resolver=resolver)
    assert resolver.calls == [HOST]


# --- the guard: names, schemes, ports, credentials -------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "metadata.google.internal",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "printer.local",
        "intranet",
    ],
)
def test_internal_names_are_refused_by_name_whatever_they_resolve_to(host):
    resolver = resolving(host.lower().rstrip("."), PUBLIC_V4)
    with pytest.raises(UnsafeWebhookUrl, match="is an internal name; use a public https endpoint"):
        check_webhook_url(f"https://{host}/hook", CLOUD, resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/", "ftp://hooks.example.com/", "file:///etc/passwd", "gopher://x/"]
)
def test_only_https_is_accepted_by_default(url):
    with pytest.raises(UnsafeWebhookUrl, match="webhook_url must use https"):
        check_webhook_url(url, CLOUD, resolver=resolving(HOST, PUBLIC_V4))


def test_plain_http_is_accepted_when_the_policy_allows_it():
    target = check_webhook_url(
        "http://hooks.example.com/", AddressPolicy(allow_http=True), resolver=resolving(HOST, PUBLIC_V4)
    )
    assert (target.scheme, target.port) == ("http", 80)


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(UnsafeWebhookUrl) as caught:
        check_webhook_url(
            "https://admin:hunter2@hooks.example.com/", CLOUD, resolver=resolving(HOST, PUBLIC_V4)
        )
    assert "user name or password" in caught.value.message
    assert "hunter2" not in caught.value.message and "hunter2" not in caught.value.hint


def test_ports_outside_the_allowed_set_are_refused():
    policy = AddressPolicy(allowed_ports=frozenset({443}))
    with pytest.raises(UnsafeWebhookUrl, match="port 8443 is not allowed; use one of: 443"):
        check_webhook_url("https://hooks.example.com:8443/", policy, resolver=resolving(HOST, PUBLIC_V4))
    assert (
        check_webhook_url("https://hooks.example.com/", policy, resolver=resolving(HOST, PUBLIC_V4)).port
        == 443
    )


@pytest.mark.parametrize("url", ["not a url", "https://", "https:///path", ""])
def test_malformed_urls_are_refused(url):
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url, CLOUD, resolver=no_resolution)


def test_an_unresolvable_host_is_reported_as_retryable():
    with pytest.raises(WebhookHostUnresolvable, match="did not resolve") as caught:
        check_webhook_url("https://nope.example.com/", CLOUD, resolver=resolving(HOST, PUBLIC_V4))
    assert caught.value.retryable and isinstance(caught.value, OSError)
    assert not isinstance(caught.value, InvalidJob)  # a DNS hiccup must not reject the job


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("127.0.0.1", []),
        ("127.8.9.10", []),
        ("[::1]", []),
        ("localhost", ["127.0.0.1"]),
        ("localhost", ["::1"]),
    ],
)
def test_allow_loopback_admits_loopback_only(host, addresses):
    resolver = resolving("localhost", *addresses) if addresses else no_resolution
    target = check_webhook_url(f"http://{host}:8080/", LOCAL, resolver=resolver)
    assert target.port == 8080


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "169.254.169.254", "0.0.0.0", "::", "fd00:ec2::254", "64:ff9b::7f00:1", "::ffff:10.0.0.1"],
)
def test_allow_loopback_still_blocks_everything_else(address):
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url("http://localhost:8080/", LOCAL, resolver=resolving("localhost", address))


# --- delivery (mock transport) ---------------------------------------------------------------------


def test_deliver_posts_signed_bytes_to_the_checked_address_with_host_header_and_sni():
    # Given
    secret, body, recorder = new_secret(), event_body(), Recorder(httpx.Response(200))
    sender = sender_with(recorder, secret=secret)
    # When
    result = sender.deliver(URL, "msg_abc", body)
    # Then
    assert result == DeliveryResult(True, 200, False, None, False, "")
    [request] = recorder.requests
    assert str(request.url) == f"https://{PUBLIC_V4}/inbetween/hook?token=url-token-123"
    assert request.headers["host"] == HOST
    assert request.extensions["sni_hostname"] == HOST
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "inbetween-webhooks/1"
    assert request.headers["webhook-id"] == "msg_abc"
    assert request.content == body
    headers = dict(request.headers)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    verify(secret, headers, body)


def test_every_secret_in_rotation_signs_and_each_verifies_with_the_reference_library():
    old, new = new_secret(), new_secret()
    recorder = Recorder()
    sender = WebhookSender(
        [old, new], CLOUD, resolver=resolving(HOST, PUBLIC_V4), transport=httpx.MockTransport(recorder)
    )
    sender.deliver(URL, "msg_1", event_body())
    [request] = recorder.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.content, dict(request.headers))


def test_a_secret_callable_is_read_on_every_delivery():
    secrets = iter([new_secret(), new_secret()])
    used: list[str] = []

    def current() -> str:
        used.append(next(secrets))
        return used[-1]

    recorder = Recorder()
    sender = WebhookSender(
        current, CLOUD, resolver=resolving(HOST, PUBLIC_V4), transport=httpx.MockTransport(recorder)
    )
    sender.deliver(URL, "msg_1", b"{}")
    sender.deliver(URL, "msg_1", b"{}")
    for secret, request in zip(used, recorder.requests, strict=True):
        Webhook(secret).verify(request.content, dict(request.headers))


def test_retries_keep_the_webhook_id_and_sign_a_fresh_timestamp():
    # Given a receiver that fails once, then accepts
    secret, body = new_secret(), event_body()
    recorder = Recorder(httpx.Response(503), httpx.Response(204))
    sender = sender_with(recorder, secret=secret)
    # When two attempts are made a minute apart
    first = sender.deliver(URL, "msg_evt_1", body, now=NOW)
    second = sender.deliver(URL, "msg_evt_1", body, now=NOW + 60.7)
    # Then
    assert (first.delivered, first.retry, second.delivered) == (False, True, True)
    ids = [r.headers["webhook-id"] for r in recorder.requests]
    stamps = [r.headers["webhook-timestamp"] for r in recorder.requests]
    assert ids == ["msg_evt_1", "msg_evt_1"]
    assert stamps == [str(int(NOW)), str(int(NOW + 60.7))]
    for request, stamp in zip(recorder.requests, stamps, strict=True):
        verify(secret, dict(request.headers), request.content, now=float(stamp))


def test_a_refused_url_raises_before_any_connection():
    recorder = Recorder()
    sender = sender_with(recorder, resolver=resolving(HOST, "169.254.169.254"))
    with pytest.raises(UnsafeWebhookUrl) as caught:
        sender.deliver(URL, "msg_1", b"{}")
    assert recorder.requests == []
    assert "169.254.169.254" in caught.value.message and "use a public https endpoint" in caught.value.message


def test_an_unresolvable_host_is_a_retryable_failure():
    result = sender_with(Recorder(), resolver=StubResolver({})).deliver(URL, "msg_1", b"{}")
    assert (result.delivered, result.retry, result.status_code) == (False, True, None)
    assert "did not resolve" in result.error


def test_a_redirect_is_not_followed():
    # Given a receiver that redirects to a private address
    recorder = Recorder(httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"}))
    # When
    result = sender_with(recorder).deliver(URL, "msg_1", b"{}")
    # Then
    assert len(recorder.requests) == 1
    assert (result.delivered, result.status_code, result.retry, result.gone) == (False, 302, True, False)
    assert "redirects are not followed" in result.error


def test_410_gone_stops_retrying():
    result = sender_with(Recorder(httpx.Response(410))).deliver(URL, "msg_1", b"{}")
    assert (result.delivered, result.gone, result.retry, result.status_code) == (False, True, False, 410)
    assert retry_delay_after(result, 1) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 422, 429, 500, 502, 503, 504])
def test_other_failures_are_retried(status):
    result = sender_with(Recorder(httpx.Response(status, text="nope"))).deliver(URL, "msg_1", b"{}")
    assert (result.delivered, result.gone, result.retry, result.status_code) == (False, False, True, status)
    assert str(status) in result.error and HOST in result.error


def test_retry_after_in_seconds_is_honoured():
    # Given
    result = sender_with(Recorder(httpx.Response(429, headers={"retry-after": "120"}))).deliver(
        URL, "msg_1", b"{}"
    )
    # Then
    assert result.retry_after_s == 120
    assert retry_delay_after(result, 1, rng=random.Random(1)) == 120  # longer than the 5 s step


def test_retry_after_as_an_http_date_is_honoured():
    when = dt.datetime.fromtimestamp(NOW + 600, dt.UTC)
    response = httpx.Response(503, headers={"retry-after": format_datetime(when, usegmt=True)})
    result = sender_with(Recorder(response)).deliver(URL, "msg_1", b"{}", now=NOW)
    assert result.retry_after_s == 600


def test_a_short_retry_after_does_not_shorten_the_schedule():
    result = DeliveryResult(False, 429, True, 1.0, False, "429")
    assert 1800 * 0.9 <= retry_delay_after(result, 3) <= 1800 * 1.1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        ("1e9", 86400.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


def test_connection_errors_are_retryable_and_carry_no_secret_or_path():
    secret = new_secret()

    def broken(request):
        raise httpx.ConnectError(f"boom {secret} {request.url.raw_path.decode()}")

    result = sender_with(broken, secret=secret).deliver(URL, "msg_1", b"{}")
    assert (result.delivered, result.retry, result.status_code) == (False, True, None)
    assert "boom" in result.error
    assert secret not in result.error and secret.removeprefix("whsec_") not in result.error
    assert "url-token-123" not in result.error


def test_only_a_few_kilobytes_of_the_answer_are_read():
    # Given a receiver that streams an endless error page
    pulled = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1024)
            yield b"x" * 1024

    def recorder(request):
        return httpx.Response(500, content=endless())

    # When
    result = sender_with(recorder).deliver(URL, "msg_1", b"{}")
    # Then
    assert result.retry and sum(pulled) <= 8 * 1024
    assert len(result.error) < 400


def test_the_secret_never_appears_in_results_logs_or_repr(caplog):
    # Given a receiver that even echoes the signature back
    secret = new_secret()

    def echo(request):
        return httpx.Response(
            401, text=f"bad signature {request.headers['webhook-signature']} secret={secret}"
        )

    sender = sender_with(echo, secret=secret)
    caplog.set_level(logging.DEBUG)
    # When
    results = [sender.deliver(URL, "msg_1", b"{}")]
    with pytest.raises(UnsafeWebhookUrl) as refused:
        sender_with(echo, secret=secret, resolver=resolving(HOST, "10.0.0.1")).deliver(URL, "msg_1", b"{}")
    # Then
    texts = [r.error for r in results] + [caplog.text, repr(sender), repr(results), str(refused.value)]
    for text in texts:
        assert secret not in text and secret.removeprefix("whsec_") not in text
    assert caplog.records  # something was logged, and it was clean


def test_a_bad_static_secret_fails_fast_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        WebhookSender("whsec_%%%notbase64%%%", CLOUD)
    assert "notbase64" not in str(caught.value)


# --- the schedule ----------------------------------------------------------------------------------


def test_the_schedule_is_the_standard_webhooks_example():
    assert RETRY_DELAYS_S == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert sum(RETRY_DELAYS_S) > 24 * 3600


def test_next_retry_delay_follows_the_schedule_with_ten_percent_jitter_then_stops():
    rng = random.Random(7)
    assert next_retry_delay(0, rng=rng) == 0
    for attempt, base in enumerate(RETRY_DELAYS_S[1:], start=1):
        delays = [next_retry_delay(attempt, rng=rng) for _ in range(50)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1
    assert next_retry_delay(len(RETRY_DELAYS_S)) is None
    with pytest.raises(ValueError):
        next_retry_delay(-1)


def test_retry_delay_after_stops_on_success_no_retry_and_exhaustion():
    ok = DeliveryResult(True, 200, False, None, False, "")
    refused = DeliveryResult(False, None, False, None, False, "unsafe")
    failed = DeliveryResult(False, 500, True, None, False, "500")
    assert retry_delay_after(ok, 1) is None
    assert retry_delay_after(refused, 1) is None
    assert retry_delay_after(failed, len(RETRY_DELAYS_S)) is None
    assert retry_delay_after(failed, 1) is not None


# --- real sockets on loopback ----------------------------------------------------------------------


def test_dns_rebinding_is_defeated_by_connecting_to_the_checked_address():
    # Given a name that resolves to loopback once, then (rebinding) to a private address
    with LoopbackServer() as server:
        resolver = StubResolver({"rebind.example.com": ["127.0.0.1"]}, {"rebind.example.com": ["10.0.0.5"]})
        secret = new_secret()
        sender = WebhookSender(secret, LOCAL, resolver=resolver)
        url = f"http://rebind.example.com:{server.port}/hook"
        # When
        result = sender.deliver(url, "msg_1", event_body())
        sender.close()
    # Then: one resolution, and the request reached the address that was checked (10.0.0.5 would have
    # tripped the test suite's loopback-only guard)
    assert result.delivered, result.error
    assert resolver.calls == ["rebind.example.com"]
    [(headers, body)] = server.received
    assert headers["host"] == f"rebind.example.com:{server.port}"
    Webhook(secret).verify(body, headers)


def test_a_receiver_that_never_answers_times_out_as_a_retryable_failure():
    # Given a socket that accepts connections and never says a word
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    sender = WebhookSender(new_secret(), LOCAL, timeout=httpx.Timeout(0.3, connect=1.0))
    try:
        # When
        result = sender.deliver(f"http://127.0.0.1:{port}/", "msg_1", b"{}")
    finally:
        sender.close()
        listener.close()
    # Then
    assert (result.delivered, result.retry, result.status_code) == (False, True, None)
    assert "timed out" in result.error


def test_a_refused_connection_is_a_retryable_failure():
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        with WebhookSender(new_secret(), LOCAL) as sender:
            result = sender.deliver(f"http://127.0.0.1:{bound.getsockname()[1]}/", "msg_1", b"{}")
    finally:
        bound.close()
    assert (result.delivered, result.retry) == (False, True)


# --- TLS: pinned address, certificate checked against the host name --------------------------------


@pytest.fixture
def tls_files(tmp_path):
    """A throwaway CA and a server certificate for hooks.example.test (no IP in it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    end = start + dt.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test ca"))
        .issuer_name(name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("hooks.example.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path


@pytest.fixture
def tls_server(tls_files):
    server = LoopbackServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    server.sni_seen = []
    context.sni_callback = lambda sock, server_name, ctx: server.sni_seen.append(server_name)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        yield server


@pytest.mark.parametrize(("host", "delivered"), [("hooks.example.test", True), ("other.example.test", False)])
def test_tls_goes_to_the_pinned_address_but_checks_the_certificate_against_the_host_name(
    tls_files, tls_server, host, delivered
):
    # Given a client that trusts the test CA, and a name resolved (once) to the loopback TLS server
    client_tls = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    secret = new_secret()
    resolver = resolving(host, "127.0.0.1")
    policy = AddressPolicy(allow_loopback=True)  # https only
    with WebhookSender(
        secret, policy, resolver=resolver, transport=httpx.HTTPTransport(verify=client_tls)
    ) as sender:
        # When
        result = sender.deliver(f"https://{host}:{tls_server.port}/hook", "msg_1", event_body())
    # Then: the certificate names hooks.example.test only (no IP), so success proves the check used the host
    # name, and failure for other.example.test proves the check is on.
    assert tls_server.sni_seen[:1] == [host]
    assert result.delivered is delivered, result.error
    if delivered:
        [(headers, body)] = tls_server.received
        assert headers["host"] == f"{host}:{tls_server.port}"
        Webhook(secret).verify(body, headers)
    else:
        assert "certificate" in result.error.lower() and result.retry
        assert tls_server.received == []


def test_reference_library_rejects_a_tampered_delivery():
    # Sanity check that the reference verifier used above actually verifies
    secret, recorder = new_secret(), Recorder()
    sender_with(recorder, secret=secret).deliver(URL, "msg_1", event_body())
    [request] = recorder.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.content + b" ", dict(request.headers))
