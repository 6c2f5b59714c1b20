"""Webhook deliveries: one signed event per final job, attempted at once, retried on the Standard
Webhooks schedule by the completion function (the poller hands due attempts over), never twice at once.

A delivery is recorded before its first attempt, already due a little later: if the function dies
between the two, the poller's webhook step makes the attempt. An attempt that runs records the next one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain.models import DeliveryState, Job, WebhookAttempt, WebhookDelivery
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger
from inbetween.webhooks.schedule import next_retry_delay
from inbetween.webhooks.signing import build_event

# how long a handed-over attempt may take before the poller hands it over again
HANDOFF_LEASE_S = 300.0


class AttemptOutcome(StrEnum):
    NOTHING_TO_DO = "nothing to do"  # unknown, or no longer pending (delivered, gone, ...)
    DELIVERED = "delivered"
    REFUSED = "refused"
    GONE = "gone"
    EXHAUSTED = "exhausted"
    RETRY_SCHEDULED = "retry scheduled"


def event_id(job: Job) -> str:
    """The Standard Webhooks message id: stable for a job's final state, so receivers deduplicate."""
    return subject_event_id(job.job_id, job.status.value)


def subject_event_id(subject_id: str, status: str) -> str:
    """The message id of a job's or a film run's final state (``status``)."""
    return "msg_" + hashlib.sha256(f"{subject_id}|{status}".encode()).hexdigest()[:26]


def start(deps: Deps, job: Job, event_type: str, payload: dict[str, Any], url: str) -> None:
    start_for(deps, job.job_id, job.status.value, event_type, payload, url)


def start_for(
    deps: Deps, subject_id: str, status: str, event_type: str, payload: dict[str, Any], url: str
) -> None:
    """Record the event's delivery to ``url`` and make its first attempt; ``subject_id`` is the job id or
    the film run id whose final ``status`` the event announces (one delivery per subject and state)."""
    delivery_id = subject_event_id(subject_id, status)
    now = deps.clock.now()
    body = build_event(event_type, payload, occurred_at=datetime.fromtimestamp(now, UTC))
    delivery = WebhookDelivery(
        delivery_id=delivery_id,
        job_id=subject_id,
        url=url,
        body=body.decode(),
        created_at=now,
        next_attempt_at=now + HANDOFF_LEASE_S,
    )
    if deps.store.add_webhook_delivery(delivery):
        attempt(deps, delivery_id)


def hand_over_due(deps: Deps, limit: int = 50) -> int:
    """Poller: due attempts go to the completion function, each pushed forward first (its attempt
    records the real next one)."""
    handed = 0
    for delivery_id in deps.store.due_webhook_deliveries(deps.clock.now(), limit):
        deps.store.postpone_webhook_delivery(delivery_id, deps.clock.now() + HANDOFF_LEASE_S)
        deps.queues.deliver_webhook(delivery_id)
        handed += 1
    return handed


def attempt(deps: Deps, delivery_id: str) -> AttemptOutcome:
    delivery = deps.store.get_webhook_delivery(delivery_id)
    if delivery is None or delivery.state is not DeliveryState.PENDING:
        return AttemptOutcome.NOTHING_TO_DO
    try:
        result = deps.webhooks.deliver(
            delivery.url, delivery_id, delivery.body.encode(), now=deps.clock.now()
        )
    except InvalidJob as exc:  # UnsafeWebhookUrl: never retried
        _record_attempt(
            deps,
            delivery,
            WebhookAttempt(
                state=DeliveryState.REFUSED, at=deps.clock.now(), counted=False, error=exc.message
            ),
        )
        count("WebhooksRefused")
        return AttemptOutcome.REFUSED
    now = deps.clock.now()
    status = result.status_code or 0
    if result.delivered:
        _record_attempt(deps, delivery, WebhookAttempt(state=DeliveryState.DELIVERED, at=now, status=status))
        count("WebhooksDelivered")
        return AttemptOutcome.DELIVERED
    if result.gone:
        _record_attempt(deps, delivery, WebhookAttempt(state=DeliveryState.GONE, at=now, status=status))
        return AttemptOutcome.GONE
    delay = next_retry_delay(delivery.attempts + 1, delays=deps.timing.webhook_retry_delays_s)
    if delay is None:
        _record_attempt(
            deps,
            delivery,
            WebhookAttempt(state=DeliveryState.EXHAUSTED, at=now, status=status, error=result.error),
        )
        count("WebhooksExhausted")
        return AttemptOutcome.EXHAUSTED
    if result.retry_after_s:
        delay = max(delay, result.retry_after_s)
    _record_attempt(
        deps,
        delivery,
        WebhookAttempt(
            state=DeliveryState.PENDING,
            at=now,
            status=status,
            error=result.error,
            next_attempt_at=now + delay,
        ),
    )
    count("WebhookRetriesScheduled")
    return AttemptOutcome.RETRY_SCHEDULED


def _record_attempt(deps: Deps, delivery: WebhookDelivery, outcome: WebhookAttempt) -> None:
    """Record what one attempt changed, and log it: one record per attempt, with the receiver's answer
    and the next try (the URL is left out: it may carry a token)."""
    deps.store.record_webhook_attempt(delivery.delivery_id, outcome)
    logger.info(
        "webhook attempt",
        extra={
            "job_id": delivery.job_id,
            "delivery_id": delivery.delivery_id,
            "attempt": delivery.attempts + 1 if outcome.counted else delivery.attempts,
            "state": outcome.state.value,
            "status": outcome.status,
            "error": outcome.error or None,
            "retry_in_s": (
                round(outcome.next_attempt_at - outcome.at) if outcome.next_attempt_at is not None else None
            ),
        },
    )
