"""Harness for the handlers: moto in server mode (so the emulator can fetch presigned frame URLs on
loopback), the DashScope emulator, and the real Lambda handlers driven by hand, step by step."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import pytest
from inbetween.config import Timing, load_settings
from inbetween.wiring import build_deps
from inbetween_local.emulator import EmulatorConfig, EmulatorServer
from moto.server import ThreadedMotoServer
from pipeline_kit import API_KEY, BLUE, RED, WEBHOOK_SECRET_RAW, frame_png

ROOT = Path(__file__).resolve().parents[3]
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"fn_{name}_app", ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context():
    return FakeContext()


@pytest.fixture(scope="session")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Pipeline:
    session: boto3.session.Session
    settings: object
    deps: object
    emulator: EmulatorServer
    handlers: dict
    notifications_queue: str
    clock_offset: list = field(default_factory=lambda: [0.0])

    @property
    def s3(self):
        return self.session.client("s3")

    @property
    def sqs(self):
        return self.session.client("sqs")

    def drop(self, job: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.s3.put_object(Bucket=self.settings.inbox_bucket, Key=f"inbox/{job}/{name}", Body=data)

    def receive(self, queue_url: str, max_messages: int = 10, wait: int = 0) -> list[dict]:
        resp = self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            VisibilityTimeout=2,
        )
        return resp.get("Messages", [])

    @staticmethod
    def sqs_event(messages: list[dict], queue_arn: str) -> dict:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def invoke_queue(self, function: str, queue_url: str, messages: list[dict] | None = None) -> dict:
        """Deliver queue messages to a handler as Lambda's event source mapping would."""
        messages = self.receive(queue_url) if messages is None else messages
        if not messages:
            return {"batchItemFailures": []}
        event = self.sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q")
        try:
            result = self.handlers[function].lambda_handler(event, FakeContext())
        except Exception:  # noqa: BLE001 - as Lambda does: a raising handler fails the whole batch
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return result

    def submit_step(self) -> dict:
        return self.invoke_queue("submit", self.settings.intake_queue_url)

    def completion_step(self) -> dict:
        return self.invoke_queue("completion", self.settings.completion_queue_url)

    def poll_step(self) -> dict:
        return self.handlers["poller"].lambda_handler({"source": "aws.events"}, FakeContext())

    def job_items(self) -> list[dict]:
        table = self.session.resource("dynamodb").Table(self.settings.jobs_table)
        items = table.scan()["Items"]
        return [i for i in items if str(i["pk"]).startswith("job#")]

    def job(self, job_name: str) -> dict | None:
        runs = [i for i in self.job_items() if i["job_name"] == job_name]
        runs.sort(key=lambda i: i["created_at"])
        return runs[-1] if runs else None

    def run_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.submit_step()
            self.poll_step()
            self.completion_step()
            if done():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; jobs: {[(i['job_name'], i['status']) for i in self.job_items()]}")

    def run_until_final(self, job_name: str, timeout: float = 30.0) -> dict:
        final = {"STORED", "REJECTED", "FAILED", "EXPIRED"}

        def done() -> bool:
            item = self.job(job_name)
            return bool(item and item["status"] in final and item.get("notified_at"))

        self.run_until(done, timeout)
        return self.job(job_name)

    def advance(self, seconds: float) -> None:
        """Move the pipeline's clock forward (due times, back-offs); the emulator keeps real time."""
        self.clock_offset[0] += seconds

    def notifications(self) -> list[dict]:
        out = []
        while True:
            msgs = self.receive(self.notifications_queue)
            if not msgs:
                return out
            for m in msgs:
                envelope = json.loads(m["Body"])
                out.append(
                    {
                        "message": json.loads(envelope["Message"]),
                        "attributes": {
                            k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
                        },
                    }
                )
                self.sqs.delete_message(QueueUrl=self.notifications_queue, ReceiptHandle=m["ReceiptHandle"])

    def read_json(self, bucket: str, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def create_resources(session, suffix: str) -> dict[str, str]:
    s3 = session.client("s3")
    sqs = session.client("sqs")
    ddb = session.client("dynamodb")
    sns = session.client("sns")
    sm = session.client("secretsmanager")
    inbox, output = f"inbox-{suffix}", f"output-{suffix}"
    s3.create_bucket(Bucket=inbox)
    s3.create_bucket(Bucket=output)
    s3.put_bucket_versioning(Bucket=output, VersioningConfiguration={"Status": "Enabled"})
    intake = sqs.create_queue(QueueName=f"intake-{suffix}")["QueueUrl"]
    completion = sqs.create_queue(QueueName=f"completion-{suffix}")["QueueUrl"]
    intake_arn = sqs.get_queue_attributes(QueueUrl=intake, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=inbox,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": intake_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inbox/"}]}},
                }
            ]
        },
    )
    # S3 announces a new notification target with an s3:TestEvent; start each test with an empty queue
    for _ in range(3):
        for m in sqs.receive_message(QueueUrl=intake, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=intake, ReceiptHandle=m["ReceiptHandle"])
    table = f"jobs-{suffix}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "due_kind", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "due-index",
                "KeySchema": [
                    {"AttributeName": "due_kind", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    topic = sns.create_topic(Name=f"notify-{suffix}")["TopicArn"]
    notes = sqs.create_queue(QueueName=f"notes-{suffix}")["QueueUrl"]
    notes_arn = sqs.get_queue_attributes(QueueUrl=notes, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notes_arn)
    key_secret = sm.create_secret(Name=f"dashscope-{suffix}", SecretString=API_KEY)["ARN"]
    hook_secret = sm.create_secret(Name=f"webhook-{suffix}", SecretString=WEBHOOK_SECRET_RAW)["ARN"]
    return {
        "JOBS_TABLE": table,
        "INBOX_BUCKET": inbox,
        "OUTPUT_BUCKET": output,
        "NOTIFY_TOPIC_ARN": topic,
        "INTAKE_QUEUE_URL": intake,
        "COMPLETION_QUEUE_URL": completion,
        "DASHSCOPE_API_KEY_SECRET": key_secret,
        "WEBHOOK_SECRET_NAME": hook_secret,
        "_NOTES_QUEUE": notes,
    }


@pytest.fixture
def emulator_config():
    return EmulatorConfig(api_keys=(API_KEY,), pending_s=0.1, running_s=0.4, render_preset="ultrafast")


@pytest.fixture
def env_overrides():
    return {}


@pytest.fixture
def pipeline(moto_url, monkeypatch, emulator_config, env_overrides):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session()
    names = create_resources(session, uuid.uuid4().hex[:10])
    notes = names.pop("_NOTES_QUEUE")
    emulator = EmulatorServer(emulator_config).start()
    env = dict(
        names,
        PROVIDER_BASE_URL=emulator.base_url,
        SETTLE_SECONDS="0",
        POLL_INTERVAL_SECONDS="0.3",
        POLL_BUDGET_SECONDS="1",
        ALLOW_LOCAL_WEBHOOKS="true",
        INCOMPLETE_DROP_TIMEOUT_SECONDS="3",
    )
    env.update(env_overrides)
    settings = load_settings(env)
    timing = Timing(first_poll_delay_s=0.2, submit_lease_s=3.0, notify_grace_s=2.0, completion_grace_s=5.0)
    offset = [0.0]
    deps = build_deps(settings, session=session, timing=timing, clock=lambda: time.time() + offset[0])
    handlers = {name: load_handler(name) for name in ("submit", "poller", "completion")}
    for module in handlers.values():
        monkeypatch.setattr(module, "get_deps", lambda: deps)
    yield Pipeline(
        session=session,
        settings=settings,
        deps=deps,
        emulator=emulator,
        handlers=handlers,
        notifications_queue=notes,
        clock_offset=offset,
    )
    emulator.stop()
    if deps._http is not None:
        deps._http.close()


@pytest.fixture
def pair() -> dict[str, bytes]:
    return {"first.png": frame_png(RED), "last.png": frame_png(BLUE)}


__all__ = ["httpx"]
