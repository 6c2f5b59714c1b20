"""Run the template's functions in-process the way Lambda does: SQS event source pumps and a schedule.

* The Lambda simulation every harness shares (the local stack, the integration tests, the bench):
  ``load_handler`` loads a function's handler module by file path (the template's CodeUri and Handler)
  under a unique module name (every handler file is ``app.py``), with its layers' folders on
  ``sys.path`` (``add_layers_to_path``: media/ for the stitch function); ``LambdaContext.for_function`` is a
  context whose remaining time counts down from the template's ``Timeout``; ``run_sqs_batch`` delivers
  received messages as Lambda's SQS event source does (``sqs_event``; delete what succeeded, honour
  ``batchItemFailures``, an exception or a ``FunctionCrashed`` fails the whole batch).
* ``SqsPump``: long-polls the source queue (1 s) and hands each batch to ``run_sqs_batch``. Failed
  messages are made visible again after ``retry_visibility_s`` rather than the queue's long visibility
  timeout; moto itself moves a message to the dead-letter queue once its receive count passes
  ``maxReceiveCount``.
* ``Scheduler``: invokes a function every ``period_s`` with an EventBridge "Scheduled Event".
* Fault injection (off by default): a pump may deliver every S3 event notification ``event_copies`` times;
  several pumps/schedulers may run one function at once (each with its own copy of the handler module,
  as separate Lambda containers have); a ``FunctionCrashed`` raised inside a handler is treated like the
  Lambda process dying (the batch fails and comes back; a schedule's tick is lost).
* ``LocalFunction.in_flight`` (an ``InFlight``, shared by a function's containers) counts invocations
  that overlap: any two at once, and two on the same job id (a completion message redelivered while its
  first delivery still works).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from .template import ACCOUNT_ID, REGION, FunctionDef, SqsEventSource

log = logging.getLogger("inbetween_local.stack")

# Marks a message that a pump re-sent as an extra delivery (so that the copy is not copied again).
COPY_ATTRIBUTE = "inbetween-local-copy"


class FunctionCrashed(BaseException):  # a crash, not an error a handler could catch
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


class InFlight:
    """The invocations of one function running at once, across all its containers (the pumps and
    schedules that run it side by side): how many at most, how many started while another one was
    running, and how many started while another one held one of their keys (a job id: a completion
    message redelivered while its first delivery is still working)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._keys: Counter[str] = Counter()
        self.max_running = 0
        self.overlapping = 0
        self.overlapping_keys = 0

    @contextmanager
    def invocation(self, keys: Collection[str] = ()) -> Iterator[None]:
        keys = set(keys)
        with self._lock:
            if self._running:
                self.overlapping += 1
            if any(self._keys[k] for k in keys):
                self.overlapping_keys += 1
            self._running += 1
            self._keys.update(keys)
            self.max_running = max(self.max_running, self._running)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._keys.subtract(keys)
                for k in keys:
                    if self._keys[k] <= 0:
                        del self._keys[k]


# function name -> its InFlight, shared by its containers; a function's first container (instance 0)
# starts it afresh
_IN_FLIGHT: dict[str, InFlight] = {}


def job_ids(event: dict[str, Any]) -> set[str]:
    """The job ids an invocation works on: those named by its SQS records' bodies (our own completion
    messages carry one; S3 notifications and the other hand-offs do not)."""
    ids: set[str] = set()
    for record in event.get("Records") or ():
        try:
            body = json.loads(record.get("body") or "")
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(body, dict) and isinstance(body.get("job_id"), str):
            ids.add(body["job_id"])
    return ids


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

    @classmethod
    def for_function(cls, fn: FunctionDef, function_name: str) -> LambdaContext:
        """A fresh invocation's context: the template's memory, and time left counting down from its
        ``Timeout``."""
        return cls(
            function_name=function_name,
            memory_limit_in_mb=fn.memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + fn.timeout_s,
            log_group_name=f"/aws/lambda/{function_name}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def add_layers_to_path(fn: FunctionDef) -> None:
    """What Lambda's /opt/python is for the function: its layers' source folders on ``sys.path`` (after
    what is there, as /opt/python comes after the function's own code). The shared layer (shared/) is
    there already through the editable install; the media layer (media/, PyAV's inbetween_media) is
    added here for the function that has it."""
    for path in fn.layer_paths:
        if str(path) not in sys.path:
            sys.path.append(str(path))


def load_handler(fn: FunctionDef, stack_name: str, instance: int = 0) -> Callable[[dict, Any], Any]:
    add_layers_to_path(fn)
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
    """One container of a template function. ``deps``: what its handler's ``get_deps`` answers during its
    invocations (the stack's own, so that several stacks or a test's deps can share the process)."""

    def __init__(self, fn: FunctionDef, stack_name: str, instance: int = 0, *, deps: Any = None):
        self.deps = deps
        self.definition = fn
        self.name = f"{stack_name}-{fn.logical_id}"
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"
        self.handler = load_handler(fn, stack_name, instance)
        self.invocations = 0
        self.errors = 0
        self._lock = threading.Lock()
        if instance == 0 or self.name not in _IN_FLIGHT:
            _IN_FLIGHT[self.name] = InFlight()
        self.in_flight = _IN_FLIGHT[self.name]

    def _own_deps(self) -> contextlib.AbstractContextManager[None]:
        if self.deps is None:
            return contextlib.nullcontext()
        from inbetween.wiring import invocation_deps

        return invocation_deps(self.deps)

    def context(self) -> LambdaContext:
        return LambdaContext.for_function(self.definition, self.name)

    def invoke(self, event: dict) -> Any:
        with self._lock:
            self.invocations += 1
        try:
            with self.in_flight.invocation(job_ids(event)), self._own_deps():
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


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Lambda's SQS event for a batch of ReceiveMessage results."""
    return {"Records": [sqs_record(m, queue_arn) for m in messages]}


@dataclass
class SqsBatch:
    """One SQS batch delivered to a function, as Lambda's event source mapping handles it."""

    response: Any  # what the function returned (None when it raised)
    succeeded: list[dict[str, Any]]  # deleted from the queue
    failed: list[dict[str, Any]]  # left in the queue: they come back
    error: BaseException | None = None  # what failed the whole batch (an exception, a FunctionCrashed)

    @property
    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        """The batch's failures in the shape of a partial batch response."""
        return {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in self.failed]}


def _reported_failures(response: Any, message_ids: set[str]) -> set[str] | None:
    """The message ids a partial batch response names; None when the response is malformed (Lambda
    then fails the whole batch)."""
    if not isinstance(response, dict):
        return set()  # no partial batch response (null, or not an object): the batch succeeded
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item, str) or item not in message_ids:
            return None
        ids.add(item)
    return ids


def run_sqs_batch(
    invoke: Callable[[dict[str, Any]], Any],
    messages: list[dict[str, Any]],
    *,
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    report_batch_item_failures: bool = True,
    retry_visibility_s: int | None = None,
) -> SqsBatch:
    """Deliver received ``messages`` to ``invoke`` (event -> response) as Lambda's SQS event source does:
    build the event, invoke, delete what succeeded, leave the rest to come back. With
    ``report_batch_item_failures`` (FunctionResponseTypes: ReportBatchItemFailures) the response's
    ``batchItemFailures`` fail only those messages (a malformed list fails them all); an exception or a
    ``FunctionCrashed`` fails the whole batch. ``retry_visibility_s``: failed messages become visible
    again after this rather than after the rest of their visibility timeout."""
    try:
        response = invoke(sqs_event(messages, queue_arn))
    except (Exception, FunctionCrashed) as exc:  # noqa: BLE001 - as Lambda: any error fails the whole batch
        batch = SqsBatch(response=None, succeeded=[], failed=list(messages), error=exc)
    else:
        failed_ids: set[str] | None = set()
        if report_batch_item_failures:
            failed_ids = _reported_failures(response, {m["MessageId"] for m in messages})
        if failed_ids is None:
            batch = SqsBatch(response=response, succeeded=[], failed=list(messages))
        else:
            batch = SqsBatch(
                response=response,
                succeeded=[m for m in messages if m["MessageId"] not in failed_ids],
                failed=[m for m in messages if m["MessageId"] in failed_ids],
            )
    for start in range(0, len(batch.succeeded), 10):
        chunk = batch.succeeded[start : start + 10]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
    if batch.failed and retry_visibility_s is not None:
        visibility = retry_visibility_s
        for start in range(0, len(batch.failed), 10):
            chunk = batch.failed[start : start + 10]
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": visibility}
                    for i, m in enumerate(chunk)
                ],
            )
    return batch


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
        batch = run_sqs_batch(
            self.function.invoke,
            messages,
            sqs=self._sqs,
            queue_url=self._url,
            queue_arn=self._arn,
            report_batch_item_failures=self.source.report_batch_item_failures,
            retry_visibility_s=self._retry_visibility_s,
        )
        if batch.error is not None:
            log.warning(
                "%s failed; the batch will be retried\n%s",
                self.function.name,
                "".join(traceback.format_exception(batch.error)),
            )

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
