"""Webhook deliveries: one signed event per final job, attempted at once, retried on the Standard
Webhooks schedule by the completion function (the poller hands due attempts over), never twice at once.

A delivery is recorded before its first attempt, already due a little later: if the function dies
between the two, the poller's webhook step makes the attempt. An attempt that runs records the next one.

Only the event types the webhook asks for are delivered (``webhook_events``: the job's, else the
deployment's). An endpoint whose every attempt has failed for ``Timing.webhook_pause_after_s`` (5 days) is
paused: its deliveries wait (nothing is sent to it), one ``webhook.endpoint.paused`` event goes to SNS
(never to that endpoint), and ``WebhookEndpointsPaused`` is counted (the template's alarm). Resumed
(``webhook_operations.resume``), its waiting deliveries go out oldest first, one after another: each one
settled releases the next.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain.models import (
    DeliveryLogEntry,
    DeliveryState,
    Job,
    Notification,
    WebhookAttempt,
    WebhookDelivery,
)
from inbetween.domain.webhook_events import (
    ENDPOINT_PAUSED_EVENT,
    EndpointStatus,
    WebhookEndpoint,
    endpoint_id,
    endpoint_label,
    endpoint_of,
    wants,
)
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger
from inbetween.webhooks.schedule import next_retry_delay
from inbetween.webhooks.signing import build_event

# how long a handed-over attempt may take before the poller hands it over again
HANDOFF_LEASE_S = 300.0
# the delivery log's notes (what happened to a delivery that was not an attempt)
HELD_NOTE = "held: endpoint paused"
RELEASED_NOTE = "released: endpoint resumed"
REPLAY_NOTE = "replay requested"


class AttemptOutcome(StrEnum):
    NOTHING_TO_DO = "nothing to do"  # unknown, or no longer pending (delivered, gone, ...)
    DELIVERED = "delivered"
    REFUSED = "refused"
    GONE = "gone"
    EXHAUSTED = "exhausted"
    RETRY_SCHEDULED = "retry scheduled"
    HELD = "held"  # its endpoint is paused: it waits for the endpoint to be resumed


def event_id(job: Job) -> str:
    """The Standard Webhooks message id: stable for a job's final state, so receivers deduplicate."""
    return subject_event_id(job.job_id, job.status.value)


def subject_event_id(subject_id: str, status: str) -> str:
    """The message id of a job's or a film run's final state (``status``)."""
    return "msg_" + hashlib.sha256(f"{subject_id}|{status}".encode()).hexdigest()[:26]


def start(deps: Deps, job: Job, event_type: str, payload: dict[str, Any], url: str) -> None:
    events = job.spec.webhook_events if job.spec else None
    start_for(deps, job.job_id, job.status.value, event_type, payload, url, events=events)


def start_for(
    deps: Deps,
    subject_id: str,
    status: str,
    event_type: str,
    payload: dict[str, Any],
    url: str,
    *,
    events: tuple[str, ...] | None = None,
) -> None:
    """Record the event's delivery to ``url`` and make its first attempt; ``subject_id`` is the job id or
    the film run id whose final ``status`` the event announces (one delivery per subject and state).
    ``events``: the subject's own ``webhook_events`` (None: the deployment's); an event type it does not
    ask for is not delivered at all."""
    wanted = deps.settings.webhook_events if events is None else events
    if not wants(wanted, event_type):
        logger.info(
            "webhook event filtered out",
            extra={"subject_id": subject_id, "event_type": event_type, "webhook_events": list(wanted)},
        )
        count("WebhooksFilteredOut")
        return
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
    endpoint = deps.store.get_webhook_endpoint(endpoint_id(delivery.url))
    if endpoint is not None and endpoint.paused:
        return _hold(deps, delivery)
    outcome = _attempt(deps, delivery)
    if outcome is AttemptOutcome.DELIVERED:
        if endpoint is not None and endpoint.failing_since is not None:
            deps.store.note_endpoint_success(endpoint.endpoint_id, deps.clock.now())
    elif outcome is not AttemptOutcome.REFUSED:  # refused: nothing was sent, the endpoint is not to blame
        endpoint = _note_failure(deps, delivery)
        if endpoint.paused and outcome is AttemptOutcome.RETRY_SCHEDULED:
            return _hold(deps, delivery)
    if outcome is not AttemptOutcome.RETRY_SCHEDULED and _was_released(delivery):
        # settled, and it was one of a resumed endpoint's waiting deliveries: the next one goes out now
        release_next(deps, endpoint_id(delivery.url))
    return outcome


def _was_released(delivery: WebhookDelivery) -> bool:
    notes = [entry.note for entry in delivery.log if entry.note]
    return bool(notes) and notes[-1] == RELEASED_NOTE


def _attempt(deps: Deps, delivery: WebhookDelivery) -> AttemptOutcome:
    """One attempt of a PENDING delivery, recorded with its next one (or none)."""
    delivery_id = delivery.delivery_id
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


# ---------------------------------------------------------------------------------------------- endpoints
def _note_failure(deps: Deps, delivery: WebhookDelivery) -> WebhookEndpoint:
    """Count a failed attempt against the endpoint; pause it once every attempt has failed for the
    configured time (the one caller whose pause wins announces it)."""
    now = deps.clock.now()
    origin, _ = endpoint_of(delivery.url)
    endpoint = deps.store.note_endpoint_failure(endpoint_id(delivery.url), origin, now)
    if endpoint.paused or endpoint.failing_for(now) < deps.timing.webhook_pause_after_s:
        return endpoint
    if not deps.store.pause_endpoint(endpoint.endpoint_id, now):
        return deps.store.get_webhook_endpoint(endpoint.endpoint_id) or endpoint
    paused = replace(endpoint, paused_at=now)
    _announce_pause(deps, paused, delivery.url)
    return paused


def _announce_pause(deps: Deps, endpoint: WebhookEndpoint, url: str) -> None:
    label = endpoint_label(url)
    now = deps.clock.now()
    data = {
        "endpoint": label,
        "endpoint_id": endpoint.endpoint_id,
        "origin": endpoint.origin,
        "status": EndpointStatus.PAUSED.value,
        "failing_since": _iso(endpoint.failing_since),
        "paused_at": _iso(endpoint.paused_at),
        "failed_attempts": endpoint.failures,
        "what_to_do": "fix the receiver, then run `inbetween webhook resume URL` with the endpoint's URL: "
        "its waiting deliveries then go out oldest first",
    }
    # counted first: the alarm fires even if the topic cannot be reached just now
    count("WebhookEndpointsPaused")
    # SNS only: the endpoint this is about is the one that does not answer
    deps.notifier.publish(
        Notification(
            event_type=ENDPOINT_PAUSED_EVENT,
            job_name=label,
            status=EndpointStatus.PAUSED,
            model=None,
            timestamp=_iso(now) or "",
            data=data,
        )
    )
    logger.warning("webhook endpoint paused", extra={"endpoint": label, "failed_attempts": endpoint.failures})


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def _hold(deps: Deps, delivery: WebhookDelivery) -> AttemptOutcome:
    entry = DeliveryLogEntry(deps.clock.now(), DeliveryState.WAITING, note=HELD_NOTE)
    if deps.store.hold_webhook_delivery(delivery.delivery_id, endpoint_id(delivery.url), entry):
        count("WebhooksHeld")
        return AttemptOutcome.HELD
    return AttemptOutcome.NOTHING_TO_DO


def release_next(deps: Deps, endpoint_id_: str) -> str | None:
    """The endpoint's oldest waiting delivery goes out now (handed to the completion function); its id,
    or None when none waits. Unless the endpoint is paused (again)."""
    endpoint = deps.store.get_webhook_endpoint(endpoint_id_)
    if endpoint is not None and endpoint.paused:
        return None
    for delivery_id in deps.store.held_webhook_deliveries(endpoint_id_, limit=5):
        now = deps.clock.now()
        entry = DeliveryLogEntry(now, DeliveryState.PENDING, note=RELEASED_NOTE)
        # due after the hand-over lease, as in hand_over_due: the queue's attempt comes first
        if deps.store.release_webhook_delivery(delivery_id, now + HANDOFF_LEASE_S, entry):
            deps.queues.deliver_webhook(delivery_id)
            return delivery_id
    return None
