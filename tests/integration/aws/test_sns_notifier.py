"""SnsNotifier on moto in-process: the event as JSON, a subject SNS accepts whatever the folder is
called, and attributes subscribers filter on (read back through an SQS subscription)."""

from __future__ import annotations

import json

import pytest
from inbetween.aws.sns_notifier import SnsNotifier, sns_subject
from inbetween.domain.models import JobStatus, Notification


def a_notification(
    job_name: str = "shot", status: JobStatus = JobStatus.STORED, model: str | None = "wan2.2-kf2v-flash"
) -> Notification:
    return Notification(
        event_type="video.generation.succeeded" if status is JobStatus.STORED else "video.generation.failed",
        job_name=job_name,
        status=status,
        model=model,
        timestamp="2027-01-15T08:00:00Z",
        data={"job": job_name, "status": status.value, "video": {"key": "results/x/video.mp4"}},
    )


@pytest.fixture
def topic(aws):
    """A topic with an SQS subscriber that receives the SNS envelope (not raw)."""
    sns, sqs = aws.client("sns"), aws.client("sqs")
    arn = sns.create_topic(Name="notify")["TopicArn"]
    url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)

    def received() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return SnsNotifier(sns, arn), received


def test_a_notification_is_published_as_json_with_filterable_attributes(topic):
    notifier, received = topic
    notifier.publish(a_notification())
    (envelope,) = received()
    assert json.loads(envelope["Message"]) == {
        "type": "video.generation.succeeded",
        "timestamp": "2027-01-15T08:00:00Z",
        "data": {"job": "shot", "status": "STORED", "video": {"key": "results/x/video.mp4"}},
    }
    assert envelope["Subject"] == "inbetween: shot stored"
    attributes = {k: (v["Type"], v["Value"]) for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {
        "event_type": ("String", "video.generation.succeeded"),
        "status": ("String", "STORED"),
        "model": ("String", "wan2.2-kf2v-flash"),
    }


def test_a_job_without_a_model_is_published_as_model_unknown(topic):
    notifier, received = topic
    notifier.publish(a_notification("bad", JobStatus.REJECTED, model=None))
    (envelope,) = received()
    assert envelope["MessageAttributes"]["model"]["Value"] == "unknown"
    assert envelope["MessageAttributes"]["status"]["Value"] == "REJECTED"


@pytest.mark.parametrize(
    "job_name",
    ["rote Blüte ✿ 夕焼け", "tab\there\nnewline\x7fdel", "x" * 300, "é" * 200],
    ids=["unicode", "control-characters", "long", "long-unicode"],
)
def test_the_subject_is_printable_ascii_under_100_characters_whatever_the_folder_name(topic, job_name):
    notifier, received = topic
    subject = sns_subject(a_notification(job_name, JobStatus.FAILED))
    assert subject.startswith("inbetween: ")
    assert len(subject) < 100
    assert all(32 <= ord(c) < 127 for c in subject)
    notifier.publish(a_notification(job_name, JobStatus.FAILED))
    (envelope,) = received()
    assert envelope["Subject"] == subject
    assert json.loads(envelope["Message"])["data"]["job"] == job_name  # the body keeps the real name


def test_a_short_name_keeps_its_status_in_the_subject():
    assert sns_subject(a_notification("shot", JobStatus.EXPIRED)) == "inbetween: shot expired"
    assert sns_subject(a_notification("ü", JobStatus.FAILED)) == "inbetween: ? failed"
