"""Webhook delivery (inbetween.usecases.webhook_delivery) against the in-memory world: recorded, then
attempted at once; retried on the schedule (or later, if the receiver asks); given up after the last
delay or when the receiver says gone; never sent to a refused destination; picked up by the poller when
the function died between recording and attempting.

(Named test_webhook_deliveries.py: tests/integration/test_webhook_delivery.py already holds the
basename, and pytest's default import mode cannot collect two test modules of one name.)"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from inbetween.config import Timing
from inbetween.domain.models import DeliveryState, InputObject, Job, JobSpec, JobStatus
from inbetween.usecases.webhook_delivery import (
    HANDOFF_LEASE_S,
    AttemptOutcome,
    attempt,
    event_id,
    hand_over_due,
    start,
)
from inbetween.webhooks.outcome import DeliveryResult
from inbetween.webhooks.schedule import JITTER
from inbetween_local.memory import MemoryWorld, memory_world

URL = "https://hooks.test/in"
DELAYS = (0.0, 10.0, 100.0)  # the immediate attempt, then two retries


def failed(status: int, *, retry_after: float | None = None) -> DeliveryResult:
    return DeliveryResult(False, status, True, retry_after, False, f"HTTP {status}")


GONE = DeliveryResult(False, 410, False, None, True, "HTTP 410")


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(timing=Timing(webhook_retry_delays_s=DELAYS))


def a_job(world: MemoryWorld, name: str = "shot", status: JobStatus = JobStatus.STORED) -> Job:
    now = world.clock.now()
    spec = JobSpec(model="wan2.2-kf2v-flash", resolution="720P", webhook_url=URL)
    inputs = {"first": InputObject(f"inbox/{name}/first.png", "e", 1)}
    return Job(f"{name}/run1", name, "run1", status, spec, inputs, now, now)


def started(world: MemoryWorld, job: Job | None = None) -> str:
    job = job or a_job(world)
    start(world.deps, job, "video.generation.succeeded", {"job": job.job_name}, URL)
    return event_id(job)


def delivery(world: MemoryWorld, delivery_id: str):
    found = world.store.get_webhook_delivery(delivery_id)
    assert found is not None
    return found


# ---------------------------------------------------------------------------------------------- start
def test_a_delivery_is_recorded_and_attempted_at_once(world):
    job = a_job(world)
    delivery_id = started(world, job)
    ((url, msg_id, body),) = world.webhooks.sent
    assert (url, msg_id) == (URL, delivery_id)
    event = json.loads(body)
    assert (event["type"], event["data"]) == ("video.generation.succeeded", {"job": "shot"})
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.last_status, d.next_attempt_at) == (DeliveryState.DELIVERED, 1, 200, None)
    assert d.delivered_at == world.clock.now()
    assert (d.job_id, d.url, d.body.encode()) == (job.job_id, URL, body)


def test_the_event_id_is_stable_per_job_and_final_state(world):
    job = a_job(world)
    assert event_id(job) == event_id(a_job(world))
    assert event_id(job) != event_id(a_job(world, status=JobStatus.FAILED))
    assert event_id(job) != event_id(a_job(world, name="other"))
    assert event_id(job).startswith("msg_") and len(event_id(job)) == 4 + 26


def test_starting_the_same_event_twice_sends_it_once(world):
    job = a_job(world)
    started(world, job)
    started(world, job)
    assert len(world.webhooks.sent) == 1


# ---------------------------------------------------------------------------------------------- retries
def test_a_failed_attempt_schedules_a_retry_after_the_schedules_next_delay(world):
    world.webhooks.answers.append(failed(503))
    delivery_id = started(world)
    now = world.clock.now()
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.last_status, d.last_error) == (DeliveryState.PENDING, 1, 503, "HTTP 503")
    assert now + DELAYS[1] * (1 - JITTER) <= d.next_attempt_at <= now + DELAYS[1] * (1 + JITTER)


def test_a_retry_after_longer_than_the_delay_is_honoured(world):
    world.webhooks.answers.append(failed(429, retry_after=60))
    delivery_id = started(world)
    assert delivery(world, delivery_id).next_attempt_at == world.clock.now() + 60


def test_a_retry_after_shorter_than_the_delay_does_not_shorten_it(world):
    world.webhooks.answers.append(failed(429, retry_after=1))
    delivery_id = started(world)
    assert delivery(world, delivery_id).next_attempt_at >= world.clock.now() + DELAYS[1] * (1 - JITTER)


def test_the_delivery_is_exhausted_after_the_last_delay(world, monkeypatch):
    monkeypatch.setattr(random, "uniform", lambda lo, hi: 1.0)  # no jitter: the schedule's own delays
    world.webhooks.answers.extend([failed(500), failed(500), failed(500), failed(500)])
    delivery_id = started(world)
    outcomes = []
    for delay in DELAYS[1:]:
        assert delivery(world, delivery_id).next_attempt_at == world.clock.now() + delay
        world.clock.advance(delay)
        outcomes.append(attempt(world.deps, delivery_id))
    assert outcomes == [AttemptOutcome.RETRY_SCHEDULED, AttemptOutcome.EXHAUSTED]
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.next_attempt_at, d.last_status) == (DeliveryState.EXHAUSTED, 3, None, 500)
    assert len(world.webhooks.sent) == len(DELAYS)
    # nothing more is tried
    assert attempt(world.deps, delivery_id) is AttemptOutcome.NOTHING_TO_DO
    assert world.store.due_webhook_deliveries(world.clock.now() + 10**6) == []


def test_a_receiver_that_recovers_gets_the_same_event_with_the_same_id(world):
    world.webhooks.answers.append(failed(503))
    delivery_id = started(world)
    world.clock.advance(20)
    assert attempt(world.deps, delivery_id) is AttemptOutcome.DELIVERED
    (first, second) = world.webhooks.sent
    assert first == second
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.last_status, d.next_attempt_at) == (DeliveryState.DELIVERED, 2, 200, None)


def test_410_gone_stops_the_delivery(world):
    world.webhooks.answers.append(GONE)
    delivery_id = started(world)
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.last_status, d.next_attempt_at) == (DeliveryState.GONE, 1, 410, None)
    assert attempt(world.deps, delivery_id) is AttemptOutcome.NOTHING_TO_DO
    assert len(world.webhooks.sent) == 1


def test_a_refused_destination_is_never_sent_to_and_not_counted_as_an_attempt(world):
    world.webhooks.refused_urls.add(URL)
    delivery_id = started(world)
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts, d.next_attempt_at) == (DeliveryState.REFUSED, 0, None)
    assert d.last_error == "webhook_url must use https"
    assert world.webhooks.sent == []
    assert attempt(world.deps, delivery_id) is AttemptOutcome.NOTHING_TO_DO


def test_an_unknown_delivery_is_nothing_to_do(world):
    assert attempt(world.deps, "msg_nobody") is AttemptOutcome.NOTHING_TO_DO


# ---------------------------------------------------------------------------------------------- the poller
def test_due_attempts_are_handed_to_the_completion_function_and_pushed_forward(world):
    world.webhooks.answers.extend([failed(503), failed(503)])
    due = started(world, a_job(world, "due"))
    later = started(world, a_job(world, "later"))
    world.clock.advance(DELAYS[1] * (1 + JITTER))  # the first is due; make the second not yet due
    world.store.postpone_webhook_delivery(later, world.clock.now() + 1000)
    assert hand_over_due(world.deps) == 1
    assert world.queues.webhooks == [due]
    assert delivery(world, due).next_attempt_at == world.clock.now() + HANDOFF_LEASE_S
    # handed over once: the next tick does not hand it again while its attempt runs
    assert hand_over_due(world.deps) == 0


def test_a_delivery_recorded_but_never_attempted_is_picked_up_by_the_poller(world):
    # Given a function that died right after recording the delivery, before its attempt went out
    class DiesBeforeSending:
        def deliver(self, *args: object, **kwargs: object) -> DeliveryResult:
            raise RuntimeError("the function was killed")

    job = a_job(world)
    with pytest.raises(RuntimeError):
        start(replace(world.deps, webhooks=DiesBeforeSending()), job, "video.generation.succeeded", {}, URL)
    delivery_id = event_id(job)
    d = delivery(world, delivery_id)
    assert (d.state, d.attempts) == (DeliveryState.PENDING, 0)
    # When the hand-over lease has run out and the poller looks
    assert hand_over_due(world.deps) == 0
    world.clock.advance(HANDOFF_LEASE_S)
    assert hand_over_due(world.deps) == 1
    # Then the completion function's attempt delivers it
    assert world.queues.webhooks == [delivery_id]
    assert attempt(world.deps, delivery_id) is AttemptOutcome.DELIVERED
    assert delivery(world, delivery_id).attempts == 1
