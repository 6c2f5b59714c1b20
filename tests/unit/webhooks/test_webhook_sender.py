"""Delivering one signed webhook: what is sent, what an answer means, and what never leaks.

Name resolution is always stubbed; the only sockets opened go to 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import socket
import ssl
from collections.abc import Iterator
from email.utils import format_datetime

import httpx
import pytest
from inbetween.errors import ConfigError
from inbetween.webhooks import (
    AddressPolicy,
    DeliveryResult,
    UnsafeWebhookUrl,
    WebhookSender,
    new_secret,
    parse_retry_after,
    retry_delay_after,
    verify,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from webhook_kit import (
    CLOUD,
    HOST,
    LOCAL,
    NOW,
    PUBLIC_V4,
    URL,
    LoopbackServer,
    Recorder,
    StubResolver,
    event_body,
    resolving,
    sender_with,
)

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
