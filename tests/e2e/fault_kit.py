"""Helpers of the fault suite (test_fault_suite.py): seeded fault switches, crash and slowness wrappers
around pipeline functions, a webhook endpoint that is down and then recovers, and a capture of every log
line the run writes."""

from __future__ import annotations

import io
import json
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inbetween.webhooks import InvalidSignature, verify


class FaultDice:
    """Seeded, thread-safe coin flips, one stream per fault, and counters of what was injected."""

    def __init__(self, seed: int):
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def chance(self, fault: str, probability: float) -> bool:
        with self._lock:
            rng = self._streams.setdefault(fault, random.Random(f"{self._seed}/{fault}"))
            hit = rng.random() < probability
            if hit:
                self.injected[fault] += 1
            return hit

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.injected[what] += n


class Overlap:
    """Counts calls that start while another call with the same key is still running."""

    def __init__(self, dice: FaultDice, name: str):
        self._dice = dice
        self._name = name
        self._active: Counter[Any] = Counter()
        self._lock = threading.Lock()
        self.max_active = 0

    @contextmanager
    def running(self, key: Any = None) -> Iterator[None]:
        with self._lock:
            if self._active[key]:
                self._dice.count(self._name)
            self._active[key] += 1
            self.max_active = max(self.max_active, sum(self._active.values()))
        try:
            yield
        finally:
            with self._lock:
                self._active[key] -= 1


@dataclass
class Attempt:
    at: float
    webhook_id: str
    outcome: str  # "503", "dropped", "delivered", "rejected"


@dataclass
class Delivered:
    webhook_id: str
    job_id: str
    status: str
    event_type: str


@dataclass
class _ReceiverState:
    attempts: list[Attempt] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)
    first_request_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class FlakyWebhookEndpoint:
    """A Standard Webhooks receiver that is down for ``outage_s`` seconds from the first request it sees
    (alternately answering 503 and hanging up without an answer), then verifies and accepts (204)."""

    def __init__(self, outage_s: float):
        self.outage_s = outage_s
        self.secret: str | None = None
        self.state = _ReceiverState()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks"

    @property
    def recovered_at(self) -> float | None:
        first = self.state.first_request_at
        return None if first is None else first + self.outage_s

    def start(self) -> FlakyWebhookEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                webhook_id = headers.get("webhook-id", "")
                now = time.monotonic()
                state = endpoint.state
                with state.lock:
                    if state.first_request_at is None:
                        state.first_request_at = now
                    down = now < state.first_request_at + endpoint.outage_s
                    outage_attempts = sum(1 for a in state.attempts if a.outcome in ("503", "dropped"))
                if down:
                    if outage_attempts % 2:
                        endpoint._record(Attempt(now, webhook_id, "dropped"))
                        self.close_connection = True  # hang up without an answer
                        return
                    endpoint._record(Attempt(now, webhook_id, "503"))
                    self._answer(503)
                    return
                try:
                    if endpoint.secret is None:
                        raise InvalidSignature("no secret yet")
                    verify(endpoint.secret, headers, body)
                    payload = json.loads(body)
                except (InvalidSignature, ValueError):
                    endpoint._record(Attempt(now, webhook_id, "rejected"))
                    self._answer(401)
                    return
                data = payload.get("data", {})
                with state.lock:
                    state.attempts.append(Attempt(now, webhook_id, "delivered"))
                    state.delivered.append(
                        Delivered(webhook_id, data.get("job_id", ""), data.get("status", ""), payload["type"])
                    )
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="flaky-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def _record(self, attempt: Attempt) -> None:
        with self.state.lock:
            self.state.attempts.append(attempt)

    def snapshot(self) -> tuple[list[Attempt], list[Delivered]]:
        with self.state.lock:
            return list(self.state.attempts), list(self.state.delivered)


class _Tee(io.TextIOBase):
    """A text stream that writes to a shared capture as well as (optionally) to the original stream."""

    def __init__(self, capture: LogCapture, original: Any = None):
        self._capture = capture
        self._original = original

    def write(self, text: str) -> int:
        self._capture.append(text)
        if self._original is not None:
            try:
                self._original.write(text)
            except ValueError:  # the original was closed (pytest's capture after the test): keep ours
                self._original = None
        return len(text)

    def flush(self) -> None:
        if self._original is not None:
            try:
                self._original.flush()
            except ValueError:
                self._original = None


class LogCapture:
    """Everything logged or printed while active: every logging StreamHandler of every logger is pointed
    at the capture (pytest's own handlers aside), a handler on the root logger catches the rest, and
    ``sys.stdout``/``sys.stderr`` are teed, from every thread."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def append(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)

    def __enter__(self) -> LogCapture:
        loggers = [logging.getLogger()] + [
            lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
        ]
        for lg in loggers:
            for handler in lg.handlers:
                if not isinstance(handler, logging.StreamHandler) or type(handler).__module__.startswith(
                    "_pytest"
                ):
                    continue
                old = handler.setStream(_Tee(self))
                self._restore.append(lambda h=handler, s=old: h.setStream(s))
        root_handler = logging.StreamHandler(_Tee(self))
        root_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(threadName)s %(message)s"))
        logging.getLogger().addHandler(root_handler)
        self._restore.append(lambda: logging.getLogger().removeHandler(root_handler))
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(self, out), _Tee(self, err)

        def restore_std() -> None:
            sys.stdout, sys.stderr = out, err

        self._restore.append(restore_std)
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._restore:
            self._restore.pop()()


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def scan_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the jobs table (paginated Scan; the test's view, never the pipeline's)."""
    from inbetween.store import _deser

    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        items += [_deser(i) for i in resp.get("Items", [])]
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive and delete everything visible in a queue."""
    out: list[dict[str, Any]] = []
    while True:
        resp = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        messages = resp.get("Messages", [])
        if not messages:
            return out
        out += messages
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def redrive(sqs: Any, dlq_url: str, source_url: str) -> tuple[int, str]:
    """The README's redrive (start-message-move-task back to the source queue); where the SQS in use does
    not implement it (moto), the same move by receive/send/delete. Returns (messages moved, how)."""
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    visible = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    if visible == 0:
        return 0, "nothing to move"
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn)
        return visible, "start-message-move-task"
    except Exception as exc:  # noqa: BLE001 - moto: NotImplementedError surfaced as a client error
        reason = type(exc).__name__
    moved = 0
    for message in drain_queue(sqs, dlq_url):
        attributes = message.get("MessageAttributes") or {}
        sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"], MessageAttributes=attributes)
        moved += 1
    return moved, f"receive/send/delete (start-message-move-task: {reason})"
