"""Two invocations that find the same final, unnotified job at once (a duplicate S3 event and a
redelivered message, a redelivered completion and the poller's safety net) publish one notification."""

from __future__ import annotations

import json

from faults import FaultyNotifier
from inbetween.usecases import notify


class AnotherInvocationGetsIn:
    """While the first notification is being published, a second invocation reaches the same job (the
    race the fault suite found: it sent two SNS messages for one final state)."""

    def __init__(self, pipeline):
        self._pipeline = pipeline
        self.raced = False
        self.second_notified = None

    def __call__(self, notification):
        if not self.raced:
            self.raced = True
            deps = self._pipeline.deps
            stale = deps.store.get_job(notification.data["job_id"])
            assert stale is not None and stale.notified_at is None
            self.second_notified = notify.report_and_notify(deps, stale)


def test_a_second_invocation_while_the_first_is_notifying_publishes_nothing(pipeline, pair):
    # Given a drop the pipeline rejects, and a second invocation arriving while it notifies
    race = AnotherInvocationGetsIn(pipeline)
    pipeline.replace(notifier=FaultyNotifier(pipeline.deps.notifier, race))
    pipeline.drop("twice-notified", {**pair, "job.json": json.dumps({"resolution": "4K"}).encode()})

    # When the pipeline runs
    item = pipeline.run_until_final("twice-notified")

    # Then the race happened, and still one notification went out for the final state
    assert race.raced
    assert race.second_notified is False
    assert item["status"] == "REJECTED"
    assert [n["message"]["data"]["job_id"] for n in pipeline.notifications()] == [item["job_id"]]


def test_a_claim_left_by_a_dead_invocation_expires_and_the_poller_notifies(pipeline, pair):
    # Given an invocation that claimed the notification and died before publishing
    died = []

    def die_once(notification):
        if not died:
            died.append(notification.data["job_id"])
            raise RuntimeError("invocation died while notifying")

    pipeline.replace(notifier=FaultyNotifier(pipeline.deps.notifier, die_once))
    pipeline.drop("claim-expires", {**pair, "job.json": json.dumps({"resolution": "4K"}).encode()})
    pipeline.run_until(lambda: bool(died))

    # When the claim's time has passed and the poller runs
    pipeline.advance(pipeline.deps.timing.notify_grace_s + 1)
    item = pipeline.run_until_final("claim-expires")

    # Then the job is notified once
    assert item["status"] == "REJECTED"
    assert len(pipeline.notifications()) == 1
