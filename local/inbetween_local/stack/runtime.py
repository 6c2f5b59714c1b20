"""Run the template's functions in-process the way Lambda does: SQS event source pumps and a schedule.

* A function is its handler module loaded by file path under a unique module name (every handler file is
  ``app.py``), called with a Lambda-shaped event and a fake context whose remaining time counts down from
  the template's ``Timeout``.
* ``SqsPump``: long-polls the source queue (1 s), builds the Lambda SQS event, invokes, deletes what
  succeeded, and honours ``batchItemFailures`` (an exception fails the whole batch). Failed messages are
  made visible again after ``retry_visibility_s`` rather than the queue's long visibility timeout; moto
  itself moves a message to the dead-letter queue once its receive count passes ``maxReceiveCount``.
* ``Scheduler``: invokes a function every ``period_s`` with an EventBridge "Scheduled Event".
* Fault injection (off by default): a pump may deliver every S3 event notification ``event_copies`` times;
  several pumps/schedulers may run one function at once (each with its own copy of the handler module,
  as separate Lambda containers have); a ``FunctionCrashed`` raised inside a handler is treated like the
  Lambda process dying (the batch fails and comes back; a schedule's tick is lost).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from .template import ACCOUNT_ID, REGION, FunctionDef, SqsEventSource

log = logging.getLogger("inbetween_local.stack")

# Marks a message that a pump re-sent as an extra delivery (so that the copy is not copied again).
COPY_ATTRIBUTE = "inbetween-local-copy"


class FunctionCrashed(BaseException):  # noqa: N818 - a crash, not an error a handler could catch
    """Raise inside a handler (e.g. from a wrapped function) to simulate the Lambda process dying there:
    a BaseException, so the handler's own ``except Exception`` blocks and the batch processor let it
    through; the local runtime then fails the whole batch (or the tick), as Lambda would."""


def is_s3_event(body: str) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    records = data.get("Records") if isinstance(data, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def load_handler(fn: FunctionDef, stack_name: str, instance: int = 0) -> Callable[[dict, Any], Any]:
    module_name = f"inbetween_local_fn_{stack_name.replace('-', '_')}_{fn.logical_id}"
    if instance:
        module_name += f"_{instance}"  # another container: its own module state (batch processor)
    module: ModuleType | None = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, fn.module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {fn.module_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return getattr(module, fn.handler_name)


class LocalFunction:
    def __init__(self, fn: FunctionDef, stack_name: str, instance: int = 0):
        self.definition = fn
        self.name = f"{stack_name}-{fn.logical_id}"
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"
        self.handler = load_handler(fn, stack_name, instance)
        self.invocations = 0
        self.errors = 0
        self._lock = threading.Lock()

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.definition.memory_mb,
            invoked_function_arn=self.arn,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + self.definition.timeout_s,
            log_group_name=f"/aws/lambda/{self.name}",
        )

    def invoke(self, event: dict) -> Any:
        with self._lock:
            self.invocations += 1
        try:
            return self.handler(event, self.context())
        except (Exception, FunctionCrashed):
            with self._lock:
                self.errors += 1
            raise


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    attributes = dict(message.get("Attributes", {}))
    attributes.setdefault("ApproximateReceiveCount", "1")
    attributes.setdefault("SentTimestamp", str(int(time.time() * 1000)))
    attributes.setdefault("SenderId", ACCOUNT_ID)
    attributes.setdefault("ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000)))
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType", "String"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class SqsPump(threading.Thread):
    def __init__(
        self,
        function: LocalFunction,
        source: SqsEventSource,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        retry_visibility_s: int,
        stopping: threading.Event,
        event_copies: int = 1,
        instance: int = 0,
    ):
        suffix = f"-{instance}" if instance else ""
        super().__init__(name=f"pump-{function.definition.logical_id}{suffix}", daemon=True)
        self.function = function
        self.source = source
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._retry_visibility_s = retry_visibility_s
        self._stopping = stopping
        self._event_copies = event_copies
        self.batches = 0
        self.copies_sent = 0
        self.idle = threading.Event()  # set while nothing was received in the last poll

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._once()
            except Exception:  # noqa: BLE001 - a pump survives anything (moto restarting, a bad message)
                if not self._stopping.is_set():
                    log.warning("%s: pump error\n%s", self.name, traceback.format_exc())
                    self._stopping.wait(1.0)

    def _once(self) -> None:
        resp = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(10, self.source.batch_size),
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            self.idle.set()
            return
        self.idle.clear()
        self.batches += 1
        if self._event_copies > 1:
            self._send_copies(messages)
        event = {"Records": [sqs_record(m, self._arn) for m in messages]}
        try:
            result = self.function.invoke(event)
        except (Exception, FunctionCrashed):  # noqa: BLE001 - as in Lambda: any error fails the whole batch
            log.warning(
                "%s failed; the batch will be retried\n%s", self.function.name, traceback.format_exc()
            )
            self._retry_later([m["ReceiptHandle"] for m in messages])
            return
        failed_ids: set[str] = set()
        if self.source.report_batch_item_failures and isinstance(result, dict):
            failed_ids = {f["itemIdentifier"] for f in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if failed:
            self._retry_later([m["ReceiptHandle"] for m in failed])

    def _send_copies(self, messages: list[dict[str, Any]]) -> None:
        """S3 delivers event notifications at least once: send each one's body again, as new messages."""
        copies = []
        for m in messages:
            first_receive = m.get("Attributes", {}).get("ApproximateReceiveCount", "1") == "1"
            if COPY_ATTRIBUTE in (m.get("MessageAttributes") or {}) or not first_receive:
                continue
            if not is_s3_event(m["Body"]):
                continue
            marker = {COPY_ATTRIBUTE: {"DataType": "String", "StringValue": m["MessageId"]}}
            copies += [{"MessageBody": m["Body"], "MessageAttributes": marker}] * (self._event_copies - 1)
        for start in range(0, len(copies), 10):
            batch = copies[start : start + 10]
            self._sqs.send_message_batch(
                QueueUrl=self._url, Entries=[{"Id": str(i), **c} for i, c in enumerate(batch)]
            )
            self.copies_sent += len(batch)

    def _retry_later(self, receipt_handles: list[str]) -> None:
        self._sqs.change_message_visibility_batch(
            QueueUrl=self._url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": self._retry_visibility_s}
                for i, h in enumerate(receipt_handles)
            ],
        )


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler(threading.Thread):
    """Invokes one function every ``period_s`` (a tick that runs long delays the next, never overlaps)."""

    def __init__(
        self,
        function: LocalFunction,
        rule_name: str,
        period_s: float,
        stopping: threading.Event,
        *,
        instance: int = 0,
    ):
        suffix = f"-{instance}" if instance else ""
        super().__init__(name=f"schedule-{function.definition.logical_id}{suffix}", daemon=True)
        self.function = function
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}"
        self.period_s = period_s
        self._stopping = stopping
        # a second instance fires half a period later: its ticks overlap the first one's
        self._first_wait_s = period_s * (1 + instance / 2)
        self.ticks = 0

    def run(self) -> None:
        wait = self._first_wait_s
        while not self._stopping.wait(wait):
            wait = self.period_s
            try:
                self.function.invoke(scheduled_event(self.rule_arn))
            except (Exception, FunctionCrashed):  # noqa: BLE001
                # like EventInvokeConfig MaximumRetryAttempts 0: the next tick does the same work
                log.warning("%s tick failed\n%s", self.function.name, traceback.format_exc())
            self.ticks += 1
