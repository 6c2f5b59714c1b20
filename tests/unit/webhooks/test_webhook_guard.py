"""The SSRF guard: which webhook URLs may be delivered to, and the messages of those refused.

Name resolution is always stubbed."""

from __future__ import annotations

import ipaddress

import pytest
from inbetween.errors import InvalidJob
from inbetween.webhooks import (
    AddressPolicy,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    check_webhook_url,
)
from webhook_kit import (
    CLOUD,
    HOST,
    LOCAL,
    PUBLIC_V4,
    PUBLIC_V6,
    URL,
    no_resolution,
    resolving,
)

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
