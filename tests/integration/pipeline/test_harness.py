"""The harness itself: the pipeline runs on template.yaml's resources, and SQS batches reach a function as
Lambda's event source mapping delivers them (the simulation the local stack and the bench share)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from inbetween_local.stack.runtime import FunctionCrashed, LambdaContext, run_sqs_batch
from inbetween_local.stack.template import LocalTemplate


def test_the_pipeline_runs_on_the_resources_the_template_declares(pipeline):
    # Given the template as cfn-lint decodes it
    template = LocalTemplate.load()
    table_props = template.resources["JobsTable"]["Properties"]

    # Then the functions' settings name the provisioned resources
    provisioned = pipeline.provisioned
    assert pipeline.settings.jobs_table == provisioned.ref("JobsTable")
    assert pipeline.settings.intake_queue_url == provisioned.ref("IntakeQueue")
    assert pipeline.settings.completion_queue_url == provisioned.ref("CompletionQueue")
    assert pipeline.settings.topic_arn == provisioned.outputs["NotifyTopicArn"]
    # and the table has the template's keys and indexes, the queues its dead-letter queues
    table = pipeline.session.client("dynamodb").describe_table(TableName=pipeline.settings.jobs_table)[
        "Table"
    ]
    assert table["KeySchema"] == table_props["KeySchema"]
    assert {g["IndexName"]: g["KeySchema"] for g in table["GlobalSecondaryIndexes"]} == {
        g["IndexName"]: g["KeySchema"] for g in table_props["GlobalSecondaryIndexes"]
    }
    attrs = pipeline.sqs.get_queue_attributes(
        QueueUrl=pipeline.settings.intake_queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == provisioned.arn(
        "IntakeDeadLetterQueue"
    )
    # and the handlers are the template's functions
    assert set(pipeline.functions) == {"submit", "poller", "completion", "stitch"}


def test_a_context_counts_down_from_the_template_timeout(pipeline):
    context = pipeline.context("poller")
    timeout_ms = pipeline.functions["poller"].timeout_s * 1000
    assert timeout_ms - 5000 < context.get_remaining_time_in_millis() <= timeout_ms
    assert context.function_name == f"{pipeline.stack_name}-PollerFunction"
    assert isinstance(context, LambdaContext)


@pytest.fixture
def queue(moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"harness-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _batch(sqs, url, bodies):
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    messages = []
    while len(messages) < len(bodies):
        messages += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)[
            "Messages"
        ]
    return messages


def _left(sqs, url) -> list[str]:
    resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
    return sorted(m["Body"] for m in resp.get("Messages", []))


def _run(queue, bodies, invoke, **kwargs):
    sqs, url, arn = queue
    messages = _batch(sqs, url, bodies)
    batch = run_sqs_batch(
        invoke, messages, sqs=sqs, queue_url=url, queue_arn=arn, retry_visibility_s=0, **kwargs
    )
    return batch, _left(sqs, url)


def test_reported_item_failures_come_back_and_the_rest_is_deleted(queue):
    seen = []

    def invoke(event):
        seen.extend((r["body"], r["eventSourceARN"], r["eventSource"]) for r in event["Records"])
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "b"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    batch, left = _run(queue, ["a", "b", "c"], invoke)
    assert sorted(s[0] for s in seen) == ["a", "b", "c"]
    assert {s[1:] for s in seen} == {(queue[2], "aws:sqs")}
    assert [m["Body"] for m in batch.failed] == ["b"] and len(batch.succeeded) == 2
    assert batch.batch_item_failures == {
        "batchItemFailures": [{"itemIdentifier": batch.failed[0]["MessageId"]}]
    }
    assert left == ["b"]


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("handler raised"), FunctionCrashed("the process died")],
    ids=["exception", "crash"],
)
def test_a_raising_or_crashing_function_fails_the_whole_batch(queue, failure):
    def invoke(event):
        raise failure

    batch, left = _run(queue, ["a", "b"], invoke)
    assert batch.error is failure and batch.succeeded == []
    assert left == ["a", "b"]


def test_a_malformed_partial_response_fails_the_whole_batch(queue):
    batch, left = _run(queue, ["a", "b"], lambda event: {"batchItemFailures": [{"itemIdentifier": "nope"}]})
    assert batch.error is None and len(batch.failed) == 2
    assert left == ["a", "b"]


def test_without_report_batch_item_failures_the_response_is_ignored(queue):
    def invoke(event):
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    batch, left = _run(queue, ["a", "b"], invoke, report_batch_item_failures=False)
    assert batch.failed == [] and left == []
