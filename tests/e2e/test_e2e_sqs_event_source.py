"""The local SQS event source behaves like Lambda's: the Lambda event shape, deletes what succeeded,
redelivers reported failures and whole failed batches, and (moto's redrive) parks repeated failures in
the dead-letter queue."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from inbetween_local.stack.runtime import SqsPump
from inbetween_local.stack.template import SqsEventSource

from tests.e2e.conftest import STACK_MARKS

pytestmark = STACK_MARKS


class RecordingFunction:
    """Fails messages whose body is "fail" (batchItemFailures) and raises on "crash"."""

    def __init__(self):
        self.definition = SimpleNamespace(logical_id="Recorder")
        self.name = "recorder"
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def invoke(self, event):
        with self.lock:
            self.events.append(event)
        bodies = [r["body"] for r in event["Records"]]
        if "crash" in bodies:
            raise RuntimeError("handler crashed")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"
            ]
        }

    def records(self, body):
        with self.lock:
            return [r for e in self.events for r in e["Records"] if r["body"] == body]


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def queues(stack):
    sqs = stack.client("sqs")
    dlq = sqs.create_queue(QueueName="e2e-pump-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(
        QueueName="e2e-pump", Attributes={"VisibilityTimeout": "300", "RedrivePolicy": redrive}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield sqs, url, arn, dlq
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def test_pump_deletes_successes_redelivers_failures_and_moto_parks_them_in_the_dlq(queues):
    sqs, url, arn, dlq = queues
    function = RecordingFunction()
    stopping = threading.Event()
    source = SqsEventSource(name="Test", queue_logical_id="Q", batch_size=10, report_batch_item_failures=True)
    pump = SqsPump(
        function, source, sqs=sqs, queue_url=url, queue_arn=arn, retry_visibility_s=1, stopping=stopping
    )
    # Given one good message, one the handler reports as failed, and one that crashes its batch
    sqs.send_message(
        QueueUrl=url, MessageBody="ok", MessageAttributes={"a": {"DataType": "String", "StringValue": "1"}}
    )
    sqs.send_message(QueueUrl=url, MessageBody="fail")
    pump.start()
    try:
        # When the pump has delivered the failure twice (maxReceiveCount) and moto has redriven it
        wait_until(lambda: len(function.records("fail")) >= 2)
        wait_until(lambda: bool(sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages")))
        sqs.send_message(QueueUrl=url, MessageBody="crash")
        wait_until(lambda: len(function.records("crash")) >= 2)
    finally:
        stopping.set()
        pump.join(timeout=10)

    # Then the good message was delivered once, in Lambda's SQS event shape
    (ok,) = function.records("ok")
    assert ok["eventSource"] == "aws:sqs"
    assert ok["eventSourceARN"] == arn
    assert ok["awsRegion"] == "us-east-1"
    assert ok["attributes"]["ApproximateReceiveCount"] == "1"
    assert ok["messageAttributes"]["a"]["stringValue"] == "1"
    assert ok["md5OfBody"] and ok["receiptHandle"] and ok["messageId"]
    # And the failure came back with a growing receive count (not after the queue's 300 s timeout)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in function.records("fail")[:2]] == ["1", "2"]
    # And a crashed batch is redelivered as a whole
    assert len(function.records("crash")) >= 2
