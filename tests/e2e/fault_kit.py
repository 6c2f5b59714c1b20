"""The fault suite's scenario and helpers, shared by its two runs: push off (test_fault_suite.py) and push
on (test_a_push_fault_suite.py).

``run_fault_suite`` drops the planned jobs into a local stack with faults on every boundary, waits for the
pipeline to settle, prints a table of figures and returns them (``FaultSuiteRun``);
``assert_nothing_lost`` holds the assertions both runs share: every job in the final state its faults call
for, one provider task per submitted job, every succeeded task a verified video, one SNS message and one
webhook event per job, nothing left in a dead-letter queue, every fault really injected, no secret in
the logs. Helpers: the crash and slowness wrappers around the functions' adapters
(``inbetween_local.faults``, put in place by ``StackOptions.wrap_deps``: nothing of ``inbetween`` is
patched), the overlapping invocations the local runtime counted, a webhook endpoint that is down and then
recovers, a capture of every log line the run writes, and (push on) a tally of the provider events the
function URL received and what it answered to each."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from inbetween.deps import Deps
from inbetween.domain.catalog import DEFAULT_MODEL
from inbetween.domain.models import JobStatus
from inbetween.domain.mp4_check import Mp4Inspector
from inbetween.usecases.push import MalformedEvent, parse_event
from inbetween.webhooks import InvalidSignature, verify
from inbetween_local.emulator import EmulatorConfig, FaultOutcome, FaultRule, Faults, PushConfig
from inbetween_local.faults import CrashingStore, FaultDice, SlowBlobs
from inbetween_local.stack import LocalStack
from inbetween_local.stack.push import Exchange

from tests.e2e.conftest import SAMPLES, probe_mp4


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
            def do_POST(self) -> None:
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

            def log_message(self, format: str, *args: Any) -> None:
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
    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        items += [{k: deserializer.deserialize(v) for k, v in i.items()} for i in resp.get("Items", [])]
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


# ---------------------------------------------------------------------------------------------- scenario
SEED = int(os.environ.get("INBETWEEN_FAULT_SEED", "20260421"))
CONCURRENCY = 8  # provider slots per model, for the pipeline and the emulator alike (published quota: 2)
WEBHOOK_OUTAGE_S = 30.0
WEBHOOK_RETRY_DELAYS = "0,2,4,8,15,30,60,120"
COMPLETION_VISIBILITY_S = 2
SETTLE_BUDGET_S = 600.0

# fault rates
CREATE_5XX = 0.05
CREATE_THROTTLED = 0.05
QUERY_5XX = 0.10
QUERY_LATENCY_S = 0.2
DOWNLOAD_DROP = 0.20
RECORD_CRASH = 0.08  # dies after the provider accepted the task, before the table recorded it
NOTIFY_CRASH = 0.12  # dies after the video is stored, before the notification
SLOW_COMPLETION = 0.15  # sleeps SLOW_COMPLETION_S after storing: longer than the visibility timeout
SLOW_COMPLETION_S = 3.5
# what each job is (by a seeded draw): cumulative shares
PLAN = (
    (0.07, "fail with code"),
    (0.11, "fail without code"),
    (0.14, "provider rejects"),
    (0.17, "invalid drop"),
    (1.00, "ok"),
)
EXPECTED = {
    "ok": JobStatus.STORED,
    "fail with code": JobStatus.FAILED,
    "fail without code": JobStatus.FAILED,
    "provider rejects": JobStatus.REJECTED,
    "invalid drop": JobStatus.REJECTED,
}
# both model families, mixed: the two kf2v models and wan2.7 (another request shape, endpoint, quota and
# a provider-side queue); jobs with no job.json get the deployment's default model (wan2.7-i2v, 1080P)
MODELS = (("wan2.2-kf2v-flash", "480P"), ("wanx2.1-kf2v-plus", "720P"), ("wan2.7-i2v", "720P"))
WAN27_DURATION_S = 2
FPS = 30
# the faults both runs must really have injected (push on adds its own)
SHARED_FAULTS = (
    "provider create 5xx",
    "provider create 429 Throttling",
    "S3 event extra deliveries",
    "webhook attempts refused during outage",
    "crash: task created, not recorded",
    "crash: video stored, not notified",
    "slow completion (> visibility timeout)",
    "completion redelivered while running",
    "poller ticks overlapping",
)


def job_count(variable: str, default: int) -> int:
    return int(os.environ.get(variable) or default)


@dataclass(frozen=True)
class PlannedJob:
    name: str
    kind: str
    model: str
    files: dict[str, bytes]
    duration_s: int = 5

    @property
    def expected(self) -> JobStatus:
        return EXPECTED[self.kind]


def plan_jobs(rng: random.Random, count: int) -> list[PlannedJob]:
    first, last = (SAMPLES / "first.png").read_bytes(), (SAMPLES / "last.png").read_bytes()
    jobs = []
    for i in range(count):
        draw = rng.random()
        kind = next(k for share, k in PLAN if draw < share)
        model, resolution = MODELS[rng.randrange(len(MODELS))]
        prompt = f"fault suite job {i}: the ball rolls"
        spec: dict | None = {"model": model, "resolution": resolution, "prompt": prompt}
        duration = 5
        if model == "wan2.7-i2v":
            spec["duration"] = duration = WAN27_DURATION_S
        if kind == "fail with code":
            spec["prompt"] += " [fail:InternalError.Algo]"
        elif kind == "fail without code":
            spec["prompt"] += " [fail]"
        elif kind == "provider rejects":
            spec["prompt"] += " [reject:DataInspectionFailed]"
        elif kind == "invalid drop":
            spec["resolution"] = "4K"
        elif model == DEFAULT_MODEL and rng.random() < 0.5:
            spec = None  # just the two frames: the deployment's defaults (wan2.7-i2v, 1080P, 5 s)
            duration = 5
        files = {"first.png": first, "last.png": last}
        if spec is not None:
            files["job.json"] = json.dumps(spec).encode()
        jobs.append(PlannedJob(f"fault-{i:03d}", kind, model, files, duration))
    return jobs


def stop_shared_e2e_stack(request) -> None:
    """A process runs one local stack at a time (the environment is process-global): if this worker
    still has the other e2e tests' package stack up, stop it. Both runs are collected after every test
    that uses that stack (push off: the folder's last file; push on: its first, before any of them
    started it), so none of those needs it afterwards on this worker."""
    defs = request._fixturemanager.getfixturedefs("_package_stack", request.node) or ()
    for fixturedef in defs:
        if fixturedef.cached_result is not None and fixturedef.cached_result[0] is not None:
            fixturedef.cached_result[0].stop()


def pipeline_faults(dice: FaultDice) -> Callable[[Deps], Deps]:
    """The crash and slowness wrappers around the functions' own adapters (``StackOptions.wrap_deps``):
    a job store that dies after the provider accepted a task and before its record is written, and after
    a video is stored and before its notification; a blob store whose video uploads sometimes take longer
    than the completion message's visibility timeout."""

    def wrap(deps: Deps) -> Deps:
        return dataclasses.replace(
            deps,
            store=CrashingStore(
                deps.store, dice, task_not_recorded=RECORD_CRASH, stored_not_notified=NOTIFY_CRASH
            ),
            blobs=SlowBlobs(deps.blobs, dice, probability=SLOW_COMPLETION, seconds=SLOW_COMPLETION_S),
        )

    return wrap


def count_overlaps(stack: LocalStack, dice: FaultDice) -> int:
    """The invocations that overlapped, as the local runtime counted them: poller ticks running at once,
    and completions of a job started while another completion of the same job was still running (its
    message redelivered). Returns the most poller invocations that ran at once."""
    poller = stack.functions["PollerFunction"].in_flight
    completion = stack.functions["CompletionFunction"].in_flight
    dice.count("poller ticks overlapping", poller.overlapping)
    dice.count("completion redelivered while running", completion.overlapping_keys)
    return poller.max_running


class PushTally:
    """What the provider events function did with each task-finished event it received: the outcome
    in its answer, per task id, read from the local function URL's exchanges (every request that
    carried a task-finished event, so every event of ours that arrived is here, duplicates and late
    ones included). An answer other than 200 is tallied as what it was: "raised" for Lambda's 502 (an
    error or a crash in the function), "refused" for any other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: dict[str, list[str]] = {}

    def observe(self, exchange: Exchange) -> None:
        try:
            event = parse_event(exchange.body)
        except MalformedEvent:
            event = None
        if event is None:
            return  # not a task-finished event: none of the provider's
        if exchange.status == 502:
            outcome = "raised: HTTP 502"
        else:
            try:
                answer = json.loads(exchange.answer).get("outcome", "")
            except (ValueError, AttributeError):
                answer = exchange.answer.decode("utf-8", "replace")
            outcome = answer if exchange.status == 200 else f"refused: HTTP {exchange.status} {answer}"
        with self._lock:
            self.outcomes.setdefault(event.task_id, []).append(outcome)

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return {task_id: list(seen) for task_id, seen in self.outcomes.items()}


def emulator_faults() -> Faults:
    return Faults(
        max_concurrent={model: CONCURRENCY for model, _ in MODELS},
        create_error_probability=CREATE_5XX,
        create_error_status=500,
        query_error_probability=QUERY_5XX,
        query_error_status=500,
        query_latency_s=QUERY_LATENCY_S,
        download_drop_probability=DOWNLOAD_DROP,
        download_drop_fraction=0.5,
        rules=[
            FaultRule(
                outcome=FaultOutcome.REJECT,
                code="Throttling.RateQuota",
                http_status=429,
                probability=CREATE_THROTTLED,
            )
        ],
        seed=SEED,
    )


def upload(stack: LocalStack, jobs: list[PlannedJob]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s3 = stack.client("s3")

    def put(job: PlannedJob) -> None:
        for name, data in job.files.items():
            s3.put_object(Bucket=stack.inbox_bucket, Key=f"inbox/{job.name}/{name}", Body=data)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, jobs))


def job_items(stack: LocalStack) -> dict[str, dict]:
    """The latest run of each job name, from the table."""
    latest: dict[str, dict] = {}
    for item in scan_items(stack.client("dynamodb"), stack.table_name):
        if str(item.get("pk", "")).startswith("job#"):
            name = item["job_name"]
            if name not in latest or item["created_at"] > latest[name]["created_at"]:
                latest[name] = item
    return latest


def settled(stack: LocalStack, jobs: list[PlannedJob], endpoint: FlakyWebhookEndpoint) -> bool:
    _, delivered = endpoint.snapshot()
    # Cheap first: settled needs one delivered webhook per job (each job's latest run has its own job
    # id), so until the endpoint has seen that many the answer is no, without scanning the whole table
    # through the moto server (a scan every 2 s is CPU the pipeline under test would otherwise have).
    if len({d.job_id for d in delivered}) < len(jobs):
        return False
    items = job_items(stack)
    if len(items) < len(jobs):
        return False
    if any(not JobStatus(i["status"]).is_final or i.get("notified_at") is None for i in items.values()):
        return False
    return {d.job_id for d in delivered} >= {i["job_id"] for i in items.values()}


@dataclass
class FaultSuiteRun:
    """Everything a run read from the stack once it settled, and the figures derived from it."""

    title: str
    jobs: list[PlannedJob]
    finished: bool
    items: dict[str, dict]  # job name -> the latest job item
    all_items: list[dict]
    tasks: dict[str, Any]  # provider task id -> the emulator's TaskInfo
    task_prompts: dict[str, str]  # provider task id -> the prompt it was created with
    stats: Any  # the emulator's EmulatorStats
    notifications: list[dict]
    attempts: list[Attempt]
    delivered: list[Delivered]
    videos: dict
    injected: Counter[str]
    redriven: dict[str, tuple[int, str]]
    dlq_left: dict[str, int]
    log_text: str
    secrets: tuple[str, ...]
    max_pollers: int
    elapsed_s: float
    push_stats: Any = None  # the emulator sender's PushStats (push on)
    push_outcomes: dict[str, list[str]] = field(default_factory=dict)  # task id -> outcomes (push on)
    function_url_requests: int = 0
    rows: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, JobStatus]:
        return {name: JobStatus(i["status"]) for name, i in self.items.items()}

    @property
    def submitted(self) -> dict[str, str]:
        """Provider task id -> job name, for every job with a recorded task."""
        return {i["task_id"]: name for name, i in self.items.items() if i.get("task_id")}

    @property
    def succeeded(self) -> set[str]:
        return {t for t, info in self.tasks.items() if info.status.value == "SUCCEEDED"}

    @property
    def sns_per_job(self) -> Counter[str]:
        return Counter(json.loads(m["Message"])["data"]["job_id"] for m in self.notifications)

    @property
    def webhook_ids_per_job(self) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for d in self.delivered:
            ids.setdefault(d.job_id, set()).add(d.webhook_id)
        return ids

    # push on: who found out that each submitted job's task had ended
    @property
    def finished_by_push(self) -> set[str]:
        """Task ids whose event made the query that moved the job on."""
        return {t for t, seen in self.push_outcomes.items() if "finished" in seen and t in self.submitted}

    @property
    def unheard(self) -> set[str]:
        """Submitted jobs' task ids whose event never reached the endpoint (dropped on the way)."""
        return set(self.submitted) - set(self.push_outcomes)

    @property
    def push_outcome_counts(self) -> Counter[str]:
        return Counter(o for seen in self.push_outcomes.values() for o in seen)


def run_fault_suite(
    request,
    monkeypatch,
    tmp_path: Path,
    *,
    title: str,
    job_count: int,
    stack_name: str,
    push_faults: PushConfig | None = None,
) -> FaultSuiteRun:
    """Drop ``job_count`` planned jobs into a local stack with faults on every boundary (and, with
    ``push_faults``, provider push on with those delivery faults), wait until every job is final,
    notified and its webhook delivered, redrive the dead-letter queues, and read back everything."""
    stop_shared_e2e_stack(request)
    rng = random.Random(SEED)
    jobs = plan_jobs(rng, job_count)
    dice = FaultDice(SEED)
    tally = PushTally() if push_faults is not None else None
    endpoint = FlakyWebhookEndpoint(WEBHOOK_OUTAGE_S).start()
    started = time.monotonic()
    stack = LocalStack(
        stack_name=stack_name,
        emulator_config=EmulatorConfig(
            pending_s=0.5, running_s=(1.0, 3.0), seed=SEED, faults=emulator_faults()
        ),
        poller_period_s=1.0,
        log_level="INFO",
        sqs_concurrency=3,
        s3_event_copies=3,
        concurrent_schedules=2,
        timings={
            "SETTLE_SECONDS": "1",
            "FIRST_POLL_DELAY_SECONDS": "1",
            "POLL_INTERVAL_SECONDS": "1",
            "POLL_BUDGET_SECONDS": "3",
            "NOTIFY_GRACE_SECONDS": "15",
            "COMPLETION_GRACE_SECONDS": "30",
            # long enough to outlast a create call on a loaded 2-core machine (90 s in the cloud): a create
            # that reaches the provider after its lease ran out falls outside the reconciliation window
            "SUBMIT_LEASE_SECONDS": "6",
        },
        environment={
            "PROVIDER_CONCURRENCY": str(CONCURRENCY),
            "WEBHOOK_URL": endpoint.url,
            "WEBHOOK_RETRY_DELAYS_SECONDS": WEBHOOK_RETRY_DELAYS,
        },
        push=push_faults is not None,
        push_faults=push_faults,
        wrap_deps=pipeline_faults(dice),
    )
    capture = LogCapture()
    push_stats, function_url_requests, push_secret = None, 0, None
    try:
        with capture:
            stack.start()
            for name, value in stack.environment.items():
                monkeypatch.setenv(name, value)
            endpoint.secret = stack.webhook_secret
            if tally is not None and stack.push is not None:
                stack.push.server.observe(tally.observe)
            sqs = stack.client("sqs")
            queues = stack.queue_urls
            sqs.set_queue_attributes(
                QueueUrl=queues["CompletionQueue"],
                Attributes={"VisibilityTimeout": str(COMPLETION_VISIBILITY_S)},
            )
            sns_queue = stack.subscribe_queue("fault-suite-notifications")

            # Given the job folders dropped at once
            upload(stack, jobs)
            # When the pipeline has worked through them, faults and all
            finished = wait_until(
                lambda: settled(stack, jobs, endpoint), timeout_s=SETTLE_BUDGET_S, poll_s=2.0
            )
            # Then whatever reached a dead-letter queue is brought home by the README's redrive
            redriven = {}
            for dlq, source in (
                ("IntakeDeadLetterQueue", "IntakeQueue"),
                ("CompletionDeadLetterQueue", "CompletionQueue"),
            ):
                redriven[dlq] = redrive(sqs, queues[dlq], queues[source])
            if any(n for n, _ in redriven.values()):
                finished = wait_until(lambda: settled(stack, jobs, endpoint), timeout_s=120, poll_s=2.0)
            # let the pumps finish what they hold (redelivered completions) and the provider's events
            # still on their way (delayed, held back) arrive, then read everything
            time.sleep(COMPLETION_VISIBILITY_S + 3)
            if stack.push is not None:
                wait_until(stack.push.sender.idle, timeout_s=60, poll_s=0.5)
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            dlq_left = {
                dlq: len(drain_queue(sqs, queues[dlq]))
                for dlq in ("IntakeDeadLetterQueue", "CompletionDeadLetterQueue")
            }
            notifications = []
            while batch := stack.notifications(sns_queue):
                notifications += batch
            items = job_items(stack)
            all_items = scan_items(stack.client("dynamodb"), stack.table_name)
            emulator = stack.emulator
            tasks = emulator.tasks
            task_prompts = {t: getattr(emulator.task(t), "orig_prompt", "") or "" for t in tasks}
            stats = emulator.stats
            attempts, delivered = endpoint.snapshot()
            copies_sent = sum(p.copies_sent for p in stack.pumps)
            videos = verify_videos(stack, items, tmp_path, {j.name: FPS * j.duration_s for j in jobs})
            secrets = (stack.api_key, stack.webhook_secret)
            max_pollers = count_overlaps(stack, dice)
            if stack.push is not None:
                push_stats = dataclasses.replace(stack.push.sender.stats)
                function_url_requests = stack.push.server.requests
                push_secret = stack.push.secret
    finally:
        stack.stop()
        endpoint.stop()

    injected = dice.injected
    injected["provider create 5xx"] = stats.creates_rejected.get("InternalError", 0)
    injected["provider create 429 Throttling"] = stats.creates_rejected.get("Throttling.RateQuota", 0)
    injected["S3 event extra deliveries"] = copies_sent
    injected["webhook attempts refused during outage"] = len(
        [a for a in attempts if a.outcome != "delivered"]
    )
    run = FaultSuiteRun(
        title=title,
        jobs=jobs,
        finished=finished,
        items=items,
        all_items=all_items,
        tasks=tasks,
        task_prompts=task_prompts,
        stats=stats,
        notifications=notifications,
        attempts=attempts,
        delivered=delivered,
        videos=videos,
        injected=injected,
        redriven=redriven,
        dlq_left=dlq_left,
        log_text=capture.text,
        secrets=(*secrets, *((push_secret,) if push_secret else ())),
        max_pollers=max_pollers,
        elapsed_s=elapsed,
        push_stats=push_stats,
        push_outcomes=tally.snapshot() if tally is not None else {},
        function_url_requests=function_url_requests,
    )
    print_figures(run, tmp_path)
    return run


def figures(run: FaultSuiteRun) -> list[tuple[str, Any]]:
    final = run.final
    submitted, succeeded = run.submitted, run.succeeded
    sns_per_job = run.sns_per_job
    outage_ids = {a.webhook_id for a in run.attempts if a.outcome in ("503", "dropped")}
    delivered_ids = {d.webhook_id for d in run.delivered}
    log_text = run.log_text
    rows: list[tuple[str, Any]] = [
        ("seed", SEED),
        ("jobs dropped", len(run.jobs)),
        ("jobs in a final state", sum(1 for s in final.values() if s.is_final)),
        ("  by state", dict(sorted(Counter(s.value for s in final.values()).items()))),
        ("jobs submitted (task recorded)", len(submitted)),
        ("provider tasks created", len(run.tasks)),
        ("tasks succeeded", len(succeeded)),
        ("videos stored, verified (MP4 check + bytes + sha256)", run.videos["verified"]),
        ("videos decoded (h264, 30 fps x duration)", run.videos["decoded"]),
        ("  jobs by model", dict(sorted(Counter(j.model for j in run.jobs).items()))),
        ("SNS messages", len(run.notifications)),
        ("jobs with exactly one SNS message", sum(1 for n in sns_per_job.values() if n == 1)),
        ("webhook events delivered (distinct ids)", len(delivered_ids)),
        ("webhook deliveries received (incl. duplicates)", len(run.delivered)),
        (
            "webhook ids seen during the outage, delivered later",
            f"{len(outage_ids & delivered_ids)}/{len(outage_ids)}",
        ),
        (
            "orphan tasks adopted / resubmitted after reconciliation",
            f"{log_text.count('orphan task adopted')} / "
            f"{log_text.count('no task was created; job waits for a new submit')}",
        ),
        ("provider task queries / list calls", f"{run.stats.queries} / {run.stats.list_calls}"),
        (
            "  queries per submitted job",
            round(run.stats.queries / len(submitted), 2) if submitted else "-",
        ),
        ("dead-letter redrive", {k: f"{n} ({how})" for k, (n, how) in run.redriven.items()}),
        ("left in dead-letter queues", run.dlq_left),
        ("max poller invocations at once", run.max_pollers),
        ("wall time (s)", round(run.elapsed_s)),
    ]
    if run.push_stats is not None:
        sender = run.push_stats
        by_push, unheard = run.finished_by_push, run.unheard
        rows += [
            ("--- provider push ---", ""),
            ("tasks ended / events sent for them", f"{len(run.tasks)} / {sender.finished}"),
            (
                "events dropped / duplicated / reordered (held back)",
                f"{sender.dropped} / {sender.duplicated} / {sender.reordered}",
            ),
            ("deliveries answered / given up", f"{sender.sent} / {sender.failed}"),
            ("  answers by status", dict(sorted(sender.statuses.items()))),
            ("function URL requests", run.function_url_requests),
            ("event outcomes", dict(run.push_outcome_counts.most_common())),
            ("jobs finished by their event (one query)", len(by_push)),
            ("jobs finished by the poller", len(submitted) - len(by_push)),
            ("  of which no event ever arrived (dropped)", len(unheard)),
            (
                "  dropped-event jobs by final state",
                dict(Counter(run.final[submitted[t]].value for t in unheard)),
            ),
        ]
    return rows


def print_figures(run: FaultSuiteRun, tmp_path: Path) -> None:
    run.rows = figures(run)
    width = max(len(k) for k, _ in run.rows)
    print(f"\n=== inbetween fault suite: {run.title} ===")
    for key, value in run.rows:
        print(f"{key:<{width}}  {value}")
    print("--- faults injected ---")
    for key, value in sorted(run.injected.items()):
        print(f"{key:<{width}}  {value}")
    log_file = Path(tmp_path) / "fault-suite.log"
    log_file.write_text(run.log_text)
    print(f"complete log output: {log_file}")
    if not run.finished:
        print("--- not settled: unfinished jobs, slots and the submit lease ---")
        now = time.time()
        for i in run.all_items:
            pk = str(i.get("pk", ""))
            unfinished = pk.startswith("job#") and not JobStatus(i["status"]).is_final
            if unfinished or pk.startswith(("slot#", "lock#")):
                keep = ("pk", "status", "due_kind", "due_at", "in_flight", "holder", "until", "task_id")
                print(
                    {k: i.get(k) for k in keep if k in i},
                    f"updated {now - float(i.get('updated_at', now)):.0f} s ago",
                )


def assert_nothing_lost(run: FaultSuiteRun) -> None:
    """The assertions both runs share: no job lost, no duplicate task, one notification per final
    state, every fault really injected, no secret in the logs."""
    items, final = run.items, run.final
    by_name = {j.name: j for j in run.jobs}
    assert run.finished, f"the pipeline did not settle: {Counter(i['status'] for i in items.values())}"
    # Every job dropped ends in a final state, the one its faults call for
    assert len(items) == len(run.jobs)
    wrong = {
        n: (s.value, by_name[n].expected.value) for n, s in final.items() if s is not by_name[n].expected
    }
    assert not wrong, wrong
    for name, item in items.items():
        if by_name[name].kind == "fail without code":
            assert item["error"]["code"] == "TaskFailed", item["error"]
        if by_name[name].kind == "invalid drop":
            assert not item.get("task_id")  # rejected by us: no provider call
    # Exactly one provider task per submitted job: no double charge, every crash window reconciled
    submitted, tasks, stats = run.submitted, run.tasks, run.stats
    assert set(tasks) == set(submitted), task_trouble(run, set(tasks) ^ set(submitted))
    assert stats.creates_accepted == len(tasks) == len(submitted)
    # Both model families ran: each model has stored videos
    stored_models = Counter(by_name[n].model for n, s in final.items() if s is JobStatus.STORED)
    assert set(stored_models) == {model for model, _ in MODELS}, stored_models
    # Every succeeded task is a stored, verified video, and nothing else is
    stored = {n for n, s in final.items() if s is JobStatus.STORED}
    assert {submitted[t] for t in run.succeeded} == stored
    assert run.videos["verified"] == len(stored) and run.videos["problems"] == []
    # Exactly one SNS message per final state
    job_ids = {i["job_id"] for i in items.values()}
    sns_per_job = run.sns_per_job
    assert set(sns_per_job) == job_ids
    assert set(sns_per_job.values()) == {1}
    # Every webhook event delivered after the endpoint recovered, with one stable id per event
    ids_per_job = run.webhook_ids_per_job
    assert set(ids_per_job) == job_ids
    assert all(len(ids) == 1 for ids in ids_per_job.values())
    outage_ids = {a.webhook_id for a in run.attempts if a.outcome in ("503", "dropped")}
    assert outage_ids and outage_ids <= {d.webhook_id for d in run.delivered}
    hooks = [i for i in run.all_items if str(i.get("pk", "")).startswith("hook#")]
    assert all(h["state"] == "delivered" for h in hooks), Counter(h["state"] for h in hooks)
    # Nothing left in a dead-letter queue
    assert run.dlq_left == {"IntakeDeadLetterQueue": 0, "CompletionDeadLetterQueue": 0}
    # Every fault was really injected
    for fault in SHARED_FAULTS:
        assert run.injected[fault] > 0, fault
    assert stats.creates_rejected.get("DataInspectionFailed", 0) > 0
    assert run.log_text.count("orphan task adopted") > 0
    # The run's complete log output holds no secret (API key, webhook secret, push secret)
    log_text = run.log_text
    assert "task created" in log_text and "job notified" in log_text  # the capture saw the functions
    for secret in run.secrets:
        for form in {secret, secret.removeprefix("whsec_")}:
            assert form not in log_text


def task_trouble(run: FaultSuiteRun, task_ids: set[str]) -> str:
    """What the run knows of tasks that broke "one task per submitted job": whose they are (by the
    prompt the emulator saw) and the log lines of that job."""
    lines = [f"seed {SEED}, {len(run.jobs)} jobs ({run.title}): tasks {sorted(task_ids)}"]
    for task_id in sorted(task_ids):
        prompt = run.task_prompts.get(task_id, "")
        name = None
        if prompt.startswith("fault suite job "):
            name = f"fault-{int(prompt.removeprefix('fault suite job ').split(':', 1)[0]):03d}"
        item = run.items.get(name or "", {})
        info = run.tasks.get(task_id)
        lines.append(
            f"task {task_id}: created at {getattr(info, 'created_at', None)}, prompt {prompt!r}, "
            f"job {name} {item.get('job_id')} status {item.get('status')} recorded task "
            f"{item.get('task_id')} (created at {getattr(run.tasks.get(item.get('task_id')), 'created_at', None)}), "
            f"submit started at {item.get('submit_started_at')}"
        )
        needles = [n for n in (task_id, item.get("job_id"), name) if n]
        lines += [line for line in run.log_text.splitlines() if any(n in line for n in needles)][:60]
    return "\n".join(lines)


def verify_videos(
    stack: LocalStack, items: dict[str, dict], tmp_path: Path, expected_frames: dict[str, int]
) -> dict:
    """Every stored video: object size = recorded bytes = metadata bytes, sha256 as recorded, an MP4 with
    a video track; a sample decoded with PyAV (h264, 30 fps times the job's duration in frames)."""
    import hashlib

    import av

    s3 = stack.client("s3")
    verified, decoded, problems = 0, 0, []
    stored = sorted((n, i) for n, i in items.items() if i["status"] == "STORED")
    sample = {n for n, _ in stored[:: max(1, len(stored) // 5)]}
    for name, item in stored:
        body = s3.get_object(Bucket=stack.output_bucket, Key=item["video_key"])["Body"].read()
        meta_key = item["video_key"].rsplit("/", 1)[0] + "/metadata.json"
        meta = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=meta_key)["Body"].read())
        inspector = Mp4Inspector()
        inspector.feed(body)
        checks = {
            "bytes": len(body) == int(item["video_bytes"]) == int(meta["video"]["bytes"]),
            "sha256": hashlib.sha256(body).hexdigest() == meta["video"]["sha256"],
            "mp4": inspector.verdict() is None,
        }
        if all(checks.values()):
            verified += 1
        else:
            problems.append((name, checks))
        if name in sample:
            path = tmp_path / f"{name}.mp4"
            path.write_bytes(body)
            probe = probe_mp4(path)
            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            if probe["codec"] == "h264" and frames == expected_frames[name]:
                decoded += 1
            else:
                problems.append((name, {"codec": probe["codec"], "frames": frames}))
    return {"verified": verified, "decoded": decoded, "problems": problems}
