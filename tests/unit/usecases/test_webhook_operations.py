"""Webhook operations against the in-memory world, on a manual clock: the webhook_events filter (the
job's, else the deployment's), replays (the same message id, queued once however often asked), an
endpoint paused after 5 days of failed attempts (nothing sent to it, one operational event on SNS only),
resumed with its waiting deliveries sent oldest first, and every delivery's log."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from inbetween.config import Timing
from inbetween.domain.models import DeliveryState, DueKind, InputObject, Job, JobSpec, JobStatus
from inbetween.domain.webhook_events import ENDPOINT_PAUSED_EVENT, endpoint_id
from inbetween.usecases import webhook_delivery, webhook_operations
from inbetween.usecases.notify import FAILED_EVENT, SUCCEEDED_EVENT, report_and_notify
from inbetween.usecases.webhook_delivery import AttemptOutcome, attempt, event_id, hand_over_due
from inbetween.usecases.webhook_operations import ReplayOutcome
from inbetween.webhooks.outcome import DeliveryResult
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_for

URL = "https://hooks.test/in?token=s3cr3t-token"
DAY = 86400.0
# a retry every day for a week: one delivery alone keeps failing past the 5 days
DAILY = (0.0, DAY, DAY, DAY, DAY, DAY, DAY, DAY)
DOWN = DeliveryResult(False, 503, True, None, False, "https://hooks.test:443 answered 503 (receiver error)")


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(timing=Timing(webhook_retry_delays_s=DAILY))


def a_job(
    world: MemoryWorld,
    name: str,
    status: JobStatus = JobStatus.STORED,
    *,
    events: tuple[str, ...] | None = None,
    url: str = URL,
) -> Job:
    now = world.clock.now()
    spec = JobSpec(model="wan2.2-kf2v-flash", resolution="720P", webhook_url=url, webhook_events=events)
    inputs = {"first": InputObject(f"inbox/{name}/first.png", "e", 1)}
    return Job(f"{name}/run1", name, "run1", status, spec, inputs, now - 60, now, finished_at=now)


def announce(world: MemoryWorld, job: Job) -> str:
    """What notify does for a final job's webhook: record the delivery and attempt it at once."""
    event = SUCCEEDED_EVENT if job.status is JobStatus.STORED else FAILED_EVENT
    webhook_delivery.start(world.deps, job, event, {"job": job.job_name}, URL)
    return event_id(job)


def run_poller_and_completion(world: MemoryWorld) -> None:
    """One poller cycle's webhook step, then the completion function's attempts of what it handed over,
    and of what those attempts handed over in turn (a resumed endpoint's backlog)."""
    hand_over_due(world.deps)
    while world.queues.webhooks:
        attempt(world.deps, world.queues.webhooks.pop(0))


def sent_ids(world: MemoryWorld) -> list[str]:
    return [msg_id for _, msg_id, _ in world.webhooks.sent]


def delivery(world: MemoryWorld, delivery_id: str):
    found = world.store.get_webhook_delivery(delivery_id)
    assert found is not None
    return found


def endpoint_down(world: MemoryWorld) -> None:
    world.webhooks.answers[:] = [DOWN] * 1000


def endpoint_back(world: MemoryWorld) -> None:
    world.webhooks.answers.clear()  # RecordingWebhooks answers 200 when it has no script


# ---------------------------------------------------------------------------------------------- filter
def test_the_deployment_filter_keeps_events_it_does_not_ask_for_from_webhooks():
    world = memory_world(settings_for(webhook_events=("video.generation.failed",)))
    stored, failed = a_job(world, "ok"), a_job(world, "bad", JobStatus.FAILED)
    announce(world, stored)
    announce(world, failed)
    assert sent_ids(world) == [event_id(failed)]
    assert world.store.get_webhook_delivery(event_id(stored)) is None  # never recorded, never retried


def test_a_jobs_own_filter_replaces_the_deployments():
    world = memory_world(settings_for(webhook_events=("video.generation.failed",)))
    mine = a_job(world, "mine", events=("video.generation.*",))
    quiet = a_job(world, "quiet", JobStatus.FAILED, events=("video.generation.succeeded",))
    announce(world, mine)
    announce(world, quiet)
    assert sent_ids(world) == [event_id(mine)]


def test_the_filter_applies_where_notify_creates_deliveries_and_sns_still_hears_everything():
    world = memory_world()
    job = a_job(world, "shot", JobStatus.FAILED, events=("video.generation.succeeded",))
    assert world.store.add_job(job, due=(DueKind.NOTIFY, world.clock.now()))
    assert report_and_notify(world.deps, job)
    assert [n.event_type for n in world.notifier.published] == [FAILED_EVENT]
    assert world.webhooks.sent == []


def test_a_filtered_out_event_stays_out_when_the_event_comes_again(world):
    job = a_job(world, "shot", JobStatus.FAILED, events=("video.generation.succeeded",))
    announce(world, job)
    announce(world, job)  # a duplicate notification
    assert world.webhooks.sent == []


# ---------------------------------------------------------------------------------------------- replay
def test_a_replay_sends_the_same_message_again_once_however_often_it_is_asked(world):
    job = a_job(world, "shot")
    delivery_id = announce(world, job)
    [(_, first_id, first_body)] = world.webhooks.sent
    world.clock.advance(3600)

    first = webhook_operations.replay(world.store, delivery(world, delivery_id), world.clock.now())
    second = webhook_operations.replay(world.store, delivery(world, delivery_id), world.clock.now())
    run_poller_and_completion(world)
    run_poller_and_completion(world)

    assert (first.outcome, second.outcome) == (ReplayOutcome.QUEUED, ReplayOutcome.ALREADY_QUEUED)
    assert world.webhooks.sent == [(URL, first_id, first_body), (URL, first_id, first_body)]
    replayed = delivery(world, delivery_id)
    assert (replayed.state, replayed.attempts, replayed.replays) == (DeliveryState.DELIVERED, 1, 1)
    assert [(e.state, e.status, e.note) for e in replayed.log] == [
        (DeliveryState.DELIVERED, 200, None),
        (DeliveryState.PENDING, None, webhook_delivery.REPLAY_NOTE),
        (DeliveryState.DELIVERED, 200, None),
    ]


def test_a_replay_of_an_exhausted_delivery_restarts_its_retry_schedule():
    world = memory_world(timing=Timing(webhook_retry_delays_s=(0.0, 10.0, 10.0)))
    endpoint_down(world)
    delivery_id = announce(world, a_job(world, "shot"))
    for _ in range(2):
        world.clock.advance(11)
        run_poller_and_completion(world)
    failed = delivery(world, delivery_id)
    assert (failed.state, failed.attempts) == (DeliveryState.EXHAUSTED, 3)
    endpoint_back(world)

    [replay] = webhook_operations.replay_since(
        world.store, since=failed.created_at, now=world.clock.now(), failed_only=True
    )
    assert replay.outcome is ReplayOutcome.QUEUED
    assert delivery(world, delivery_id).attempts == 0  # the schedule starts again
    run_poller_and_completion(world)
    assert delivery(world, delivery_id).state is DeliveryState.DELIVERED
    assert sent_ids(world) == [delivery_id] * 4


def test_replay_since_failed_leaves_delivered_ones_alone(world):
    ok = announce(world, a_job(world, "ok"))
    world.webhooks.answers[:] = [DeliveryResult(False, 410, False, None, True, "gone")]
    gone = announce(world, a_job(world, "gone"))
    since = world.clock.now() - 1

    failed_only = webhook_operations.replay_since(world.store, since, world.clock.now(), failed_only=True)
    every = webhook_operations.replay_since(world.store, since, world.clock.now())

    assert [r.delivery.delivery_id for r in failed_only] == [gone]
    assert [(r.delivery.delivery_id, r.outcome) for r in every] == [
        (ok, ReplayOutcome.QUEUED),
        (gone, ReplayOutcome.ALREADY_QUEUED),  # queued by the first replay, not twice
    ]


def test_replay_since_a_time_skips_older_deliveries(world):
    announce(world, a_job(world, "old"))
    world.clock.advance(DAY)
    since = world.clock.now()
    new = announce(world, a_job(world, "new"))
    replays = webhook_operations.replay_since(world.store, since, world.clock.now())
    assert [r.delivery.delivery_id for r in replays] == [new]


# ---------------------------------------------------------------------------------------------- pause
def fail_for(world: MemoryWorld, days: float, names: list[str]) -> list[str]:
    """A new event every day for ``days`` days, to an endpoint that answers 503 to everything."""
    endpoint_down(world)
    ids = []
    for day in range(int(days)):
        ids.append(announce(world, a_job(world, f"{names[0]}-{day}")))
        world.clock.advance(DAY)
        run_poller_and_completion(world)
    return ids


def test_an_endpoint_failing_for_less_than_5_days_is_not_paused(world):
    fail_for(world, 4, ["shot"])
    world.clock.advance(DAY * 0.9)  # 4.9 days after the first failure
    run_poller_and_completion(world)
    endpoint = world.store.get_webhook_endpoint(endpoint_id(URL))
    assert endpoint is not None and not endpoint.paused
    assert endpoint.failing_for(world.clock.now()) < 5 * DAY
    assert world.notifier.published == []


def test_an_endpoint_failing_every_attempt_for_5_days_is_paused_and_announced_once_on_sns(world):
    ids = fail_for(world, 6, ["shot"])
    endpoint = world.store.get_webhook_endpoint(endpoint_id(URL))
    assert endpoint is not None and endpoint.paused
    assert endpoint.paused_at is not None and endpoint.failing_since is not None
    assert endpoint.paused_at - endpoint.failing_since >= 5 * DAY

    [event] = world.notifier.published
    assert event.event_type == ENDPOINT_PAUSED_EVENT
    assert event.data["endpoint_id"] == endpoint_id(URL)
    assert event.data["origin"] == "https://hooks.test"
    # neither the query's token nor the path in the event, and the event never went to a webhook
    assert "s3cr3t" not in json.dumps(event.data) and "/in" not in json.dumps(event.data)
    assert all(json.loads(body)["type"] != ENDPOINT_PAUSED_EVENT for _, _, body in world.webhooks.sent)
    # every delivery still pending waits for the endpoint
    states = {delivery(world, i).state for i in ids}
    assert states == {DeliveryState.WAITING}


def test_a_success_ends_the_failing_streak(world):
    fail_for(world, 3, ["shot"])
    endpoint_back(world)
    world.clock.advance(DAY * 1.2)  # the retries come due, and are delivered
    run_poller_and_completion(world)
    world.clock.advance(DAY * 3)
    endpoint_down(world)
    announce(world, a_job(world, "later"))
    endpoint = world.store.get_webhook_endpoint(endpoint_id(URL))
    assert endpoint is not None and not endpoint.paused
    assert endpoint.failing_since == world.clock.now()


def test_a_paused_endpoint_gets_nothing_until_resumed_then_its_backlog_in_order(world):
    ids = fail_for(world, 6, ["shot"])
    sent_before = len(world.webhooks.sent)
    endpoint_back(world)  # the receiver is fixed, but nobody told us

    # While paused: new events, due retries and replays are all held, nothing is sent
    ids.append(announce(world, a_job(world, "while-paused")))
    for _ in range(3):
        world.clock.advance(DAY)
        run_poller_and_completion(world)
    replay = webhook_operations.replay(world.store, delivery(world, ids[0]), world.clock.now())
    assert replay.outcome is ReplayOutcome.WAITING
    assert len(world.webhooks.sent) == sent_before
    assert len(world.notifier.published) == 1  # paused once, announced once

    # When resumed
    resumed = webhook_operations.resume(world.store, URL.split("?")[0], world.clock.now())
    assert (resumed.was_paused, resumed.waiting, resumed.released) == (True, len(ids), ids[0])
    run_poller_and_completion(world)

    # Then every waiting delivery went out once, oldest first, and is delivered
    assert sent_ids(world)[sent_before:] == ids
    assert {delivery(world, i).state for i in ids} == {DeliveryState.DELIVERED}
    endpoint = world.store.get_webhook_endpoint(endpoint_id(URL))
    assert endpoint is not None and not endpoint.paused and endpoint.failing_since is None


def test_a_resumed_backlog_stops_at_a_failure_and_goes_on_once_it_is_settled(world):
    ids = fail_for(world, 6, ["shot"])
    sent_before = len(world.webhooks.sent)
    world.webhooks.answers[:] = [DOWN]  # the first one of the backlog fails once more, then all is well
    webhook_operations.resume(world.store, URL, world.clock.now())
    run_poller_and_completion(world)
    assert sent_ids(world)[sent_before:] == [ids[0]]  # the rest wait behind it
    assert {delivery(world, i).state for i in ids[1:]} == {DeliveryState.WAITING}
    world.clock.advance(DAY * 1.2)
    run_poller_and_completion(world)
    assert sent_ids(world)[sent_before:] == [ids[0], *ids]


def test_resuming_an_endpoint_that_is_not_paused_changes_nothing(world):
    announce(world, a_job(world, "shot"))
    resumed = webhook_operations.resume(world.store, URL, world.clock.now())
    assert (resumed.was_paused, resumed.waiting, resumed.released) == (False, 0, None)
    assert "s3cr3t" not in resumed.endpoint and resumed.endpoint.startswith("https://hooks.test/…")


def test_the_pause_is_per_endpoint_origin_and_path_not_query(world):
    fail_for(world, 6, ["shot"])
    endpoint_back(world)
    other_token = "https://hooks.test/in?token=another"
    other_path = "https://hooks.test/elsewhere"
    held = a_job(world, "same-endpoint", url=other_token)
    webhook_delivery.start(world.deps, held, SUCCEEDED_EVENT, {}, other_token)
    webhook_delivery.start(world.deps, a_job(world, "other"), SUCCEEDED_EVENT, {}, other_path)
    assert delivery(world, event_id(held)).state is DeliveryState.WAITING
    assert [url for url, _, _ in world.webhooks.sent][-1] == other_path


def test_a_refused_destination_does_not_count_against_the_endpoint(world):
    world.webhooks.refused_urls.add(URL)
    delivery_id = announce(world, a_job(world, "shot"))
    assert delivery(world, delivery_id).state is DeliveryState.REFUSED
    assert world.store.get_webhook_endpoint(endpoint_id(URL)) is None


# ---------------------------------------------------------------------------------------------- log
def test_the_delivery_log_has_each_attempts_time_status_error_and_next_attempt(world):
    job = a_job(world, "shot")
    world.webhooks.answers[:] = [DOWN]
    t0 = world.clock.now()
    announce(world, job)
    world.clock.advance(DAY * 1.2)
    run_poller_and_completion(world)
    log = webhook_operations.job_delivery(world.store, job)
    assert log is not None
    [failed, delivered] = log.log
    assert (failed.at, failed.status, failed.state) == (t0, 503, DeliveryState.PENDING)
    assert failed.error and "503" in failed.error
    assert failed.next_attempt_at is not None and failed.next_attempt_at > t0 + 0.8 * DAY
    assert (delivered.at, delivered.status, delivered.next_attempt_at) == (world.clock.now(), 200, None)


def test_a_job_that_is_not_final_has_no_delivery(world):
    job = replace(a_job(world, "shot"), status=JobStatus.SUBMITTED)
    assert webhook_operations.job_delivery(world.store, job) is None


def test_an_attempt_of_a_held_delivery_sends_nothing(world):
    ids = fail_for(world, 6, ["shot"])
    sent_before = len(world.webhooks.sent)
    assert attempt(world.deps, ids[-1]) is AttemptOutcome.NOTHING_TO_DO  # WAITING, not PENDING
    assert len(world.webhooks.sent) == sent_before
