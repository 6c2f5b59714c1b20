"""Which events a webhook gets, and which endpoint a webhook URL is.

``webhook_events`` (job.json, or the deployment's ``WEBHOOK_EVENTS``) is a list of event types, each
exact (``video.generation.failed``) or a pattern whose ``*`` stands for any run of characters
(``video.generation.*``, ``*``). A job's own list replaces the deployment's for that job's events.

An endpoint is a webhook URL's origin and path: the query is not part of it (it often carries a token,
and two tokens for one receiver are still one receiver), and neither is any of it shown in full: logs,
events and the CLI name an endpoint by its origin and its id (a digest), because a path can hold a secret
too (chat-tool webhooks put theirs there).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from inbetween.domain.models import plain
from inbetween.errors import InvalidJob

FIELD = "webhook_events"
EVERY_EVENT: tuple[str, ...] = ("*",)
# Every event type a webhook can carry. A pattern must match at least one of them, so that a typo is an
# error at intake instead of a webhook that silently never comes.
EVENT_TYPES: tuple[str, ...] = (
    "video.generation.succeeded",
    "video.generation.failed",
    "video.generation.canceled",
    "film.succeeded",
    "film.failed",
    "budget.reached",
)
# operational: SNS only, never to a webhook (the endpoint it tells of is the one that is not answering)
ENDPOINT_PAUSED_EVENT = "webhook.endpoint.paused"
MAX_PATTERNS = 20
_PATTERN = re.compile(r"^[a-z0-9_.*]+$")


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def wants(patterns: Iterable[str], event_type: str) -> bool:
    """Whether an event of ``event_type`` goes to a webhook whose filter is ``patterns``."""
    return any(_regex(pattern).match(event_type) for pattern in patterns)


def parse_event_filter(value: Any, *, source: str = "job.json") -> tuple[str, ...]:
    """A checked ``webhook_events`` list; ``InvalidJob`` naming the field and the fault otherwise.
    ``source`` says where the list came from (job.json, or the deployment's WEBHOOK_EVENTS)."""
    example = '["video.generation.*"]'
    if not isinstance(value, list) or not value:
        raise InvalidJob(
            f"{source} field {FIELD!r} must be a non-empty list of event types, got {_kind(value)}",
            code="InvalidWebhookEvents",
            hint=f'e.g. "{FIELD}": {example}; leave it out to get every event',
            field=FIELD,
        )
    if len(value) > MAX_PATTERNS:
        raise InvalidJob(
            f"{source} field {FIELD!r} lists {len(value)} entries; the limit is {MAX_PATTERNS}",
            code="InvalidWebhookEvents",
            hint="use a pattern such as video.generation.* instead of listing each type",
            field=FIELD,
        )
    checked: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or not _PATTERN.match(entry):
            raise InvalidJob(
                f"{source} field {FIELD!r} has the entry {entry!r}, which is not an event type",
                code="InvalidWebhookEvents",
                hint="event types are lower case with dots, e.g. video.generation.failed; "
                "* matches any run of characters",
                field=FIELD,
            )
        if not any(wants((entry,), known) for known in EVENT_TYPES):
            close = difflib.get_close_matches(entry, EVENT_TYPES, n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidJob(
                f"{source} field {FIELD!r} has {entry!r}, which matches no event type{suggestion}",
                code="InvalidWebhookEvents",
                hint="event types: " + ", ".join(EVENT_TYPES),
                field=FIELD,
            )
        checked.append(entry)
    return tuple(dict.fromkeys(checked))


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list"
    return {str: "a string", bool: "true or false", int: "a number", dict: "an object"}.get(
        type(value), type(value).__name__
    )


# ---------------------------------------------------------------------------------------------- endpoints
def endpoint_of(url: str) -> tuple[str, str]:
    """(origin, path) of a webhook URL, normalised: scheme and host lower case, the default port left
    out, no credentials, query or fragment; an empty path is ``/``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(scheme)
    shown_host = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown_host}" + (f":{port}" if port and port != default else "")
    return origin, parts.path or "/"


def endpoint_id(url: str) -> str:
    """The endpoint's id: a digest of its origin and path (never reversible to a path's secret)."""
    origin, path = endpoint_of(url)
    return "ep_" + hashlib.sha256(f"{origin}{path}".encode()).hexdigest()[:20]


def endpoint_label(url: str) -> str:
    """How logs, events and the CLI name an endpoint: its origin, the path elided, and its id."""
    origin, path = endpoint_of(url)
    return f"{origin}{'/…' if path != '/' else '/'} ({endpoint_id(url)})"


def held_partition(endpoint_id_: str) -> str:
    """The due-index partition of the deliveries waiting for a paused endpoint, in creation order."""
    return f"hookwait#{endpoint_id_}"


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """What the jobs table knows of a webhook endpoint that has failed at least once: since when every
    attempt to it has failed (None: its last attempt succeeded), and whether it is paused."""

    endpoint_id: str
    origin: str
    failing_since: float | None = None
    last_failure_at: float | None = None
    last_success_at: float | None = None
    failures: int = 0  # attempts failed since failing_since
    paused_at: float | None = None
    resumed_at: float | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def status(self) -> EndpointStatus:
        return EndpointStatus.PAUSED if self.paused else EndpointStatus.ACTIVE

    def failing_for(self, now: float) -> float:
        return 0.0 if self.failing_since is None else max(0.0, now - self.failing_since)

    def to_item(self) -> dict[str, Any]:
        item = {
            "endpoint_id": self.endpoint_id,
            "origin": self.origin,
            "failing_since": self.failing_since,
            "last_failure_at": self.last_failure_at,
            "last_success_at": self.last_success_at,
            "failures": self.failures,
            "paused_at": self.paused_at,
            "resumed_at": self.resumed_at,
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WebhookEndpoint:
        item = plain(item)

        def time_of(name: str) -> float | None:
            return None if item.get(name) is None else float(item[name])

        return cls(
            endpoint_id=str(item["endpoint_id"]),
            origin=str(item.get("origin", "")),
            failing_since=time_of("failing_since"),
            last_failure_at=time_of("last_failure_at"),
            last_success_at=time_of("last_success_at"),
            failures=int(item.get("failures", 0)),
            paused_at=time_of("paused_at"),
            resumed_at=time_of("resumed_at"),
        )
