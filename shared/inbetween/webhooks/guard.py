"""SSRF guard for user-supplied webhook URLs: parse, refuse by name, resolve once, check every address.

The sender then connects to the address checked here (never resolving again), which defeats DNS rebinding.
Python's ``ipaddress`` flags are not enough on their own (``100.64.0.1`` is not ``is_private``; NAT64 and
6to4 addresses that embed 169.254.169.254 report ``is_global``), so the ranges are spelled out.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from inbetween.errors import InvalidJob

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

FIELD = "webhook_url"
HINT = "use a public https endpoint, for example https://hooks.example.com/inbetween"


class UnsafeWebhookUrl(InvalidJob):
    """The webhook URL is refused before any connection: wrong scheme, credentials, or a non-public target."""

    def __init__(self, message: str, *, hint: str = HINT):
        super().__init__(message, code="UnsafeWebhookUrl", hint=hint, field=FIELD)


class WebhookHostUnresolvable(OSError):
    """The host name did not resolve. Possibly transient (DNS outage), possibly a typo: not a reason to
    reject a job, a reason to retry the delivery. An ``OSError``, like the resolver failure it wraps."""

    retryable = True
    code = "WebhookHostUnresolvable"
    hint = "check the spelling of the webhook_url host and that it has a public DNS record"
    field = FIELD

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """What the guard lets through. The defaults are the cloud's: https to public addresses only.

    ``allow_loopback`` and ``allow_http`` exist for the local stack (receiver on 127.0.0.1). In Lambda the
    runtime API listens on loopback, so never enable them there.
    """

    allow_loopback: bool = False
    allow_http: bool = False
    allowed_ports: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A checked destination. Connect to ``ip``; send ``host`` as Host header and TLS server name."""

    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, lower case, without a trailing dot
    port: int
    ip: str  # the checked address to connect to
    addresses: tuple[str, ...]  # every address the name resolved to (all checked)
    target: str  # path and query, as sent in the request line
    host_is_ip: bool = False

    @property
    def origin(self) -> str:
        """``scheme://host:port`` for messages: never the path or query, which may carry tokens."""
        return f"{self.scheme}://{_bracketed(self.host)}:{self.port}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return _bracketed(self.host) if self.port == default else f"{_bracketed(self.host)}:{self.port}"

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name: what the HTTP client dials."""
        return f"{self.scheme}://{_bracketed(self.ip)}:{self.port}{self.target}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# (networks, description) in the order they are tested; the description completes "resolves to X, ...".
_BLOCKED_V4: tuple[tuple[tuple[Any, ...], str], ...] = (
    (_nets("127.0.0.0/8"), "a loopback address"),
    (_nets("0.0.0.0/8"), "a 'this network' address"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private address"),
    (_nets("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_nets("169.254.0.0/16"), "a link-local address (cloud instance metadata lives there)"),
    (_nets("192.0.0.0/24", "198.18.0.0/15", "192.88.99.0/24"), "a reserved address"),
    (_nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"), "a documentation address"),
    (_nets("224.0.0.0/4"), "a multicast address"),
    (_nets("240.0.0.0/4", "255.255.255.255/32"), "a reserved address"),
)
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")

_BLOCKED_V6: tuple[tuple[tuple[Any, ...], str], ...] = (
    (_nets("::1/128"), "a loopback address"),
    (_nets("::/128"), "the unspecified address"),
    (_nets("::/96"), "a deprecated IPv4-compatible address"),
    (_nets("fd00:ec2::254/128"), "the AWS instance metadata address"),
    (_nets("fe80::/10"), "a link-local address"),
    (_nets("fc00::/7"), "a private (unique local) address"),
    (_nets("ff00::/8"), "a multicast address"),
    (_nets("64:ff9b::/96", "64:ff9b:1::/48"), "a NAT64 address"),
    (_nets("2002::/16"), "a 6to4 address"),
    (_nets("2001::/32"), "a Teredo address"),
    (_nets("2001:db8::/32", "3fff::/20"), "a documentation address"),
    (_nets("100::/64"), "a discard-only address"),
    (_nets("fec0::/10"), "a deprecated site-local address"),
)
_MAPPED_V4 = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = _nets("64:ff9b::/96", "64:ff9b:1::/48")

# Names that are internal whatever they resolve to (search domains and split DNS make the answer unreliable).
_BLOCKED_NAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
)
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
_LOOPBACK_NAMES = ("localhost", ".localhost")

# Every shape inet_aton accepts: 1-4 dot-separated parts in decimal, octal (leading 0) or hex (0x).
_NUMERIC_HOST = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?$")


def blocked_reason(ip: IPAddress, policy: AddressPolicy) -> str | None:
    """Why ``ip`` may not be a webhook target under ``policy`` (a phrase for the message), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (interface-bound) address"
        if ip in _MAPPED_V4 and ip.ipv4_mapped is not None:
            embedded = blocked_reason(ip.ipv4_mapped, policy)
            return None if embedded is None else f"an IPv4-mapped form of {ip.ipv4_mapped}, {embedded}"
        for network in _NAT64:
            if ip in network:
                # Always blocked; name the embedded IPv4 so the message explains what it would reach.
                embedded_v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                return f"a NAT64 address embedding {embedded_v4}"
        if policy.allow_loopback and ip == _LOOPBACK_V6:
            return None
        table = _BLOCKED_V6
    else:
        if policy.allow_loopback and ip in _LOOPBACK_V4:
            return None
        table = _BLOCKED_V4
    for networks, description in table:
        if any(ip in network for network in networks):
            return description
    # Belt and braces: anything else the standard library knows is not globally reachable.
    if not ip.is_global:
        return "a non-public address"
    return None


def _parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address:
    """inet_aton semantics (127.1, 2130706433, 0x7f.1, 0177.0.0.1), so these literals cannot sneak past."""
    parts = host.rstrip(".").split(".")
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if any(c not in "01234567" for c in part):
                raise UnsafeWebhookUrl(f"webhook_url host '{host}' is not a valid address")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        raise UnsafeWebhookUrl(f"webhook_url host '{host}' is not a valid address")
    number = 0
    for v in leading:
        number = number << 8 | v
    number = number << (8 * (4 - len(leading))) | last
    return ipaddress.IPv4Address(number)


def _literal_address(host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeWebhookUrl(f"webhook_url host '{host}' is not a valid address") from None
    if _NUMERIC_HOST.match(host):
        return _parse_numeric_ipv4(host)
    return None


def _refused_name(host: str, policy: AddressPolicy) -> bool:
    if policy.allow_loopback and (host == _LOOPBACK_NAMES[0] or host.endswith(_LOOPBACK_NAMES[1])):
        return False  # still has to resolve to loopback: the address check follows
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
        return True
    # A single-label name ("intranet", "instance-data") only resolves through search domains: internal.
    return "." not in host


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise WebhookHostUnresolvable(f"webhook_url host '{host}' did not resolve ({reason})") from None
    addresses: list[IPAddress] = []
    for family, *_rest, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        raw = str(sockaddr[0]).split("%", 1)[0]
        scope = len(sockaddr) >= 4 and sockaddr[3]
        address = ipaddress.ip_address(raw if not scope else f"{raw}%{sockaddr[3]}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookHostUnresolvable(f"webhook_url host '{host}' has no IPv4 or IPv6 address")
    return addresses


def _pick(addresses: Sequence[IPAddress]) -> IPAddress:
    # Lambda outside a dual-stack VPC has no IPv6 egress: prefer IPv4 when the name has both.
    for address in addresses:
        if address.version == 4:
            return address
    first = addresses[0]
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        return first.ipv4_mapped
    return first


def check_webhook_url(
    url: str, policy: AddressPolicy, *, resolver: Resolver = socket.getaddrinfo
) -> ResolvedTarget:
    """Validate ``url`` and resolve its host exactly once; raise ``UnsafeWebhookUrl`` if anything is off.

    Checks: scheme (https, or http when ``policy.allow_http``), no user name/password, a port from
    ``policy.allowed_ports`` when set, host not an internal name, and EVERY resolved address public
    (loopback only under ``policy.allow_loopback``). Returns the address to connect to.
    """
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, UnicodeError):
        raise UnsafeWebhookUrl("webhook_url is not a valid URL") from None
    scheme = parsed.scheme.lower()
    if scheme != "https" and not (policy.allow_http and scheme == "http"):
        raise UnsafeWebhookUrl("webhook_url must use https")
    if parsed.userinfo:
        raise UnsafeWebhookUrl(
            "webhook_url must not contain a user name or password",
            hint="remove the credentials from the URL; every delivery is signed (webhook-signature header)",
        )
    try:
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    except UnicodeDecodeError:
        raise UnsafeWebhookUrl("webhook_url host is not a valid name") from None
    if not host:
        raise UnsafeWebhookUrl("webhook_url has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise UnsafeWebhookUrl(
            f"webhook_url port {port} is not allowed; use one of: {allowed}",
            hint=f"use a public https endpoint on port {allowed}",
        )
    target = parsed.raw_path.decode("ascii") or "/"

    literal = _literal_address(host)
    as_written = host
    if literal is not None:
        addresses: list[IPAddress] = [literal]
        host = str(literal)
    else:
        if _refused_name(host, policy):
            raise UnsafeWebhookUrl(
                f"webhook_url host '{host}' is an internal name; use a public https endpoint"
            )
        addresses = _resolve(host, port, resolver)

    for address in addresses:
        reason = blocked_reason(address, policy)
        if reason is not None:
            if literal is None:
                subject = f"host '{host}' resolves to {address},"
            elif as_written != host:
                subject = f"host '{as_written}' is {address},"
            else:
                subject = f"host '{host}' is"
            raise UnsafeWebhookUrl(f"webhook_url {subject} {reason}; use a public https endpoint")

    return ResolvedTarget(
        scheme=scheme,
        host=host,
        port=port,
        ip=str(_pick(addresses)),
        addresses=tuple(str(a) for a in addresses),
        target=target,
        host_is_ip=literal is not None,
    )
