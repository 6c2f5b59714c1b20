"""SqsQueues on moto in-process: every hand-off is a message the receiving function parses back with
inbetween.domain.messages, on the queue that function reads."""

from __future__ import annotations

from typing import Any

import pytest
from inbetween.aws.sqs_queues import MAX_DELAY_S, SqsQueues
from inbetween.domain.messages import (
    AdmitWaiting,
    CompleteJob,
    DeliverWebhook,
    RecheckDrop,
    completion_item,
    intake_items,
)


class RecordingSqs:
    """The moto client, with every send_message's arguments kept (a delayed message is not receivable)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        return self._client.send_message(**kwargs)


@pytest.fixture
def sqs(aws):
    return aws.client("sqs")


@pytest.fixture
def urls(sqs) -> dict[str, str]:
    return {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("intake", "completion")}


@pytest.fixture
def recording(sqs) -> RecordingSqs:
    return RecordingSqs(sqs)


@pytest.fixture
def queues(recording, urls) -> SqsQueues:
    return SqsQueues(recording, intake_url=urls["intake"], completion_url=urls["completion"])


def bodies(sqs, url: str) -> list[str]:
    resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [m["Body"] for m in resp.get("Messages", [])]


def test_admissions_go_to_the_intake_queue_and_parse_back(sqs, queues, urls):
    queues.admit_waiting("wan2.2-kf2v-flash")
    (body,) = bodies(sqs, urls["intake"])
    assert intake_items(body) == [AdmitWaiting(model="wan2.2-kf2v-flash")]
    assert bodies(sqs, urls["completion"]) == []


def test_an_admission_through_another_submit_lane_names_it(sqs, queues, urls):
    queues.admit_waiting("wan2.7-i2v", lane=1)
    (body,) = bodies(sqs, urls["intake"])
    assert intake_items(body) == [AdmitWaiting(model="wan2.7-i2v", lane=1)]


def test_completions_and_webhook_attempts_go_to_the_completion_queue_and_parse_back(sqs, queues, urls):
    queues.complete_job("shot/0123456789ab")
    queues.deliver_webhook("msg_abc")
    received = sorted(bodies(sqs, urls["completion"]), key=lambda b: "webhook" in b)
    assert [completion_item(b) for b in received] == [
        CompleteJob(job_id="shot/0123456789ab"),
        DeliverWebhook(delivery_id="msg_abc"),
    ]
    assert bodies(sqs, urls["intake"]) == []


def test_a_recheck_of_a_settling_folder_is_delayed_and_parses_back(sqs, queues, recording, urls):
    queues.recheck_drop_later("red flower/ü", 0)
    (body,) = bodies(sqs, urls["intake"])
    assert intake_items(body) == [RecheckDrop(job_name="red flower/ü")]
    queues.recheck_drop_later("shot", 7)
    assert recording.sent[-1]["DelaySeconds"] == 7
    assert bodies(sqs, urls["intake"]) == []  # not visible before its delay


@pytest.mark.parametrize(("asked", "sent"), [(-5, 0), (0, 0), (900, 900), (3600, MAX_DELAY_S), (12.7, 12)])
def test_the_recheck_delay_is_kept_within_what_sqs_accepts(queues, recording, asked, sent):
    queues.recheck_drop_later("shot", asked)
    assert recording.sent[-1]["DelaySeconds"] == sent
