"""The jobs table's side of webhook operations, one behaviour for both stores (as in
test_job_store_contract.py): the delivery log, replays that queue a delivery once, deliveries held for a
paused endpoint in creation order and released, endpoints' failing streaks, pause and resume."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from inbetween.aws.jobs_table import DynamoJobStore
from inbetween.domain.models import DeliveryLogEntry, DeliveryState, WebhookAttempt, WebhookDelivery
from inbetween.ports import JobStore
from inbetween_local.memory import InMemoryJobStore, ManualClock

T0 = 1_800_000_000.0
EP = "ep_0123456789abcdef0123"


@dataclass
class Subject:
    store: JobStore
    clock: ManualClock


@pytest.fixture(params=["memory", "dynamodb"])
def subject(request) -> Subject:
    clock = ManualClock(T0)
    if request.param == "memory":
        return Subject(InMemoryJobStore(clock), clock)
    client = request.getfixturevalue("create_jobs_table")("jobs")
    return Subject(DynamoJobStore(client, "jobs", clock=clock.now), clock)


def a_delivery(delivery_id: str = "msg_1", *, created_at: float = T0) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=delivery_id,
        job_id="shot/run",
        url="https://hooks.test/in",
        body='{"type":"video.generation.succeeded"}',
        created_at=created_at,
        next_attempt_at=created_at + 300,
    )


def delivered(store: JobStore, delivery_id: str, at: float) -> None:
    store.record_webhook_attempt(delivery_id, WebhookAttempt(DeliveryState.DELIVERED, at, status=200))


def test_every_attempt_is_logged_in_order(subject):
    store = subject.store
    store.add_webhook_delivery(a_delivery())
    store.record_webhook_attempt(
        "msg_1",
        WebhookAttempt(DeliveryState.PENDING, T0, status=503, error="503", next_attempt_at=T0 + 5.5),
    )
    delivered(store, "msg_1", T0 + 6)
    found = store.get_webhook_delivery("msg_1")
    assert found is not None
    assert found.log == (
        DeliveryLogEntry(T0, DeliveryState.PENDING, 503, "503", T0 + 5.5),
        DeliveryLogEntry(T0 + 6, DeliveryState.DELIVERED, 200),
    )


def test_a_replay_queues_a_settled_delivery_once(subject):
    store = subject.store
    store.add_webhook_delivery(a_delivery())
    entry = DeliveryLogEntry(T0 + 10, DeliveryState.PENDING, note="replay requested")
    assert not store.reopen_webhook_delivery("msg_1", T0 + 10, entry)  # still pending: queued already
    delivered(store, "msg_1", T0 + 1)

    assert store.reopen_webhook_delivery("msg_1", T0 + 10, entry)
    assert not store.reopen_webhook_delivery("msg_1", T0 + 10, entry)
    assert not store.reopen_webhook_delivery("msg_nobody", T0 + 10, entry)

    found = store.get_webhook_delivery("msg_1")
    assert found is not None
    assert (found.state, found.attempts, found.replays) == (DeliveryState.PENDING, 0, 1)
    assert found.next_attempt_at == T0 + 10 and found.log[-1] == entry
    assert store.due_webhook_deliveries(T0 + 10) == ["msg_1"]


def test_concurrent_replays_queue_it_once(subject, isolated_moto):
    store = subject.store
    store.add_webhook_delivery(a_delivery())
    delivered(store, "msg_1", T0 + 1)
    entry = DeliveryLogEntry(T0 + 10, DeliveryState.PENDING, note="replay requested")
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(store.reopen_webhook_delivery("msg_1", T0 + 10, entry))
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    found = store.get_webhook_delivery("msg_1")
    assert found is not None and found.replays == 1


def test_held_deliveries_wait_in_creation_order_and_are_released_one_by_one(subject):
    store = subject.store
    for i, created in enumerate((T0 + 20, T0, T0 + 10)):
        store.add_webhook_delivery(a_delivery(f"msg_{i}", created_at=created))
    hold = DeliveryLogEntry(T0 + 30, DeliveryState.WAITING, note="held: endpoint paused")
    for i in range(3):
        assert store.hold_webhook_delivery(f"msg_{i}", EP, hold)
    assert not store.hold_webhook_delivery("msg_0", EP, hold)  # held already

    assert store.held_webhook_deliveries(EP) == ["msg_1", "msg_2", "msg_0"]
    assert store.due_webhook_deliveries(T0 + 10**6) == []  # nothing waiting is ever due
    waiting = store.get_webhook_delivery("msg_1")
    assert waiting is not None and (waiting.state, waiting.next_attempt_at) == (DeliveryState.WAITING, None)

    release = DeliveryLogEntry(T0 + 40, DeliveryState.PENDING, note="released: endpoint resumed")
    assert store.release_webhook_delivery("msg_1", T0 + 40, release)
    assert not store.release_webhook_delivery("msg_1", T0 + 40, release)
    assert store.held_webhook_deliveries(EP) == ["msg_2", "msg_0"]
    assert store.due_webhook_deliveries(T0 + 40) == ["msg_1"]
    released = store.get_webhook_delivery("msg_1")
    assert released is not None and [e.note for e in released.log] == [hold.note, release.note]


def test_a_held_delivery_cannot_be_replayed_past_its_endpoint(subject):
    store = subject.store
    store.add_webhook_delivery(a_delivery())
    store.hold_webhook_delivery("msg_1", EP, DeliveryLogEntry(T0, DeliveryState.WAITING))
    assert not store.reopen_webhook_delivery("msg_1", T0, DeliveryLogEntry(T0, DeliveryState.PENDING))


def test_deliveries_since_a_time_oldest_first(subject):
    store = subject.store
    for i, created in enumerate((T0 + 20, T0 - 100, T0 + 10)):
        store.add_webhook_delivery(a_delivery(f"msg_{i}", created_at=created))
    assert [d.delivery_id for d in store.webhook_deliveries_since(T0)] == ["msg_2", "msg_0"]


def test_an_endpoints_failing_streak_pause_and_resume(subject):
    store = subject.store
    assert store.get_webhook_endpoint(EP) is None
    store.note_endpoint_success(EP, T0)  # a healthy endpoint leaves nothing behind
    assert store.get_webhook_endpoint(EP) is None
    assert not store.pause_endpoint(EP, T0)  # unknown

    first = store.note_endpoint_failure(EP, "https://hooks.test", T0)
    second = store.note_endpoint_failure(EP, "https://hooks.test", T0 + 50)
    assert (first.failing_since, first.failures) == (T0, 1)
    assert (second.failing_since, second.last_failure_at, second.failures) == (T0, T0 + 50, 2)

    store.note_endpoint_success(EP, T0 + 60)
    healthy = store.get_webhook_endpoint(EP)
    assert healthy is not None
    assert (healthy.failing_since, healthy.failures, healthy.last_success_at) == (None, 0, T0 + 60)

    store.note_endpoint_failure(EP, "https://hooks.test", T0 + 70)
    assert not store.resume_endpoint(EP, T0 + 80)  # not paused
    assert store.pause_endpoint(EP, T0 + 80)
    assert not store.pause_endpoint(EP, T0 + 81)  # once
    paused = store.get_webhook_endpoint(EP)
    assert paused is not None and paused.paused and paused.failing_since == T0 + 70

    assert store.resume_endpoint(EP, T0 + 90)
    resumed = store.get_webhook_endpoint(EP)
    assert resumed is not None and not resumed.paused
    assert (resumed.failing_since, resumed.resumed_at, resumed.origin) == (
        None,
        T0 + 90,
        "https://hooks.test",
    )
