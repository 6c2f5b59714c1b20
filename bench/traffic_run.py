"""One provider-traffic scenario, run in its own interpreter (``python -m bench.traffic_run '<json>'``):
the pipeline's real handlers (submit pumps, a one-minute schedule, completion pumps) on moto_server and the
emulator, or a baseline (the SDK's ``VideoSynthesis.call`` loop, a fixed 15-second per-task poller), all on
one scaled provider clock. Prints one JSON object of raw measurements."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import bench  # noqa: F401 - puts shared/ and local/ on sys.path
from bench.common import CODE_ROOT, REGION, RequestCounter, create_resources, fake_aws_env
from bench.scaled import ProviderClock, ScaledTimeModule

MODEL = "wan2.2-kf2v-flash"
API_KEY = "sk-bench-0123456789abcdef"
GENERATION_S = (60.0, 300.0)  # provider seconds, seeded uniform draw: "usually 1-5 minutes"


@dataclass
class Scenario:
    kind: str  # pipeline | sdk_loop | fixed_poller
    jobs: int
    quota: int
    scale: float = 60.0
    seed: int = 7
    env: dict[str, str] = field(default_factory=dict)  # pipeline settings (environment variables)
    fixed_interval_s: float = 15.0
    label: str = ""
    count_requests: bool = False
    push: bool = False  # the emulator sends task-finished events to ProviderEventsFunction


def _frame_png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buf, format="PNG")
    return buf.getvalue()


FIRST, LAST = _frame_png((220, 40, 40)), _frame_png((40, 60, 220))


def _emulator(sc: Scenario, clock: ProviderClock):
    from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults
    from inbetween_local.emulator import server as emulator_server

    refusals: Counter[str] = Counter()
    original = emulator_server._Handler._send_error

    def counting_send_error(self, error) -> None:  # every error the provider answers, by code
        refusals[error.code] += 1
        original(self, error)

    emulator_server._Handler._send_error = counting_send_error
    _warm_render_cache()
    config = EmulatorConfig(
        api_keys=(API_KEY,),
        pending_s=0.0,
        running_s=GENERATION_S,
        seed=sc.seed,
        clock=clock,
        faults=Faults(max_concurrent={MODEL: sc.quota}),
        render_preset="ultrafast",
    )
    return EmulatorServer(config).start(), refusals


def _warm_render_cache() -> None:
    """Render the one video every task of a scenario produces before the clock matters: a render takes
    real seconds, which the scaled clock would otherwise count as minutes of generation."""
    from inbetween.domain.catalog import output_size
    from inbetween_local.emulator.render import Renderer, RenderJob

    for watermark in (False, True):
        width, height = output_size(320, 240, "480P")
        job = RenderJob(
            first=FIRST, last=LAST, width=width, height=height, watermark=watermark, template=None
        )
        Renderer(workers=1).submit(job).result()


def _task_facts(emulator) -> dict[str, dict[str, float]]:
    out = {}
    for task_id in emulator.tasks:
        snap = emulator.task(task_id)
        out[task_id] = {"created": snap.created_at, "ended": snap.ended_at, "status": snap.status.value}
    return out


def _summary(emulator, refusals, learned, done, started_real) -> dict[str, Any]:
    stats = emulator.stats
    return {
        "tasks": _task_facts(emulator),
        "queries": stats.queries,
        "list_calls": stats.list_calls,
        "creates": stats.creates_accepted,
        "refusals": dict(refusals),
        "learned": learned,  # task_id -> [provider time, real time] of the first terminal answer
        "done": done,  # task_id -> [provider time, real time] of the notification / the call's return
        "wall_s": time.perf_counter() - started_real,
    }


# ---- baselines ---------------------------------------------------------------------------------------
class _Frames(BaseHTTPRequestHandler):
    def log_message(self, *_a) -> None:
        pass

    def do_GET(self) -> None:
        body = FIRST if self.path.endswith("first.png") else LAST
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run_baseline(sc: Scenario) -> dict[str, Any]:
    import dashscope
    from dashscope import VideoSynthesis
    from dashscope.client import base_api

    clock = ProviderClock(sc.scale)
    base_api.time = ScaledTimeModule(clock)  # the SDK's own wait loop, its sleeps scaled
    emulator, refusals = _emulator(sc, clock)
    frames = ThreadingHTTPServer(("127.0.0.1", 0), _Frames)
    threading.Thread(target=frames.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{frames.server_address[1]}"
    dashscope.base_http_api_url = emulator.base_url
    dashscope.api_key = API_KEY
    args = {"model": MODEL, "prompt": "a slow pan", "resolution": "480P"}
    learned: dict[str, list[float]] = {}
    done: dict[str, list[float]] = {}
    started = time.perf_counter()
    try:
        if sc.kind == "sdk_loop":  # the guide's sample, once per pair, one after the other
            for i in range(sc.jobs):
                rsp = VideoSynthesis.call(
                    **args, first_frame_url=f"{host}/{i}/first.png", last_frame_url=f"{host}/{i}/last.png"
                )
                now = [clock(), time.perf_counter()]
                learned[rsp.output.task_id] = done[rsp.output.task_id] = now
        else:  # a fixed-interval poller per task, as the reference advises (15 s), quota slots kept busy
            waiting = deque(range(sc.jobs))
            active: dict[str, float] = {}
            next_create = clock()
            while waiting or active:
                while waiting and len(active) < sc.quota:
                    clock.sleep(next_create - clock())
                    i = waiting[0]
                    rsp = VideoSynthesis.async_call(
                        **args, first_frame_url=f"{host}/{i}/first.png", last_frame_url=f"{host}/{i}/last.png"
                    )
                    next_create = clock() + 0.55
                    if rsp.status_code != 200:
                        clock.sleep(1.0)
                        continue
                    waiting.popleft()
                    active[rsp.output.task_id] = clock() + sc.fixed_interval_s
                task_id = min(active, key=active.get)
                clock.sleep(active[task_id] - clock())
                rsp = VideoSynthesis.fetch(task_id)
                status = rsp.output.task_status if rsp.status_code == 200 else "PENDING"
                if status in ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"):
                    learned[task_id] = done[task_id] = [clock(), time.perf_counter()]
                    del active[task_id]
                else:
                    active[task_id] = clock() + sc.fixed_interval_s
        return _summary(emulator, refusals, learned, done, started)
    finally:
        frames.shutdown()
        emulator.stop()


# ---- the pipeline ------------------------------------------------------------------------------------
class _Context:
    function_name = "bench-function"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-function"

    def __init__(self, clock: ProviderClock, timeout_s: float) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._clock = clock
        self._deadline = clock() + timeout_s  # Lambda's timeout, in provider seconds like the schedule

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


def _load_handler(name: str):
    spec = importlib.util.spec_from_file_location(
        f"bench_fn_{name}", CODE_ROOT / "functions" / name / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the scenario process dies, however it dies."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class MotoProcess:
    """moto_server in its own process (its CPU and memory are not the pipeline's)."""

    def __enter__(self) -> str:
        import boto3

        port = _free_port()
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self._proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, **fake_aws_env()),
            preexec_fn=_die_with_parent,
        )
        url = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for _ in range(200):
            try:
                s3.list_buckets()
                return url
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.05)
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a busy server with gigabytes in memory: no need to be polite
            self._proc.kill()
            self._proc.wait(timeout=30)


class _RecordingProvider:
    """The deps' provider, noting when each task's first terminal answer came (provider and real time)."""

    def __init__(self, inner, clock: ProviderClock, learned: dict) -> None:
        self._inner, self._clock, self._learned = inner, clock, learned

    def get_task(self, task_id: str):
        state = self._inner.get_task(task_id)
        if state.status.is_terminal and task_id not in self._learned:
            self._learned[task_id] = [self._clock(), time.perf_counter()]
        return state

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _RecordingNotifier:
    """The deps' notifier, noting when each task's notification was published."""

    def __init__(self, inner, clock: ProviderClock, done: dict) -> None:
        self._inner, self._clock, self._done = inner, clock, done

    def publish(self, notification) -> None:
        self._inner.publish(notification)
        task_id = notification.data.get("task_id")
        if task_id:
            self._done.setdefault(task_id, [self._clock(), time.perf_counter()])

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


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
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def run_pipeline(sc: Scenario) -> dict[str, Any]:
    """AWS is moto in this process (``mock_aws``), its calls taken one at a time: a call costs a few
    milliseconds, as DynamoDB, S3 and SQS do, where moto_server over HTTP costs tens under load. That
    matters here: our own code's time is multiplied by the scale when it falls inside provider time."""
    import boto3
    from moto import mock_aws

    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(fake_aws_env())
    with mock_aws():
        _one_call_at_a_time()
        return _run_pipeline(sc, boto3.session.Session(region_name=REGION))


def _one_call_at_a_time() -> None:
    """moto's in-process backends are not made for concurrent callers (DynamoDB's conditional writes must
    be atomic, as they are in AWS): serialize every AWS call of the process."""
    from botocore.client import BaseClient

    lock = threading.RLock()
    original = BaseClient._make_api_call

    def serialized(self, operation_name, api_params):
        with lock:
            return original(self, operation_name, api_params)

    BaseClient._make_api_call = serialized


def _run_pipeline(sc: Scenario, harness) -> dict[str, Any]:
    import boto3
    from inbetween.clock import FunctionClock
    from inbetween.config import Timing, load_settings
    from inbetween.wiring import build_deps, use_deps

    clock = ProviderClock(sc.scale)
    emulator, refusals = _emulator(sc, clock)
    names = create_resources(harness, uuid.uuid4().hex[:10], api_key=API_KEY)
    # frames inline (base64): with moto in this process there is no HTTP endpoint for presigned S3 URLs
    env = dict(
        names,
        PROVIDER_BASE_URL=emulator.base_url,
        SETTLE_SECONDS="0",
        DEFAULT_MODEL=MODEL,  # the scenarios are kf2v flash's (not the product default)
        DEFAULT_RESOLUTION="480P",
        FRAME_TRANSPORT="base64",
    )
    push_secret = "push-" + uuid.uuid4().hex
    if sc.push:
        arn = harness.client("secretsmanager").create_secret(
            Name=f"push-{uuid.uuid4().hex[:10]}", SecretString=push_secret
        )["ARN"]
        env.update(PUSH_ENABLED="true", PUSH_SECRET_NAME=arn)
    if sc.quota != 2:
        env["PROVIDER_CONCURRENCY"] = str(sc.quota)
    env.update(sc.env)
    settings = load_settings(env)
    # the functions' own session: its requests are the ones counted (the harness's pumps are Lambda's)
    session = boto3.session.Session(region_name=REGION)
    counter = RequestCounter().attach(session.events) if sc.count_requests else None
    deps = build_deps(
        settings, session=session, timing=Timing.from_env(env), clock=FunctionClock(clock, clock.sleep)
    )
    learned: dict[str, list[float]] = {}
    done: dict[str, list[float]] = {}
    deps = dataclasses.replace(
        deps,
        provider=_RecordingProvider(deps.provider, clock, learned),
        notifier=_RecordingNotifier(deps.notifier, clock, done),
    )
    use_deps(deps)  # what every handler's get_deps() answers
    handlers = {name: _load_handler(name) for name in ("submit", "poller", "completion", "provider_events")}
    push = (
        _start_push(handlers["provider_events"], emulator, clock, push_secret, settings.provider_region)
        if sc.push
        else None
    )
    invocations: Counter[str] = Counter()
    stop = threading.Event()
    wake = _wake_on_send(session, [settings.intake_queue_url, settings.completion_queue_url])

    def pump(function: str, queue_url: str, batch: int) -> None:
        sqs = harness.client("sqs")
        while not stop.is_set():
            # no long polling (it would hold the one-call-at-a-time lock): as Lambda's long polls, a pump
            # wakes when a message is sent, and looks anyway every 0.1 s (delayed messages, S3 events)
            wake[queue_url].clear()
            msgs = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=batch, WaitTimeSeconds=0, VisibilityTimeout=5
            ).get("Messages", [])
            if not msgs:
                wake[queue_url].wait(0.1)
                continue
            invocations[function] += 1
            try:
                result = handlers[function].lambda_handler(_sqs_event(msgs), _Context(clock, 300 * 60))
            except Exception:  # noqa: BLE001 - as Lambda: a raising handler fails the batch
                result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in msgs]}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            ok = [m for m in msgs if m["MessageId"] not in failed]
            if ok:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)],
                )

    def poller_tick() -> None:
        invocations["poller"] += 1
        try:
            handlers["poller"].lambda_handler({"source": "aws.events"}, _Context(clock, 75.0))
        except Exception:  # logged; the next tick does the same work
            logging.getLogger("bench").exception("poller tick failed")

    def schedule() -> None:  # EventBridge rate(1 minute): fires on time, never waits for the last tick
        next_at = clock()
        while not stop.is_set():
            threading.Thread(target=poller_tick, daemon=True).start()
            next_at += 60.0
            stop.wait(max(0.0, next_at - clock()) / sc.scale)

    s3 = harness.client("s3")
    for i in range(sc.jobs):  # dropped at once, before the functions run
        for name, body in (("first.png", FIRST), ("last.png", LAST)):
            s3.put_object(Bucket=settings.inbox_bucket, Key=f"inbox/shot-{i:03d}/{name}", Body=body)
    if counter:
        counter.reset()
    started = time.perf_counter()
    threads = [
        threading.Thread(target=pump, args=("submit", settings.intake_queue_url, 10)) for _ in range(2)
    ]
    threads += [
        threading.Thread(target=pump, args=("completion", settings.completion_queue_url, 1)) for _ in range(4)
    ]
    threads.append(threading.Thread(target=schedule))
    for t in threads:
        t.daemon = True
        t.start()
    limit = started + (sc.jobs / min(sc.jobs, sc.quota) * GENERATION_S[1] * 2 + 1800) / sc.scale
    try:
        while len(done) < sc.jobs and time.perf_counter() < limit:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        summary = _summary(emulator, refusals, learned, done, started)
    finally:
        stop.set()
        if push is not None:
            summary_push = {"events": push[1].stats.finished, "sent": push[1].stats.sent}
            push[1].stop()
            push[0].stop()
        emulator.stop()
        use_deps(None)
        deps.close()
    table = harness.resource("dynamodb").Table(settings.jobs_table)
    summary["jobs"] = [
        {k: str(v) for k, v in item.items() if k in ("job_name", "status", "task_id", "polls", "error")}
        for item in table.scan()["Items"]
        if str(item["pk"]).startswith("job#")
    ]
    summary["invocations"] = dict(invocations)
    if push is not None:
        summary["push"] = summary_push
    summary["aws_requests"] = counter.snapshot() if counter else {}
    summary["settings"] = {k: v for k, v in env.items() if not k.isupper() or k in _PRINTED}
    return summary


def _wake_on_send(session, queue_urls: list[str]) -> dict[str, threading.Event]:
    """An event per queue, set once the functions' session has sent a message to it."""
    wake = {url: threading.Event() for url in queue_urls}
    sending = threading.local()

    def remember(params, **_kw) -> None:
        sending.queue_url = params.get("QueueUrl")

    def sent(**_kw) -> None:
        event = wake.get(getattr(sending, "queue_url", None) or "")
        if event is not None:
            event.set()

    session.events.register("before-parameter-build.sqs.SendMessage", remember)
    session.events.register("after-call.sqs.SendMessage", sent)
    return wake


class _InProcessFunction:
    """What the local stack's function-URL server invokes: the handler, with a Lambda-like context."""

    def __init__(self, module, clock: ProviderClock) -> None:
        self._module, self._clock = module, clock

    def invoke(self, event: dict) -> dict:
        return self._module.lambda_handler(event, _Context(self._clock, 30.0))


def _start_push(module, emulator, clock: ProviderClock, secret: str, region: str):
    """The function URL on 127.0.0.1 and the emulator's event sender posting every task-finished event to it
    (no drops, no delays: the figure is what push costs and saves when it works)."""
    from inbetween_local.emulator import EventSender, PushConfig
    from inbetween_local.stack.push import TOKEN_HEADER, FunctionUrlServer

    server = FunctionUrlServer(_InProcessFunction(module, clock)).start()
    sender = EventSender(PushConfig(url=server.url, headers={TOKEN_HEADER: secret}, region=region))
    sender.attach(emulator).start()
    return server, sender


_PRINTED = {
    "POLL_INTERVAL_SECONDS",
    "FIRST_POLL_DELAY_SECONDS",
    "POLL_BUDGET_SECONDS",
    "PROVIDER_CONCURRENCY",
    "PUSH_ENABLED",
    "SETTLE_SECONDS",
    "DEFAULT_RESOLUTION",
    "FRAME_TRANSPORT",
}


def run_scenario(sc: Scenario) -> dict[str, Any]:
    result = run_pipeline(sc) if sc.kind == "pipeline" else run_baseline(sc)
    result["scenario"] = asdict(sc)
    return result


if __name__ == "__main__":
    scenario = Scenario(**json.loads(sys.argv[1]))
    print(json.dumps(run_scenario(scenario)))
