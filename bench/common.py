"""What every figure shares: the result record, request counting, and AWS resources on moto."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOT = Path(os.environ.get("BENCH_CODE_ROOT") or ROOT)  # whose shared/ and functions/ are measured
OUT = ROOT / "bench" / "out"
REGION = "us-east-1"


@dataclass
class Figure:
    """One row of the table: a ratio or a count beside its baseline, with its goal and verdict."""

    key: str
    name: str
    value: float | None
    unit: str
    goal: str
    passed: bool | None  # None: informational or not measured
    baseline: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


class RequestCounter:
    """Counts AWS API calls by service and operation through botocore's ``before-call`` event (one per
    call, as billed), and the items DynamoDB reads report (``ScannedCount``) through ``after-call``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items_read: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, events: Any) -> RequestCounter:
        events.register("before-call", self._before)
        events.register("after-call.dynamodb", self._after_dynamodb)
        return self

    def _before(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.calls[key] += 1

    def _after_dynamodb(self, http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        with self._lock:
            if model.name in ("Query", "Scan"):
                self.items_read[model.name] += int(parsed.get("ScannedCount", 0))
            elif model.name == "GetItem":
                self.items_read[model.name] += 1 if "Item" in parsed else 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.items_read.clear()


def create_resources(session: Any, suffix: str, *, api_key: str = "sk-bench-000") -> dict[str, str]:
    """The template's resources that the functions touch, on moto (names as environment variables)."""
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
    for _ in range(3):  # the s3:TestEvent that announces a new notification target
        for m in sqs.receive_message(QueueUrl=intake, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=intake, ReceiptHandle=m["ReceiptHandle"])
    table = f"jobs-{suffix}"
    create_jobs_table(ddb, table)
    topic = sns.create_topic(Name=f"notify-{suffix}")["TopicArn"]
    key_secret = sm.create_secret(Name=f"dashscope-{suffix}", SecretString=api_key)["ARN"]
    hook_secret = sm.create_secret(Name=f"webhook-{suffix}", SecretString="QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")[
        "ARN"
    ]
    return {
        "JOBS_TABLE": table,
        "INBOX_BUCKET": inbox,
        "OUTPUT_BUCKET": output,
        "NOTIFY_TOPIC_ARN": topic,
        "INTAKE_QUEUE_URL": intake,
        "COMPLETION_QUEUE_URL": completion,
        "DASHSCOPE_API_KEY_SECRET": key_secret,
        "WEBHOOK_SECRET_NAME": hook_secret,
    }


def create_jobs_table(ddb: Any, table: str) -> None:
    """The jobs table as template.yaml declares it: key ``pk`` and the sparse ``due-index``."""
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


class MotoServer:
    """moto in server mode on an ephemeral loopback port, in a thread of this process."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def fake_aws_env() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result
