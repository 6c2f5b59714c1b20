"""A drop made the way the AWS CLI makes it (PutObject to the inbox through the AWS endpoint) becomes a
stored video with metadata.json, one SNS notification and a signed webhook that a receiver verifies."""

from __future__ import annotations

import json

import pytest
from inbetween_local.receiver import WebhookReceiver
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import SAMPLES, STACK_MARKS, probe_mp4

pytestmark = STACK_MARKS


@pytest.fixture
def receiver(stack):
    with WebhookReceiver(stack.webhook_secret) as receiver:
        yield receiver


def test_a_dropped_pair_becomes_a_stored_video_with_metadata_notification_and_webhook(
    stack, receiver, notification_queue, tmp_path
):
    # Given a keyframe pair and a job.json naming a webhook, uploaded as `aws s3 cp` would
    s3 = stack.client("s3")
    folder = "inbox/e2e-boto3/"
    s3.put_object(
        Bucket=stack.inbox_bucket,
        Key=folder + "job.json",
        Body=json.dumps({"prompt": "the ball rolls right", "webhook_url": receiver.url}).encode(),
    )
    for role in ("first", "last"):
        s3.put_object(
            Bucket=stack.inbox_bucket, Key=f"{folder}{role}.png", Body=(SAMPLES / f"{role}.png").read_bytes()
        )

    # When the pipeline has run
    job = stack.wait_for_job("e2e-boto3", timeout=90)

    # Then the job is stored, with its video and metadata.json under results/
    assert job.status.value == "STORED", job.error
    prefix = f"results/e2e-boto3/{job.run_id}/"
    assert job.video_key == prefix + "video.mp4"
    video = tmp_path / "video.mp4"
    s3.download_file(stack.output_bucket, job.video_key, str(video))
    probe = probe_mp4(video)
    assert probe["codec"] == "h264"
    assert probe["duration_s"] == pytest.approx(5.0, abs=0.2)
    metadata = json.loads(
        s3.get_object(Bucket=stack.output_bucket, Key=prefix + "metadata.json")["Body"].read()
    )
    assert metadata["job_id"] == job.job_id
    assert metadata["prompt"] == "the ball rolls right"
    assert metadata["video"]["key"] == job.video_key

    # And the receiver got a webhook it verified (and so does the standardwebhooks package)
    event = receiver.wait_for_event(30, lambda e: e.payload["data"].get("job_id") == job.job_id)
    assert receiver.rejected == []
    assert event.payload["type"] == "video.generation.succeeded"
    assert event.payload["data"]["status"] == "STORED"
    assert event.payload["data"]["video"]["key"] == job.video_key
    Webhook(stack.webhook_secret).verify(event.body, event.headers)

    # And exactly one SNS notification was published for the job (SNS goes out before the webhook)
    messages = []
    while batch := stack.notifications(notification_queue):
        messages += batch
    mine = [m for m in messages if json.loads(m["Message"])["data"].get("job_id") == job.job_id]
    assert len(mine) == 1
    assert json.loads(mine[0]["Message"])["type"] == "video.generation.succeeded"
    assert mine[0]["MessageAttributes"]["status"]["Value"] == "STORED"


def test_a_receiver_refuses_a_webhook_signed_with_another_secret(stack):
    # Given a receiver holding the stack's secret, and a body signed with some other secret
    import time

    import httpx
    from inbetween.webhooks import new_secret, sign

    body = b'{"type":"video.generation.succeeded","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    now = int(time.time())
    with WebhookReceiver(stack.webhook_secret) as receiver:
        # When it is posted
        resp = httpx.post(
            receiver.url,
            content=body,
            headers={
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(now),
                "webhook-signature": sign(new_secret(), "msg_forged", now, body),
            },
        )
        # Then it is answered 401 and not accepted
        assert resp.status_code == 401
        assert receiver.events == []
        assert receiver.rejected == [("msg_forged", "no matching webhook signature")]
