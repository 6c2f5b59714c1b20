"""What AWS would bill for N dropped pairs, observed while the real handlers (functions/*/app.py) process
them in one process on a simulated clock: the requests, counted on the functions' own botocore session,
and the rest listed below.

Run as ``python -m bench.cost_run '{"jobs": 1000}'``: prints one JSON object (requests by operation,
capacity units, invocations metered, log bytes, metric names, bytes stored, outcomes, wall time).

Why not moto here: in-process moto takes 3-8 ms per DynamoDB call and its GSI Query and S3 prefix listing
read the whole table or bucket, so 10,000 jobs (~500,000 calls) would take hours. The figure is a *count* of
the requests our code makes, so the backend only has to answer correctly, not be AWS-like in speed:
``LeanAws`` answers the few operations the functions use (DynamoDB conditions and updates as our store
writes them, the due-index as a sorted list, S3 keys as a sorted list, SQS, SNS, Secrets Manager) from a
botocore ``before-call`` handler, after the requests were built, validated and counted by real botocore
clients. ``backend="moto"`` runs the same simulation on moto's ``mock_aws`` (slow, small N): the bench
compares the two counts to show the lean backend changes nothing. tests/integration/test_bench_smoke.py
holds ``LeanAws`` to moto's answers for every ``DynamoJobStore`` method (its every expression).

The provider is an ``httpx.MockTransport`` behind the real ``DashScopeClient``, answering the API's JSON
as the emulator does (create, query, and the account's task list with its time window, model filter and
pages, so the poller's one list call per tick is what is measured, not the one-by-one fallback):
generation 60-300 s (seeded uniform), the account's concurrency quota enforced (a create above it is
refused with Throttling.AllocationQuota). Video links serve a real H.264 MP4 (tiny), so the completion
makes its poster and contact sheet as it does in AWS.

What the pricing (``bench.aws_cost``) needs besides the request counts is observed here too: the
capacity units DynamoDB would bill (from the items' sizes, index writes included, see ``LeanAws``), each
invocation's own time at 1x, the time it slept on the simulated clock and the calls it made (the pricing
adds the modelled network time of each), the bytes each function writes to its log (Powertools' JSON
lines and the metrics' EMF lines), the metric names it emits, and the bytes left stored in each bucket and
in the table.

Time: a manual clock. Lambda's event sources are simulated: SQS messages are handed to the handler as
soon as they are visible (intake batches of 10, completion batches of 1, as template.yaml), the poller runs
every 60 s with its 75 s timeout; ``sleep`` moves the clock forward. ``{"jobs": 0, "idle_ticks": N}``
runs N poller ticks with nothing to do (the idle month's per-tick figures).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import io
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

import bench  # noqa: F401 - puts shared/ and local/ on sys.path
from bench.common import CODE_ROOT, REGION, RequestCounter, fake_aws_env, tiny_mp4

MODEL = "wan2.2-kf2v-flash"
RESOLUTION = "480P"
LOG_LEVEL = "INFO"  # template.yaml: POWERTOOLS_LOG_LEVEL
API_KEY = "sk-bench-0123456789abcdef"
GENERATION_S = (60.0, 300.0)  # provider seconds, seeded uniform: "usually 1-5 minutes"
QUOTA = 20
POLLER_TIMEOUT_S = 75.0  # template.yaml
FUNCTION_TIMEOUT_S = {"submit": 60.0, "poller": POLLER_TIMEOUT_S, "completion": 300.0}  # template.yaml
FUNCTION_MEMORY_MB = {"submit": 256, "poller": 256, "completion": 1024}  # template.yaml
ACCOUNT = "123456789012"
# The simulated clock starts at a fixed moment, offset within the hour by the seed: where the run starts
# against the poller's minute ticks changes which tick finds which task, so a start read from the wall clock
# made the same seed give other counts on each run (1,934 to 1,974 requests over 30 jobs).
SIM_EPOCH = 1764547200.0  # 2025-12-01T00:00:00Z (a fixed past moment; any whole hour gives the same phases)


def start_of_run(seed: int) -> float:
    return SIM_EPOCH + (seed * 7919) % 3600


# ---- time ------------------------------------------------------------------------------------------------
class SimClock:
    """Manual time. ``sleep`` moves it to the sleeper's wake-up time (never back): sleepers on several
    threads at once (the poller's pool) wait together, as they would in real time."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance_to(self.t + seconds)

    def advance_to(self, at: float) -> None:
        with self._lock:
            if at > self.t:
                self.t = at


# ---- the provider -----------------------------------------------------------------------------------------
class FakeProvider:
    """DashScope's async video API as the emulator answers it, in process: create, query, the task list
    (``GET /tasks``: the account's tasks created inside the window, newest first, in pages) and the
    result links. ``calls`` counts each kind, for the invocation that made it."""

    def __init__(self, clock: SimClock, seed: int, quota: int) -> None:
        from inbetween_local.emulator.tasks import china_time, parse_list_time

        self._china_time, self._parse_list_time = china_time, parse_list_time
        self.clock = clock
        self.quota = quota
        self._rng = random.Random(seed)
        self.tasks: dict[str, dict[str, Any]] = {}
        # (created, n, task_id) in order: a list window is two bisections, not a scan of every task (the
        # scan was the harness's, yet counted in the poller's measured duration, growing with the run)
        self._by_created: list[tuple[float, int, str]] = []
        self._running: list[float] = []  # end times of tasks that may still run (heap-free: small)
        self.calls: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.video = tiny_mp4()

    @property
    def creates(self) -> int:
        return self.calls["create"]

    @property
    def queries(self) -> int:
        return self.calls["query"]

    def handle(self, request):
        import httpx

        path = request.url.path
        if request.method == "POST" and path.endswith("/image2video/video-synthesis"):
            return self._create(json.loads(request.content or b"{}"))
        if request.method == "GET" and path.endswith("/tasks"):
            return self._list(dict(request.url.params))
        if request.method == "GET" and "/tasks/" in path:
            return self._query(path.rsplit("/", 1)[-1])
        if request.method == "GET" and path.startswith("/results/"):
            self.calls["download"] += 1
            return httpx.Response(200, content=self.video, headers={"Content-Type": "video/mp4"})
        return httpx.Response(404, json={"code": "NotFound", "message": "Not Found"})

    def _create(self, body: dict[str, Any]):
        import httpx

        now = self.clock()
        self._running = [end for end in self._running if end > now]
        if len(self._running) >= self.quota:
            self.refusals["Throttling.AllocationQuota"] += 1
            return httpx.Response(
                429,
                json={
                    "code": "Throttling.AllocationQuota",
                    "message": "quota",
                    "request_id": str(uuid.uuid4()),
                },
            )
        self.calls["create"] += 1
        task_id = str(uuid.UUID(int=self._rng.getrandbits(128)))
        end = now + self._rng.uniform(*GENERATION_S)
        self._running.append(end)
        prompt = (body.get("input") or {}).get("prompt") or ""
        bisect.insort(self._by_created, (now, len(self._by_created), task_id))
        self.tasks[task_id] = {
            "created": now,
            "end": end,
            "prompt": prompt,
            "model": body.get("model") or "",
            "request_id": str(uuid.uuid4()),
        }
        return httpx.Response(
            200,
            json={"request_id": str(uuid.uuid4()), "output": {"task_status": "PENDING", "task_id": task_id}},
        )

    def _status(self, task: dict[str, Any]) -> str:
        return "SUCCEEDED" if self.clock() >= task["end"] else "RUNNING"

    def _query(self, task_id: str):
        import httpx

        self.calls["query"] += 1
        task = self.tasks.get(task_id)
        if task is None:
            return httpx.Response(200, json={"output": {"task_id": task_id, "task_status": "UNKNOWN"}})
        status = self._status(task)
        output: dict[str, Any] = {
            "task_id": task_id,
            "task_status": status,
            "submit_time": self._china_time(task["created"]),
            "scheduled_time": self._china_time(task["created"]),
            "orig_prompt": task["prompt"],
        }
        body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
        if status == "SUCCEEDED":
            output["end_time"] = self._china_time(task["end"])
            expires = int(task["end"] + 86400)
            output["video_url"] = (
                f"https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/results/{task_id}.mp4?Expires={expires}&Signature=x"
            )
            body["usage"] = {"video_duration": 5, "video_count": 1, "SR": 480}
        return httpx.Response(200, json=body)

    def _list(self, params: dict[str, str]):
        """As the emulator's list: ``start_time``/``end_time`` (China time, at most 24 h apart) bound the
        tasks' creation, ``model_name`` filters, newest first, ``page_no``/``page_size`` pages."""
        import httpx

        self.calls["list"] += 1
        now = self.clock()
        end = self._parse_list_time(params["end_time"]) if params.get("end_time") else now
        start = self._parse_list_time(params["start_time"]) if params.get("start_time") else end - 86400
        if end - start > 86400:
            return httpx.Response(
                400,
                json={
                    "code": "InvalidParameter",
                    "message": "The time span between start_time and end_time must not exceed 24 hours.",
                    "request_id": str(uuid.uuid4()),
                },
            )
        model = params.get("model_name")
        window = self._by_created[
            bisect.bisect_left(self._by_created, (start,)) : bisect.bisect_right(
                self._by_created, (end, math.inf)
            )
        ]
        chosen = sorted(
            (
                (task_id, task)
                for _, _, task_id in window
                if (task := self.tasks[task_id]) and (not model or task["model"] == model)
            ),
            key=lambda pair: pair[1]["created"],
            reverse=True,
        )
        page_no, page_size = int(params.get("page_no", 1)), int(params.get("page_size", 10))
        page = chosen[(page_no - 1) * page_size : page_no * page_size]
        data = []
        for task_id, task in page:
            status = self._status(task)
            entry = {
                "task_id": task_id,
                "status": status,
                "model_name": task["model"],
                "gmt_create": int(task["created"] * 1000),
                "start_time": int(task["created"] * 1000),
                "request_id": task["request_id"],
                "region": "cn-beijing",
            }
            if status == "SUCCEEDED":
                entry["end_time"] = int(task["end"] * 1000)
            data.append(entry)
        return httpx.Response(
            200,
            json={
                "total": len(chosen),
                "data": data,
                "total_page": math.ceil(len(chosen) / page_size) if chosen else 0,
                "page_no": page_no,
                "page_size": page_size,
                "request_id": str(uuid.uuid4()),
            },
        )


# ---- a lean AWS backend -----------------------------------------------------------------------------------
class AwsError(Exception):
    def __init__(self, code: str, message: str = "", status: int = 400, extra: dict | None = None) -> None:
        super().__init__(code)
        self.code, self.message, self.status, self.extra = code, message, status, extra or {}


_TOKEN = re.compile(r"\s*(#\w+|:\w+|<=|>=|<>|[=<>(),+\-]|[A-Za-z_][\w]*)")
_KEYWORDS = {"AND", "OR", "NOT", "IN", "BETWEEN", "SET", "ADD", "REMOVE", "DELETE"}


def _tokens(text: str) -> list[str]:
    out, at = [], 0
    text = text.strip()
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m:
            raise AwsError("ValidationException", f"cannot parse expression at {text[at:]!r}")
        out.append(m.group(1))
        at = m.end()
    return out


def _scalar(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    return Decimal(raw) if kind == "N" else raw


def _same_type(a: dict, b: dict) -> bool:
    return next(iter(a)) == next(iter(b))


class _Expr:
    """A recursive-descent reader of DynamoDB condition and update expressions (the forms our store uses)."""

    def __init__(self, text: str, names: dict[str, str], values: dict[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.names, self.values = names or {}, values or {}

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok.upper() != expected):
            raise AwsError("ValidationException", f"expected {expected}, got {tok}")
        self.i += 1
        return tok

    def name(self, tok: str) -> str:
        return self.names[tok] if tok.startswith("#") else tok

    # conditions: a closure over an item
    def condition(self):
        left = self._and()
        while (self.peek() or "").upper() == "OR":
            self.take()
            right, prev = self._and(), left
            left = lambda item, a=prev, b=right: a(item) or b(item)  # noqa: E731
        return left

    def _and(self):
        left = self._unary()
        while (self.peek() or "").upper() == "AND":
            self.take()
            right, prev = self._unary(), left
            left = lambda item, a=prev, b=right: a(item) and b(item)  # noqa: E731
        return left

    def _unary(self):
        tok = self.peek()
        if tok and tok.upper() == "NOT":
            self.take()
            inner = self._unary()
            return lambda item: not inner(item)
        if tok == "(":
            self.take()
            inner = self.condition()
            self.take(")")
            return inner
        if tok in ("attribute_exists", "attribute_not_exists", "begins_with"):
            self.take()
            self.take("(")
            path = self.name(self.take())
            if tok == "begins_with":
                self.take(",")
                prefix = self._operand()
                self.take(")")
                return lambda item: (
                    (v := item.get(path)) is not None and "S" in v and v["S"].startswith(prefix(item)["S"])
                )
            self.take(")")
            return (
                (lambda item: path in item) if tok == "attribute_exists" else (lambda item: path not in item)
            )
        left = self._operand()
        op = self.take()
        if op.upper() == "IN":
            self.take("(")
            options = [self._operand()]
            while self.peek() == ",":
                self.take()
                options.append(self._operand())
            self.take(")")
            return lambda item: (v := left(item)) is not None and any(v == o(item) for o in options)
        if op.upper() == "BETWEEN":
            lo = self._operand()
            self.take("AND")
            hi = self._operand()
            return lambda item: _compare(left(item), ">=", lo(item)) and _compare(left(item), "<=", hi(item))
        right = self._operand()
        return lambda item: _compare(left(item), op, right(item))

    def _operand(self):
        tok = self.take()
        if tok.startswith(":"):
            value = self.values[tok]
            return lambda item: value
        path = self.name(tok)
        return lambda item: item.get(path)

    # updates: a list of actions
    def update(self) -> list[tuple[str, str, Any]]:
        actions: list[tuple[str, str, Any]] = []
        clause = None
        while self.peek() is not None:
            tok = self.peek()
            if tok.upper() in ("SET", "ADD", "REMOVE", "DELETE"):
                clause = self.take().upper()
                continue
            if tok == ",":
                self.take()
                continue
            path = self.name(self.take())
            if clause == "SET":
                self.take("=")
                value = self._set_value()
                actions.append(("SET", path, value))
            elif clause == "ADD":
                actions.append(("ADD", path, self._operand()))
            elif clause == "REMOVE":
                actions.append(("REMOVE", path, None))
            elif clause == "DELETE":
                actions.append(("DELETE", path, self._operand()))
            else:
                raise AwsError("ValidationException", f"unsupported update clause {clause}")
        return actions

    def _set_term(self):
        """One term of a SET value: ``if_not_exists(path, term)``, ``list_append(term, term)`` or an operand."""
        if self.peek() == "if_not_exists":
            self.take()
            self.take("(")
            path = self.name(self.take())
            self.take(",")
            default = self._set_term()
            self.take(")")
            return lambda item: item.get(path) or default(item)
        if self.peek() == "list_append":
            self.take()
            self.take("(")
            head = self._set_term()
            self.take(",")
            tail = self._set_term()
            self.take(")")
            return lambda item: {"L": list(head(item)["L"]) + list(tail(item)["L"])}
        return self._operand()

    def _set_value(self):
        first = self._set_term()
        if self.peek() in ("+", "-"):
            sign = self.take()
            second = self._operand()

            def arith(item):
                a, b = _scalar(first(item)), _scalar(second(item))
                return {"N": str(a + b if sign == "+" else a - b)}

            return arith
        return first


def _compare(a: dict | None, op: str, b: dict | None) -> bool:
    if a is None or b is None:
        return op == "<>" and (a is None) != (b is None)
    if op == "=":
        return a == b
    if op == "<>":
        return a != b
    if not _same_type(a, b):
        return False
    x, y = _scalar(a), _scalar(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag


# DynamoDB's billing sizes (developer guide, "Item sizes and formats"): the attribute names' UTF-8 bytes
# plus each value's: a string its UTF-8 bytes, a number about one byte per two significant digits plus
# one, binary its bytes, a boolean or null one byte, a list or map 3 bytes plus one per element.
WRITE_UNIT_BYTES, READ_UNIT_BYTES = 1024, 4096
INDEXED = ("due_kind", "due_at")  # the due-index's keys (template.yaml); its projection is ALL


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in raw)
    if kind == "SS":
        return sum(len(x.encode()) for x in raw)
    if kind == "NS":
        return sum(_value_bytes({"N": x}) for x in raw)
    return sum(len(x) for x in raw)  # BS


def item_bytes(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in (item or {}).items())


def _units(size: int, unit: int) -> int:
    return max(1, -(-size // unit))


def _in_index(item: dict[str, Any] | None) -> tuple[str, str] | None:
    return (item["due_kind"]["S"], item["due_at"]["S"]) if item and all(k in item for k in INDEXED) else None


def index_write_units(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """The due-index's writes for one item changing from ``before`` to ``after`` (developer guide, "GSI
    write activity"): entering or leaving the index one write, a change of its key a delete plus a put,
    any other change of an indexed item one write (the projection is ALL); each in 1 KB units of the
    index entry."""
    old, new = _in_index(before), _in_index(after)
    if old is None and new is None:
        return 0
    if old is None:
        return _units(item_bytes(after), WRITE_UNIT_BYTES)
    if new is None:
        return _units(item_bytes(before), WRITE_UNIT_BYTES)
    if old != new:
        return _units(item_bytes(before), WRITE_UNIT_BYTES) + _units(item_bytes(after), WRITE_UNIT_BYTES)
    return _units(item_bytes(after), WRITE_UNIT_BYTES) if before != after else 0


class LeanAws:
    """Answers the functions' AWS calls from memory (see the module docstring). Thread-safe (one lock)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.due: dict[str, dict[str, list[tuple[str, str]]]] = {}  # table -> due_kind -> sorted (due_at, pk)
        self.buckets: dict[str, dict[str, dict[str, Any]]] = {}
        self.bucket_keys: dict[str, list[str]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, deque] = {}
        self.published: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}
        self._expr_cache: dict[tuple, Any] = {}
        # what DynamoDB on-demand would bill, by operation: read units, table write units, index write units
        self.capacity: Counter[str] = Counter()

    def attach(self, events: Any) -> LeanAws:
        events.register("before-parameter-build", self._stash)
        events.register("before-call", self._answer)
        return self

    @staticmethod
    def _stash(params: dict, context: dict, **_: Any) -> None:
        context["lean_params"] = params

    def _answer(self, model: Any, context: dict, **_: Any):
        from botocore.awsrequest import AWSResponse

        service = model.service_model.service_name
        params = context.get("lean_params", {})
        try:
            with self._lock:
                parsed = getattr(self, f"_{service}_{model.name}")(params)
            parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RetryAttempts": 0})
            return AWSResponse(None, 200, {}, None), parsed
        except AwsError as exc:
            error = {"Error": {"Code": exc.code, "Message": exc.message}, **exc.extra}
            error["ResponseMetadata"] = {"HTTPStatusCode": exc.status, "RetryAttempts": 0}
            return AWSResponse(None, exc.status, {}, None), error

    # -- setup (harness) --
    def create_resources(self, suffix: str) -> dict[str, str]:
        names = {
            "JOBS_TABLE": f"jobs-{suffix}",
            "INBOX_BUCKET": f"inbox-{suffix}",
            "OUTPUT_BUCKET": f"output-{suffix}",
            "NOTIFY_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:notify-{suffix}",
            "INTAKE_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/intake-{suffix}",
            "COMPLETION_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/completion-{suffix}",
            "DASHSCOPE_API_KEY_SECRET": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dashscope-{suffix}",
            "WEBHOOK_SECRET_NAME": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:webhook-{suffix}",
        }
        self.tables[names["JOBS_TABLE"]] = {}
        self.due[names["JOBS_TABLE"]] = {}
        for bucket in (names["INBOX_BUCKET"], names["OUTPUT_BUCKET"]):
            self.buckets[bucket], self.bucket_keys[bucket] = {}, []
        for url in (names["INTAKE_QUEUE_URL"], names["COMPLETION_QUEUE_URL"]):
            self.queues[url] = deque()
        self.secrets[names["DASHSCOPE_API_KEY_SECRET"]] = API_KEY
        self.secrets[names["WEBHOOK_SECRET_NAME"]] = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
        return names

    def put_object(self, bucket: str, key: str, body: bytes, metadata: dict | None = None) -> dict:
        with self._lock:
            objects = self.buckets[bucket]
            if key not in objects:
                bisect.insort(self.bucket_keys[bucket], key)
            obj = {
                "body": bytes(body),
                "etag": _md5(bytes(body)),
                "modified": datetime.fromtimestamp(int(self.clock()), UTC),  # S3 stamps to the second
                "metadata": metadata or {},
                "version": uuid.uuid4().hex if bucket.startswith("output-") else None,
            }
            objects[key] = obj
            return obj

    def receive(self, url: str, max_n: int) -> list[dict[str, Any]]:
        """Lambda's event source: up to ``max_n`` visible messages, taken (deleted on success)."""
        with self._lock:
            queue, now, out, kept = self.queues[url], self.clock(), [], deque()
            while queue and len(out) < max_n:
                msg = queue.popleft()
                (out if msg["visible_at"] <= now else kept).append(msg)
            kept.extend(queue)
            self.queues[url] = kept
            return out

    def next_visible(self, url: str) -> float | None:
        with self._lock:
            return min((m["visible_at"] for m in self.queues[url]), default=None)

    def requeue(self, url: str, msg: dict[str, Any], delay: float) -> None:
        with self._lock:
            msg["visible_at"] = self.clock() + delay
            self.queues[url].append(msg)

    def enqueue(self, url: str, body: str, delay: float = 0.0) -> str:
        msg_id = str(uuid.uuid4())
        with self._lock:
            self.queues[url].append(
                {
                    "MessageId": msg_id,
                    "ReceiptHandle": msg_id,
                    "Body": body,
                    "visible_at": self.clock() + delay,
                }
            )
        return msg_id

    # -- DynamoDB --
    def _parsed(self, kind: str, text: str, names: dict | None, values: dict | None):
        key = (kind, text, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))
        hit = self._expr_cache.get(key)
        if hit is None:
            reader = _Expr(text, names or {}, values or {})
            hit = reader.condition() if kind == "cond" else reader.update()
            if len(self._expr_cache) > 50_000:
                self._expr_cache.clear()
            self._expr_cache[key] = hit
        return hit

    def _check(self, item: dict, params: dict) -> bool:
        text = params.get("ConditionExpression")
        if not text:
            return True
        cond = self._parsed(
            "cond", text, params.get("ExpressionAttributeNames"), params.get("ExpressionAttributeValues")
        )
        return bool(cond(item))

    def _store(self, table: str, pk: str, new: dict | None) -> None:
        items = self.tables[table]
        old = items.get(pk)
        old_due = (
            (old["due_kind"]["S"], old["due_at"]["S"])
            if old and "due_kind" in old and "due_at" in old
            else None
        )
        new_due = (
            (new["due_kind"]["S"], new["due_at"]["S"])
            if new and "due_kind" in new and "due_at" in new
            else None
        )
        if old_due != new_due:
            index = self.due[table]
            if old_due:
                entries = index[old_due[0]]
                at = bisect.bisect_left(entries, (old_due[1], pk))
                del entries[at]
            if new_due:
                bisect.insort(index.setdefault(new_due[0], []), (new_due[1], pk))
        if new is None:
            items.pop(pk, None)
        else:
            items[pk] = new

    def _table(self, params: dict) -> dict[str, dict]:
        table = self.tables.get(params["TableName"])
        if table is None:
            raise AwsError("ResourceNotFoundException", "table not found")
        return table

    def _charge_write(
        self, op: str, before: dict | None, after: dict | None, *, factor: int, applied: bool
    ) -> None:
        """A write's units: the larger of the item's sizes before and after, in 1 KB units (a failed
        condition still pays for the item it read); ``factor`` 2 inside a transaction; the index's writes
        only when the write happened."""
        size = max(item_bytes(before), item_bytes(after))
        self.capacity[f"dynamodb.{op}.write_units"] += factor * _units(size, WRITE_UNIT_BYTES)
        if applied:
            self.capacity[f"dynamodb.{op}.index_write_units"] += index_write_units(before, after)

    def _charge_read(self, op: str, size: int, *, consistent: bool) -> None:
        """Reads in 4 KB units of the bytes read (a Query's items together), half a unit each when
        eventually consistent (an index is read only so); an empty read still costs one (half) unit."""
        self.capacity[f"dynamodb.{op}.read_units"] += _units(size, READ_UNIT_BYTES) * (
            1.0 if consistent else 0.5
        )

    def _dynamodb_GetItem(self, p: dict) -> dict:
        item = self._table(p).get(p["Key"]["pk"]["S"])
        self._charge_read("GetItem", item_bytes(item), consistent=bool(p.get("ConsistentRead")))
        return {"Item": dict(item)} if item is not None else {}

    def _dynamodb_PutItem(self, p: dict) -> dict:
        pk = p["Item"]["pk"]["S"]
        before = self._table(p).get(pk)
        if not self._check(before or {}, p):
            self._charge_write("PutItem", before, p["Item"], factor=1, applied=False)
            raise AwsError("ConditionalCheckFailedException", "The conditional request failed")
        self._charge_write("PutItem", before, p["Item"], factor=1, applied=True)
        self._store(p["TableName"], pk, dict(p["Item"]))
        return {}

    def _dynamodb_DeleteItem(self, p: dict) -> dict:
        pk = p["Key"]["pk"]["S"]
        before = self._table(p).get(pk)
        applied = self._check(before or {}, p)
        self._charge_write("DeleteItem", before, None, factor=1, applied=applied)
        if not applied:
            raise AwsError("ConditionalCheckFailedException", "The conditional request failed")
        self._store(p["TableName"], pk, None)
        return {}

    def _updated(self, p: dict) -> tuple[str, dict] | None:
        pk = p["Key"]["pk"]["S"]
        item = self._table(p).get(pk) or {}
        if not self._check(item, p):
            return None
        new = dict(item) or dict(p["Key"])
        actions = self._parsed(
            "update",
            p["UpdateExpression"],
            p.get("ExpressionAttributeNames"),
            p.get("ExpressionAttributeValues"),
        )
        for action, path, value in actions:
            if action == "SET":
                new[path] = value(item)
            elif action == "REMOVE":
                new.pop(path, None)
            elif action == "DELETE":  # elements out of a set; DynamoDB drops a set left empty
                drop = value(item)
                kind = next(iter(drop))
                left = sorted(set((new.get(path) or {}).get(kind, [])) - set(drop[kind]))
                if left:
                    new[path] = {kind: left}
                else:
                    new.pop(path, None)
            else:  # ADD
                add = value(item)
                have = new.get(path)
                if "N" in add:
                    new[path] = {"N": str((_scalar(have) if have else Decimal(0)) + _scalar(add))}
                else:
                    kind = next(iter(add))
                    new[path] = {kind: sorted(set((have or {}).get(kind, [])) | set(add[kind]))}
        return pk, new

    def _dynamodb_UpdateItem(self, p: dict) -> dict:
        before = dict(self._table(p).get(p["Key"]["pk"]["S"]) or {})
        done = self._updated(p)
        self._charge_write(
            "UpdateItem", before, done[1] if done else None, factor=1, applied=done is not None
        )
        if done is None:
            raise AwsError("ConditionalCheckFailedException", "The conditional request failed")
        self._store(p["TableName"], *done)
        if p.get("ReturnValues") == "ALL_NEW":
            return {"Attributes": dict(done[1])}
        if p.get("ReturnValues") == "ALL_OLD":
            return {"Attributes": before} if before else {}
        return {}

    def _dynamodb_TransactWriteItems(self, p: dict) -> dict:
        planned, reasons = [], []
        for entry in p["TransactItems"]:
            ((kind, op),) = entry.items()
            if kind == "Update":
                done = self._updated(op)
            elif kind == "Put":
                pk = op["Item"]["pk"]["S"]
                done = (pk, dict(op["Item"])) if self._check(self._table(op).get(pk) or {}, op) else None
            elif kind == "Delete":
                pk = op["Key"]["pk"]["S"]
                done = (pk, None) if self._check(self._table(op).get(pk) or {}, op) else None
            else:  # ConditionCheck
                pk = op["Key"]["pk"]["S"]
                done = (pk, "check") if self._check(self._table(op).get(pk) or {}, op) else None
            reasons.append({"Code": "None"} if done else {"Code": "ConditionalCheckFailed"})
            planned.append((op["TableName"], done))
        # each item of a transaction pays twice its write units, a cancelled one too (for the items read)
        for (table, done), entry in zip(planned, p["TransactItems"], strict=True):
            ((_kind, op),) = entry.items()
            before = self.tables[table].get((op.get("Key") or op.get("Item"))["pk"]["S"])
            after = done[1] if done and done[1] != "check" else (before if done else None)
            applied = done is not None and not any(d is None for _, d in planned)
            self._charge_write("TransactWriteItems", before, after, factor=2, applied=applied)
        if any(done is None for _, done in planned):
            raise AwsError(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons",
                extra={"CancellationReasons": reasons},
            )
        for table, (pk, new) in planned:
            if new != "check":
                self._store(table, pk, new)
        return {}

    def _dynamodb_Query(self, p: dict) -> dict:
        if p.get("IndexName") != "due-index":
            raise AwsError("ValidationException", "only the due-index is queried")
        m = re.fullmatch(
            r"\s*due_kind\s*=\s*(:\w+)(?:\s+AND\s+due_at\s*(<=|<)\s*(:\w+))?\s*",
            p["KeyConditionExpression"],
            re.I,
        )
        if not m:
            raise AwsError("ValidationException", "unsupported key condition")
        values = p["ExpressionAttributeValues"]
        entries = self.due[p["TableName"]].get(values[m.group(1)]["S"], [])
        hi = len(entries)
        if m.group(2):
            bound = values[m.group(3)]["S"]
            hi = (
                bisect.bisect_right(entries, (bound, "\U0010ffff"))
                if m.group(2) == "<="
                else bisect.bisect_left(entries, (bound, ""))
            )
        limit = int(p.get("Limit") or hi)
        chosen = entries[: min(hi, limit)]
        out: dict[str, Any] = {"Count": len(chosen), "ScannedCount": len(chosen)}
        items = self.tables[p["TableName"]]
        if p.get("Select") == "COUNT":  # a count still reads (and pays for) every item it counts
            out["Count"] = out["ScannedCount"] = hi
            self._charge_read("Query", sum(item_bytes(items[pk]) for _, pk in entries[:hi]), consistent=False)
            return out
        out["Items"] = [dict(items[pk]) for _, pk in chosen]
        self._charge_read("Query", sum(item_bytes(i) for i in out["Items"]), consistent=False)
        if hi > len(chosen):
            due_at, pk = chosen[-1]
            out["LastEvaluatedKey"] = {
                "pk": {"S": pk},
                "due_kind": values[m.group(1)],
                "due_at": {"S": due_at},
            }
        return out

    def _dynamodb_Scan(self, p: dict) -> dict:
        items = list(self._table(p).values())
        if p.get("FilterExpression"):
            cond = self._parsed(
                "cond",
                p["FilterExpression"],
                p.get("ExpressionAttributeNames"),
                p.get("ExpressionAttributeValues"),
            )
            matched = [dict(i) for i in items if cond(i)]
        else:
            matched = [dict(i) for i in items]
        self._charge_read("Scan", sum(item_bytes(i) for i in items), consistent=bool(p.get("ConsistentRead")))
        return {"Items": matched, "Count": len(matched), "ScannedCount": len(items)}

    def stored(self) -> dict[str, Any]:
        """What is left stored: bytes by bucket and top-level prefix, and the table's items."""
        objects: Counter[str] = Counter()
        for bucket, keys in self.buckets.items():
            kind = bucket.split("-", 1)[0]
            for key, obj in keys.items():
                objects[f"{kind}/{key.split('/', 1)[0]}/{key.rsplit('/', 1)[-1].rsplit('.', 1)[-1]}"] += len(
                    obj["body"]
                )
        table = {name: sum(item_bytes(i) for i in items.values()) for name, items in self.tables.items()}
        index = {
            name: sum(item_bytes(i) for i in items.values() if _in_index(i))
            for name, items in self.tables.items()
        }
        return {
            "object_bytes": dict(objects),
            "table_bytes": sum(table.values()),
            "index_bytes": sum(index.values()),
            "items": sum(len(items) for items in self.tables.values()),
        }

    # -- S3 --
    def _object(self, p: dict) -> dict:
        obj = self.buckets.get(p["Bucket"], {}).get(p["Key"])
        if obj is None:
            raise AwsError("NoSuchKey", "The specified key does not exist.", 404)
        return obj

    def _s3_ListObjectsV2(self, p: dict) -> dict:
        keys, objects = self.bucket_keys[p["Bucket"]], self.buckets[p["Bucket"]]
        prefix, delimiter = p.get("Prefix", ""), p.get("Delimiter")
        contents, common = [], []
        at = bisect.bisect_left(keys, prefix)
        while at < len(keys) and keys[at].startswith(prefix):
            key = keys[at]
            at += 1
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                cp = prefix + rest.split(delimiter, 1)[0] + delimiter
                if not common or common[-1] != cp:
                    common.append(cp)
                continue
            obj = objects[key]
            contents.append(
                {"Key": key, "LastModified": obj["modified"], "ETag": f'"{obj["etag"]}"', "Size": len(obj["body"]),
                 "StorageClass": "STANDARD"}
            )  # fmt: skip
        out: dict[str, Any] = {
            "IsTruncated": False,
            "Name": p["Bucket"],
            "Prefix": prefix,
            "KeyCount": len(contents),
        }
        if contents:
            out["Contents"] = contents
        if common:
            out["CommonPrefixes"] = [{"Prefix": c} for c in common]
        return out

    def _s3_GetObject(self, p: dict) -> dict:
        from botocore.response import StreamingBody

        obj = self._object(p)
        if p.get("IfMatch") and p["IfMatch"].strip('"') != obj["etag"]:
            raise AwsError(
                "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412
            )
        body = obj["body"]
        return {
            "Body": StreamingBody(io.BytesIO(body), len(body)),
            "ContentLength": len(body),
            "ETag": f'"{obj["etag"]}"',
            "LastModified": obj["modified"],
            "Metadata": dict(obj["metadata"]),
        }

    def _s3_HeadObject(self, p: dict) -> dict:
        obj = self.buckets.get(p["Bucket"], {}).get(p["Key"])
        if obj is None:
            raise AwsError("404", "Not Found", 404)
        out = {
            "ContentLength": len(obj["body"]),
            "ETag": f'"{obj["etag"]}"',
            "Metadata": dict(obj["metadata"]),
        }
        if obj["version"]:
            out["VersionId"] = obj["version"]
        return out

    def _s3_PutObject(self, p: dict) -> dict:
        body = p.get("Body", b"")
        data = body.read() if hasattr(body, "read") else bytes(body)
        obj = self.put_object(p["Bucket"], p["Key"], data, p.get("Metadata"))
        out = {"ETag": f'"{obj["etag"]}"'}
        if obj["version"]:
            out["VersionId"] = obj["version"]
        return out

    def _s3_CreateMultipartUpload(self, p: dict) -> dict:
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = {
            "bucket": p["Bucket"],
            "key": p["Key"],
            "parts": {},
            "metadata": p.get("Metadata"),
        }
        return {"Bucket": p["Bucket"], "Key": p["Key"], "UploadId": upload_id}

    def _s3_UploadPart(self, p: dict) -> dict:
        upload = self.uploads.get(p["UploadId"])
        if upload is None:
            raise AwsError("NoSuchUpload", "The specified upload does not exist.", 404)
        body = p.get("Body", b"")
        data = body.read() if hasattr(body, "read") else bytes(body)
        upload["parts"][int(p["PartNumber"])] = data
        return {"ETag": f'"{_md5(data)}"'}

    def _s3_CompleteMultipartUpload(self, p: dict) -> dict:
        upload = self.uploads.pop(p["UploadId"], None)
        if upload is None:
            raise AwsError("NoSuchUpload", "The specified upload does not exist.", 404)
        numbers = [part["PartNumber"] for part in p["MultipartUpload"]["Parts"]]
        data = b"".join(upload["parts"][n] for n in numbers)
        obj = self.put_object(upload["bucket"], upload["key"], data, upload["metadata"])
        out = {"Bucket": upload["bucket"], "Key": upload["key"], "ETag": f'"{obj["etag"]}-{len(numbers)}"'}
        if obj["version"]:
            out["VersionId"] = obj["version"]
        return out

    def _s3_AbortMultipartUpload(self, p: dict) -> dict:
        self.uploads.pop(p["UploadId"], None)
        return {}

    # -- SQS, SNS, Secrets Manager --
    def _sqs_SendMessage(self, p: dict) -> dict:
        if p["QueueUrl"] not in self.queues:
            raise AwsError("AWS.SimpleQueueService.NonExistentQueue", "queue does not exist")
        msg_id = self.enqueue(p["QueueUrl"], p["MessageBody"], float(p.get("DelaySeconds", 0)))
        return {"MessageId": msg_id, "MD5OfMessageBody": _md5(p["MessageBody"].encode())}

    def _sns_Publish(self, p: dict) -> dict:
        self.published.append(p)
        return {"MessageId": str(uuid.uuid4())}

    def _secretsmanager_GetSecretValue(self, p: dict) -> dict:
        value = self.secrets.get(p["SecretId"])
        if value is None:
            raise AwsError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
        return {"ARN": p["SecretId"], "Name": p["SecretId"].rsplit(":", 1)[-1], "SecretString": value,
                "VersionId": "v1", "VersionStages": ["AWSCURRENT"]}  # fmt: skip


# ---- the simulation ---------------------------------------------------------------------------------------
def _s3_event(bucket: str, key: str, size: int, etag: str, now: float) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
        },
    }
    return json.dumps({"Records": [record]})


class _MotoAws:
    """The same harness operations on moto's in-process ``mock_aws`` (the cross-check: slow, small N)."""

    def __init__(self, clock: SimClock) -> None:
        import boto3
        import moto.s3.models as s3_models
        import moto.sqs.models as sqs_models
        from moto import mock_aws

        from bench.common import create_resources

        self._mock = mock_aws()
        self._mock.start()
        # moto's clocks on the simulated one (SQS delays and visibility, S3's LastModified), put back on
        # stop: a test process goes on using moto after this run
        self._real_clocks = [
            (sqs_models, "unix_time_millis", sqs_models.unix_time_millis),
            (sqs_models, "unix_time", sqs_models.unix_time),
            (s3_models, "utcnow", s3_models.utcnow),
        ]
        sqs_models.unix_time_millis = lambda *_a: clock() * 1000
        sqs_models.unix_time = lambda *_a: clock()
        s3_models.utcnow = lambda: datetime.fromtimestamp(clock(), UTC).replace(tzinfo=None)
        self._session = boto3.session.Session(region_name=REGION)
        self._s3, self._sqs = self._session.client("s3"), self._session.client("sqs")
        self._create_resources = create_resources
        self._clock = clock
        self._visible_at: dict[str, list[float]] = {}  # by queue: when a delayed or returned message shows

    def watch(self, events: Any) -> None:
        """Note when each message the functions send becomes visible, so that the harness wakes then, as
        it does on the lean backend (moto cannot say; waking every second instead shifts every step)."""
        events.register("provide-client-params.sqs.SendMessage", self._sent)

    def _sent(self, params: dict, **_: Any) -> None:
        self._visible_at.setdefault(params["QueueUrl"], []).append(
            self._clock() + float(params.get("DelaySeconds", 0))
        )

    def next_visible(self, url: str) -> float | None:
        now = self._clock()
        upcoming = [t for t in self._visible_at.get(url, []) if t > now]
        self._visible_at[url] = upcoming
        return min(upcoming) + 0.001 if upcoming else None  # just after: moto's delay ends strictly after

    def create_resources(self, suffix: str) -> dict[str, str]:
        return self._create_resources(self._session, suffix, api_key=API_KEY)

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=body)  # moto sends the S3 event to the intake queue

    def receive(self, url: str, max_n: int) -> list[dict[str, Any]]:
        return self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=max_n, VisibilityTimeout=360).get(
            "Messages", []
        )

    def returned(self, url: str, count: int, delay: float) -> None:
        self._visible_at.setdefault(url, []).extend([self._clock() + delay] * count)

    def ack(self, url: str, msgs: list[dict[str, Any]]) -> None:
        if msgs:
            self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
            )

    def waiting(self, url: str) -> bool:
        attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return any(int(attrs.get(k, 0)) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                                                   "ApproximateNumberOfMessagesNotVisible"))  # fmt: skip

    def stop(self) -> None:
        self._mock.stop()
        for module, name, real in self._real_clocks:
            setattr(module, name, real)


def _lighter_botocore() -> None:
    """CPU that does not change what is sent or counted: no client-side parameter validation (the lean
    backend reads the parameters as given; the moto cross-check validates them server-side) and one
    User-Agent string per client instead of one rebuilt per request."""
    from botocore import useragent

    original = useragent.UserAgentString.to_string

    def cached(self) -> str:
        value = getattr(self, "_bench_cached", None)
        if value is None:
            value = original(self)
            self._bench_cached = value
        return value

    useragent.UserAgentString.to_string = cached


def _frame_png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buf, format="PNG")
    return buf.getvalue()


class _Context:
    """The Lambda context the handlers read: the remaining time, on the simulated clock."""

    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-function"

    def __init__(self, clock: SimClock, function: str, timeout_s: float, memory_mb: int) -> None:
        self.function_name = f"bench-{function}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self._clock = clock
        self._deadline = clock() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


def _load_handler(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"bench_cost_fn_{name}", CODE_ROOT / "functions" / name / "app.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no handler at functions/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sqs_event(messages: list[dict]) -> dict:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {**m.get("Attributes", {}), "ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


class LogSink(io.TextIOBase):
    """Where the functions' stdout goes during the run (in Lambda: their log group): counts the bytes
    each function writes, and the metric names of the EMF lines among them (each a custom metric)."""

    def __init__(self) -> None:
        self.function = "harness"
        self.bytes: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.metrics: dict[str, set[str]] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes[self.function] += len(text.encode())
        self.lines[self.function] += text.count("\n")
        if '"_aws"' in text:
            for line in text.splitlines():
                try:
                    directives = json.loads(line)["_aws"]["CloudWatchMetrics"]
                except (ValueError, KeyError, TypeError):
                    continue
                for directive in directives:
                    names = {m["Name"] for m in directive.get("Metrics", [])}
                    self.metrics.setdefault(self.function, set()).update(names)
        return len(text)


class Invocations:
    """Each function's invocations, metered as Lambda bills them: its own time (measured, 1x, on this
    machine), the time it slept on the simulated clock (the poller's budget, pacing), and the calls it
    made, AWS by operation and the provider by kind (the pricing adds each call's modelled round trip)."""

    def __init__(
        self, clock: SimClock, counter: RequestCounter, provider: FakeProvider, sink: LogSink
    ) -> None:
        self._clock, self._counter, self._provider, self._sink = clock, counter, provider, sink
        self.count: Counter[str] = Counter()
        self.own_s: Counter[str] = Counter()
        self.slept_s: Counter[str] = Counter()
        self.max_s: Counter[str] = Counter()
        self.calls: dict[str, Counter[str]] = {}

    def run(self, function: str, call: Any) -> Any:
        aws_before, provider_before = self._counter.snapshot(), Counter(self._provider.calls)
        sim_before, started = self._clock(), time.perf_counter()
        self._sink.function = function
        try:
            return call()
        finally:
            own, slept = time.perf_counter() - started, self._clock() - sim_before
            self._sink.function = "harness"
            self.count[function] += 1
            self.own_s[function] += own
            self.slept_s[function] += slept
            self.max_s[function] = max(self.max_s[function], own + slept)
            made = self.calls.setdefault(function, Counter())
            made.update(Counter(self._counter.snapshot()) - Counter(aws_before))
            made.update({f"provider.{k}": v for k, v in (self._provider.calls - provider_before).items()})

    def report(self) -> dict[str, Any]:
        return {
            name: {
                "invocations": self.count[name],
                "own_s": round(self.own_s[name], 3),
                "slept_s": round(self.slept_s[name], 1),
                "longest_s": round(self.max_s[name], 1),
                "calls": dict(self.calls.get(name, {})),
            }
            for name in sorted(self.count)
        }


class _LogsToSink:
    """Powertools' logger holds the stream it was made with: its handlers write to the sink meanwhile,
    at the template's level (INFO; the bench's own default is ERROR, to keep its output quiet)."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink
        self._logger = logging.getLogger("inbetween")
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []
        self._level = self._logger.level

    def __enter__(self) -> None:
        self._logger.setLevel(LOG_LEVEL)
        for handler in self._logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                self._swapped.append((handler, handler.setStream(self._sink)))

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._logger.setLevel(self._level)


def simulate(
    jobs: int, *, backend: str = "lean", seed: int = 11, quota: int = QUOTA, idle_ticks: int = 0
) -> dict[str, Any]:
    os.environ.update(fake_aws_env())
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)  # the EMF lines are log volume and custom metrics
    sink = LogSink()
    real_stdout, sys.stdout = sys.stdout, sink  # type: ignore[assignment]
    try:
        return _simulate(jobs, backend=backend, seed=seed, quota=quota, idle_ticks=idle_ticks, sink=sink)
    finally:
        sys.stdout = real_stdout


def _simulate(
    jobs: int, *, backend: str, seed: int, quota: int, idle_ticks: int, sink: LogSink
) -> dict[str, Any]:
    import boto3
    import httpx
    from botocore.config import Config
    from inbetween.clock import FunctionClock
    from inbetween.config import Timing, load_settings
    from inbetween.wiring import build_deps, use_deps

    _lighter_botocore()
    started = time.perf_counter()
    clock = SimClock(start_of_run(seed))
    aws: Any = LeanAws(clock) if backend == "lean" else _MotoAws(clock)
    provider = FakeProvider(clock, seed, quota)
    names = aws.create_resources(uuid.uuid4().hex[:10])
    env = dict(
        names,
        PROVIDER_BASE_URL="https://dashscope.aliyuncs.com/api/v1",
        PROVIDER_CONCURRENCY=str(quota),
        DEFAULT_MODEL=MODEL,  # the figure is kf2v flash's (the cheapest video: the hardest share)
        DEFAULT_RESOLUTION=RESOLUTION,
        # the poller's threads would sleep on the run's one simulated clock, and whichever advanced it
        # first would change what the others read as now: the moto and lean runs must make the same
        # requests. One thread changes no priced figure, as the network model sums round trips serially
        POLL_CONCURRENCY="1",
    )
    settings = load_settings(env)

    session = boto3.session.Session(region_name=REGION)  # the functions' own: every call on it is counted
    if backend == "lean":
        session._session.set_default_client_config(Config(parameter_validation=False))
    counter = RequestCounter().attach(session.events)
    if isinstance(aws, LeanAws):
        aws.attach(session.events)
    else:
        aws.watch(session.events)
    deps = build_deps(
        settings,
        session=session,
        timing=Timing.from_env(env),
        clock=FunctionClock(clock, clock.sleep),
        provider_transport=httpx.MockTransport(provider.handle),
        video_transport=httpx.MockTransport(provider.handle),
    )
    use_deps(deps)  # what every handler's get_deps() answers
    handlers = {name: _load_handler(name) for name in ("submit", "poller", "completion")}
    logs_to_sink = _LogsToSink(sink)
    logs_to_sink.__enter__()
    meter = Invocations(clock, counter, provider, sink)
    failures: Counter[str] = Counter()
    intake, completion = settings.intake_queue_url, settings.completion_queue_url
    first, last = _frame_png((220, 40, 40)), _frame_png((40, 60, 220))

    for i in range(jobs):  # dropped at once, before the functions run; S3 sends one event per object
        for name, body in (("first.png", first), ("last.png", last)):
            key = f"inbox/shot-{i:05d}/{name}"
            if isinstance(aws, LeanAws):
                obj = aws.put_object(settings.inbox_bucket, key, body)
                aws.enqueue(intake, _s3_event(settings.inbox_bucket, key, len(body), obj["etag"], clock()))
            else:
                aws.put_object(settings.inbox_bucket, key, body)
    counter.reset()
    if isinstance(aws, LeanAws):
        aws.capacity.clear()
    clock.advance_to(clock() + 1.0)

    def invoke(function: str, url: str, batch: int) -> bool:
        msgs = aws.receive(url, batch)
        if not msgs:
            return False
        context = _Context(clock, function, FUNCTION_TIMEOUT_S[function], FUNCTION_MEMORY_MB[function])
        try:
            result = meter.run(function, lambda: handlers[function].lambda_handler(_sqs_event(msgs), context))
        except Exception:  # noqa: BLE001 - as Lambda: a raising handler fails the batch
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in msgs]}
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        failures[function] += len(failed)
        if isinstance(aws, LeanAws):
            for m in msgs:
                if m["MessageId"] in failed:
                    aws.requeue(url, m, 360.0)
        else:
            aws.ack(url, [m for m in msgs if m["MessageId"] not in failed])
            aws.returned(url, len(failed), 360.0)
        return True

    def tick() -> None:  # EventBridge: rate(1 minute)
        context = _Context(clock, "poller", POLLER_TIMEOUT_S, FUNCTION_MEMORY_MB["poller"])
        meter.run("poller", lambda: handlers["poller"].lambda_handler({"source": "aws.events"}, context))

    def done() -> int:
        return counter.calls.get("sns.Publish", 0)

    sim_start = clock()
    next_tick = clock() + 30.0
    limit = clock() + (jobs / min(jobs, quota) * GENERATION_S[1] * 2 + 3600 if jobs else 0)
    try:
        while done() < jobs and clock() < limit:
            if invoke("submit", intake, 10) or invoke("completion", completion, 1):
                continue
            if clock() >= next_tick:
                tick()
                next_tick += 60.0
                continue
            if isinstance(aws, LeanAws):
                wake = min(filter(None, (next_tick, aws.next_visible(intake), aws.next_visible(completion))))
            else:
                waiting = aws.waiting(intake) or aws.waiting(completion)
                known = [t for t in (aws.next_visible(intake), aws.next_visible(completion)) if t]
                wake = min(next_tick, *(known or [clock() + 1.0])) if waiting else next_tick
            clock.advance_to(wake)
        for _ in range(idle_ticks if not jobs else 0):  # nothing to do: the idle month's ticks
            clock.advance_to(next_tick)
            tick()
            next_tick += 60.0
    finally:
        logs_to_sink.__exit__()
        use_deps(None)
        deps.close()
        if not isinstance(aws, LeanAws):
            aws.stop()
    calls = counter.snapshot()
    return {
        "backend": backend,
        "jobs": jobs,
        "notified": done(),
        "aws_requests": calls,
        "dynamodb_items_read": dict(counter.items_read),
        "dynamodb_capacity": dict(aws.capacity) if isinstance(aws, LeanAws) else {},
        "stored": aws.stored() if isinstance(aws, LeanAws) else {},
        "functions": meter.report(),
        "invocations": dict(meter.count),
        "log_bytes": dict(sink.bytes),
        "log_lines": dict(sink.lines),
        "metric_names": {function: sorted(names) for function, names in sink.metrics.items()},
        "batch_item_failures": dict(failures),
        "provider": {"calls": dict(provider.calls), "refusals": dict(provider.refusals)},
        "provider_hours": round((clock() - sim_start) / 3600, 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "settings": {
            "quota": quota,
            "model": MODEL,
            "resolution": settings.default_resolution,
            "generation": f"{GENERATION_S[0]:g}-{GENERATION_S[1]:g} s, seed {seed}",
            "settle_s": settings.settle_seconds,
            "poll_interval_s": settings.poll_interval_s,
        },
    }


if __name__ == "__main__":
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    print(json.dumps(simulate(**args)))
