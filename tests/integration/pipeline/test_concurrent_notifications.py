"""Two invocations that find the same final, unnotified job at once (a duplicate S3 event and a
redelivered message, a redelivered completion and the poller's safety net) publish one notification."""

from __future__ import annotations

import json

from inbetween.usecases import notify as outcomes


class SnsThatLetsAnotherInvocationIn:
    """While the first notification is being published, a second invocation reaches the same job (the
    race the fault suite found: it sent two SNS messages for one final state)."""

    def __init__(self, deps, real):
        self._deps = deps
        self._real = real
        self.raced = False

    def publish(self, **kwargs):
        if not self.raced:
            self.raced = True
            job_id = json.loads(kwargs["Message"])["data"]["job_id"]
            stale = self._deps.store.get_job(job_id)
            assert stale is not None and stale.notified_at is None
            outcomes.report_and_notify(self._deps, stale)
        return self._real.publish(**kwargs)


def test_a_second_invocation_while_the_first_is_notifying_publishes_nothing(pipeline, pair, monkeypatch):
    # Given a drop the pipeline rejects, and a second invocation arriving while it notifies
    sns = SnsThatLetsAnotherInvocationIn(pipeline.deps, pipeline.deps.sns)
    monkeypatch.setattr(pipeline.deps, "sns", sns)
    pipeline.drop("twice-notified", {**pair, "job.json": json.dumps({"resolution": "4K"}).encode()})

    # When the pipeline runs
    item = pipeline.run_until_final("twice-notified")

    # Then the race happened, and still one notification went out for the final state
    assert sns.raced
    assert item["status"] == "REJECTED"
    assert [n["message"]["data"]["job_id"] for n in pipeline.notifications()] == [item["job_id"]]


def test_a_claim_left_by_a_dead_invocation_expires_and_the_poller_notifies(pipeline, pair, monkeypatch):
    # Given an invocation that claimed the notification and died before publishing
    real_publish = pipeline.deps.sns.publish
    died = []

    class DyingSns:
        def publish(self, **kwargs):
            if not died:
                died.append(True)
                raise RuntimeError("invocation died while notifying")
            return real_publish(**kwargs)

    monkeypatch.setattr(pipeline.deps, "sns", DyingSns())
    pipeline.drop("claim-expires", {**pair, "job.json": json.dumps({"resolution": "4K"}).encode()})
    pipeline.run_until(lambda: bool(died))

    # When the claim's time has passed and the poller runs
    pipeline.advance(pipeline.deps.timing.notify_grace_s + 1)
    item = pipeline.run_until_final("claim-expires")

    # Then the job is notified once
    assert item["status"] == "REJECTED"
    assert len(pipeline.notifications()) == 1
