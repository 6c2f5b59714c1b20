"""Deliver one signed webhook attempt to a checked, pinned address, and say what to do next.

One ``deliver`` call = one HTTP attempt. The caller owns the schedule (``next_retry_delay`` /
``retry_delay_after``) and keeps ``msg_id`` stable across the attempts of one event.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from inbetween.errors import ConfigError
from inbetween.webhooks.guard import (
    AddressPolicy,
    ResolvedTarget,
    Resolver,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    check_webhook_url,
)
from inbetween.webhooks.outcome import DeliveryResult
from inbetween.webhooks.schedule import MAX_RETRY_AFTER_S, next_retry_delay
from inbetween.webhooks.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SECRET_PREFIX,
    _check_msg_id,
    _secret_key,
    signature_header,
)

logger = logging.getLogger("inbetween.webhooks")

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# The receiver's answer only matters for its status; keep a little of the body for the error message.
MAX_RESPONSE_BYTES = 4096
ERROR_SNIPPET_CHARS = 200

SecretSource = str | Sequence[str] | Callable[[], str | Sequence[str]]


def retry_delay_after(
    result: DeliveryResult,
    failed_attempts: int,
    *,
    rng: random.Random | None = None,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
) -> float | None:
    """Seconds until the next attempt after ``result`` (``failed_attempts`` counts it), or None to stop.

    The schedule's delay, lengthened to the receiver's Retry-After (capped at ``max_retry_after_s``).
    """
    if result.delivered or not result.retry:
        return None
    delay = next_retry_delay(failed_attempts, rng=rng)
    if delay is None:
        return None
    if result.retry_after_s is not None:
        delay = max(delay, min(result.retry_after_s, max_retry_after_s))
    return delay


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from ``now``: delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class WebhookSender:
    """Signs and delivers webhooks to user-supplied URLs behind the SSRF guard.

    ``secret`` is a ``whsec_...`` string, several of them (during rotation every delivery carries one
    signature per secret), or a callable returning either (read on every delivery, e.g. a cached
    Secrets Manager lookup). ``transport`` is a test seam; by default a fresh connection is made per
    delivery (no keep-alive), so a connection opened for one host name never carries another's request.
    """

    def __init__(
        self,
        secret: SecretSource,
        policy: AddressPolicy,
        *,
        timeout: httpx.Timeout | None = None,
        resolver: Resolver = socket.getaddrinfo,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "inbetween-webhooks/1",
    ):
        self._secret_source = secret
        if not callable(secret):
            self._checked_secrets(secret)  # fail fast on a bad static secret
        self.policy = policy
        self.timeout = timeout or DEFAULT_TIMEOUT
        self._resolver = resolver
        self._transport = transport
        self.user_agent = user_agent
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"WebhookSender(policy={self.policy!r}, secret=<redacted>)"

    # -- lifecycle --------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            transport = self._transport or httpx.HTTPTransport(
                limits=httpx.Limits(max_keepalive_connections=0), retries=0
            )
            self._client = httpx.Client(
                transport=transport, timeout=self.timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- secrets ----------------------------------------------------------------------------------

    @staticmethod
    def _checked_secrets(value: str | Sequence[str]) -> list[str]:
        secrets = [value] if isinstance(value, str) else list(value)
        if not secrets:
            raise ConfigError("no webhook signing secret configured")
        for secret in secrets:
            try:
                _secret_key(secret)
            except ValueError as exc:
                raise ConfigError(f"webhook signing secret is invalid: {exc}") from None
        return secrets

    def _current_secrets(self) -> list[str]:
        source = self._secret_source
        return self._checked_secrets(source() if callable(source) else source)

    # -- delivery ---------------------------------------------------------------------------------

    def check_destination(self, url: str) -> None:
        """At intake: refuse a URL that can never be delivered to (scheme, credentials, ports, literal
        private addresses). A name that does not resolve right now is not refused: every delivery
        resolves, checks and pins it again, and reports what it found."""
        try:
            check_webhook_url(url, self.policy, resolver=self._resolver)
        except WebhookHostUnresolvable:
            return

    def deliver(self, url: str, msg_id: str, body: bytes, *, now: float | None = None) -> DeliveryResult:
        """One attempt: check the URL, sign ``body`` with a fresh timestamp, POST it to the checked address.

        Raises ``UnsafeWebhookUrl`` (an ``InvalidJob``) when the guard refuses the URL: nothing is sent, and
        retrying cannot help. Raises ``ValueError``/``ConfigError`` for a bad msg_id or secret. Every
        network or receiver outcome, an unresolvable host included, is a ``DeliveryResult``.
        """
        _check_msg_id(msg_id)
        attempt_time = time.time() if now is None else now
        try:
            target = check_webhook_url(url, self.policy, resolver=self._resolver)
        except UnsafeWebhookUrl as exc:
            logger.warning("webhook refused msg_id=%s: %s", msg_id, exc.message)
            raise
        except WebhookHostUnresolvable as exc:
            logger.info("webhook not delivered msg_id=%s: %s", msg_id, exc.message)
            return DeliveryResult(False, None, True, None, False, exc.message)

        secrets = self._current_secrets()
        timestamp = int(attempt_time)
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "accept": "*/*",
            # Raw bytes only: a compressed answer could expand far beyond what we mean to read.
            "accept-encoding": "identity",
            HEADER_ID: msg_id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp, body),
        }
        extensions = {}
        if target.scheme == "https" and not target.host_is_ip:
            # TLS server name and certificate check on the host name, while the socket goes to target.ip.
            extensions["sni_hostname"] = target.host

        result = self._send(target, headers, body, extensions, attempt_time, secrets)
        level = logging.INFO if result.delivered or result.gone else logging.WARNING
        logger.log(
            level,
            "webhook %s msg_id=%s to %s status=%s retry=%s: %s",
            "delivered" if result.delivered else "not delivered",
            msg_id,
            target.origin,
            result.status_code,
            result.retry,
            result.error or "ok",
        )
        return result

    def _send(
        self,
        target: ResolvedTarget,
        headers: dict[str, str],
        body: bytes,
        extensions: dict[str, str],
        attempt_time: float,
        secrets: list[str],
    ) -> DeliveryResult:
        deadline = time.monotonic() + _total_budget(self.timeout)
        try:
            with self._http().stream(
                "POST", target.connect_url, content=body, headers=headers, extensions=extensions
            ) as response:
                snippet = _read_capped(response, deadline)
        except httpx.TimeoutException as exc:
            phase = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
            return DeliveryResult(False, None, True, None, False, f"timed out {phase} {target.origin}")
        except httpx.HTTPError as exc:
            detail = _scrub(str(exc) or type(exc).__name__, secrets, target)
            if "CERTIFICATE_VERIFY_FAILED" in detail:
                detail = f"TLS certificate check for '{target.host}' failed ({detail})"
            return DeliveryResult(
                False, None, True, None, False, f"request to {target.origin} failed: {detail}"
            )

        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=attempt_time)
        if 200 <= status < 300:
            return DeliveryResult(True, status, False, None, False, "")
        said = _scrub(snippet, secrets, target)
        said = f": {said}" if said else ""
        if status == 410:
            return DeliveryResult(
                False,
                status,
                False,
                None,
                True,
                f"{target.origin} answered 410 Gone: endpoint disabled{said}",
            )
        if 300 <= status < 400:
            error = (
                f"{target.origin} answered {status}, a redirect; redirects are not followed: "
                "set webhook_url to the final https URL"
            )
        elif status == 429:
            error = f"{target.origin} answered 429 Too Many Requests{said}"
        elif status >= 500:
            error = f"{target.origin} answered {status} (receiver error){said}"
        else:
            error = f"{target.origin} answered {status}; check the receiver's configuration{said}"
        return DeliveryResult(False, status, True, retry_after, False, error)


def _total_budget(timeout: httpx.Timeout) -> float:
    parts = [t for t in (timeout.connect, timeout.read) if t is not None]
    return sum(parts) if parts else 20.0


def _read_capped(response: httpx.Response, deadline: float) -> str:
    """At most MAX_RESPONSE_BYTES of the raw body, and no reading past the deadline."""
    received = bytearray()
    if response.is_stream_consumed:  # an in-memory response (test transports): nothing left to stream
        received += response.content[:MAX_RESPONSE_BYTES]
    else:
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                break
    text = bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text[:ERROR_SNIPPET_CHARS]


def _scrub(text: str, secrets: list[str], target: ResolvedTarget) -> str:
    """Remove anything secret-like from text that will end up in an error or a log line."""
    for secret in secrets:
        for form in (secret, secret.removeprefix(SECRET_PREFIX)):
            if form:
                text = text.replace(form, "[redacted]")
    if len(target.target) > 1:
        text = text.replace(target.target, "/[path redacted]")
    return text[: ERROR_SNIPPET_CHARS * 2]
