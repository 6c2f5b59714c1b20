"""What an operator does with webhooks (the ``inbetween webhook`` commands): replay deliveries, resume a
paused endpoint, read a job's delivery log.

These need only the jobs table: a replayed or released delivery is made due at once, and the poller's
webhook step hands it to the completion function, which signs and sends it (the secret, the SSRF guard
and the retry schedule stay in the pipeline, never on an operator's machine).

A replay sends the delivery again with its original message id (``webhook-id``), so that receivers that
deduplicate drop it if they had it; the body is the same bytes, the timestamp and signature are fresh.
Replaying is idempotent: a delivery already queued (PENDING) or waiting for its paused endpoint is left
as it is, so two replays in a row send it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from inbetween.domain.models import DeliveryLogEntry, DeliveryState, Job, WebhookDelivery
from inbetween.domain.webhook_events import WebhookEndpoint, endpoint_id, endpoint_label
from inbetween.ports import JobStore
from inbetween.usecases.webhook_delivery import RELEASED_NOTE, REPLAY_NOTE, subject_event_id

# what ``--failed`` replays: deliveries that ended without a 2xx
FAILED_STATES = frozenset({DeliveryState.EXHAUSTED, DeliveryState.GONE, DeliveryState.REFUSED})


class ReplayOutcome(StrEnum):
    QUEUED = "queued"  # due now: the poller hands it to the completion function within a cycle
    ALREADY_QUEUED = "already queued"  # PENDING already: its next attempt is the replay
    WAITING = "waiting for its endpoint"  # its endpoint is paused: it goes out when resumed


@dataclass(frozen=True, slots=True)
class Replay:
    delivery: WebhookDelivery
    outcome: ReplayOutcome


@dataclass(frozen=True, slots=True)
class Resumed:
    endpoint: str  # the endpoint's label (origin, the path elided, and its id)
    was_paused: bool
    waiting: int  # deliveries waiting for it when it was resumed
    released: str | None  # the first of them, sent now (the rest follow one after another)


def job_delivery(store: JobStore, job: Job) -> WebhookDelivery | None:
    """The job's webhook delivery (one per job: its final state's event), if it had one."""
    if not job.status.is_final:
        return None
    return store.get_webhook_delivery(subject_event_id(job.job_id, job.status.value))


def replay(store: JobStore, delivery: WebhookDelivery, now: float) -> Replay:
    """Deliver ``delivery`` again, with its message id, as soon as the pipeline gets to it."""
    if delivery.state is DeliveryState.WAITING:
        return Replay(delivery, ReplayOutcome.WAITING)
    entry = DeliveryLogEntry(now, DeliveryState.PENDING, next_attempt_at=now, note=REPLAY_NOTE)
    if store.reopen_webhook_delivery(delivery.delivery_id, now, entry):
        reopened = store.get_webhook_delivery(delivery.delivery_id) or delivery
        endpoint = endpoint_of_delivery(store, delivery)
        # to a paused endpoint it is queued all the same: its attempt finds the pause and waits
        paused = endpoint is not None and endpoint.paused
        return Replay(reopened, ReplayOutcome.WAITING if paused else ReplayOutcome.QUEUED)
    current = store.get_webhook_delivery(delivery.delivery_id) or delivery
    if current.state is DeliveryState.WAITING:
        return Replay(current, ReplayOutcome.WAITING)
    return Replay(current, ReplayOutcome.ALREADY_QUEUED)


def replay_since(store: JobStore, since: float, now: float, *, failed_only: bool = False) -> list[Replay]:
    """Every delivery created since ``since`` (only those that ended without a 2xx with
    ``failed_only``), oldest first."""
    chosen = [d for d in store.webhook_deliveries_since(since) if not failed_only or d.state in FAILED_STATES]
    return [replay(store, delivery, now) for delivery in chosen]


def resume(store: JobStore, url: str, now: float) -> Resumed:
    """Unpause the endpoint of ``url`` (its origin and path; the query does not matter) and send its
    oldest waiting delivery now; each one settled releases the next. Also restarts a backlog whose chain
    broke (a function died between two of them) on an endpoint that is no longer paused."""
    eid = endpoint_id(url)
    was_paused = store.resume_endpoint(eid, now)
    held = store.held_webhook_deliveries(eid, limit=1000)
    released = None
    for delivery_id in held:
        entry = DeliveryLogEntry(now, DeliveryState.PENDING, next_attempt_at=now, note=RELEASED_NOTE)
        if store.release_webhook_delivery(delivery_id, now, entry):
            released = delivery_id
            break
    return Resumed(endpoint_label(url), was_paused, len(held), released)


def endpoint_of_delivery(store: JobStore, delivery: WebhookDelivery) -> WebhookEndpoint | None:
    return store.get_webhook_endpoint(endpoint_id(delivery.url))
