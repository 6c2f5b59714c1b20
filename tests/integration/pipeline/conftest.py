"""Harness for the handlers: moto in server mode (so the emulator can fetch presigned frame URLs on
loopback), the DashScope emulator, and the template's functions driven by hand, step by step.

Everything comes from the harness the local stack and the bench share: the resources are template.yaml's
(``inbetween_local.stack.provision``, under a stack name of the test's own), the handlers are loaded from
the template's CodeUri and Handler, invoked with a Lambda context whose time counts down from the
template's Timeout, and SQS batches are delivered as Lambda's event source mapping delivers them
(``inbetween_local.stack.runtime``). The handlers get the test's deps through ``inbetween.wiring.use_deps``:
built by ``build_deps`` on a clock the test can move forward; a test changes a part of them (a faulty
store, other timings) with ``pipeline.replace``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from inbetween.clock import FunctionClock
from inbetween.config import Settings, Timing, load_settings
from inbetween.deps import Deps
from inbetween.wiring import build_deps, use_deps
from inbetween_local.emulator import EmulatorConfig, EmulatorServer
from inbetween_local.stack.moto_server import MotoServer
from inbetween_local.stack.provision import Provisioned, provision
from inbetween_local.stack.runtime import (
    FunctionCrashed,
    LambdaContext,
    load_handler,
    run_sqs_batch,
    scheduled_event,
)
from inbetween_local.stack.template import FunctionDef
from pipeline_kit import API_KEY, BLUE, RED, WEBHOOK_SECRET_RAW, frame_png

FINAL = {"STORED", "REJECTED", "FAILED", "EXPIRED"}


def short_name(fn: FunctionDef) -> str:
    """What the tests call a function: its code folder (``functions/submit/`` -> ``submit``)."""
    return Path(fn.code_uri).name


@pytest.fixture(scope="session")
def moto_url():
    with MotoServer() as server:
        yield server.url


@dataclass
class Pipeline:
    session: boto3.session.Session
    provisioned: Provisioned
    stack_name: str
    deps: Deps
    emulator: EmulatorServer
    functions: dict[str, FunctionDef]  # by short name: submit, poller, completion (provider_events)
    handlers: dict[str, Callable[[dict, Any], Any]]
    notifications_queue: str
    clock_offset: list = field(default_factory=lambda: [0.0])
    built: list[Deps] = field(default_factory=list)  # every deps built here (closed at teardown)

    # ---- the deps the handlers use ------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.deps.settings

    def use(self, deps: Deps) -> Deps:
        """Hand ``deps`` to the handlers (``use_deps``) from now on."""
        self.deps = deps
        use_deps(deps)
        return deps

    def replace(self, **parts: Any) -> Deps:
        """The current deps with some parts replaced (a wrapped store, other timings), in use from now."""
        return self.use(dataclasses.replace(self.deps, **parts))

    def rebuild(self, **setting_changes: Any) -> Deps:
        """Deps built afresh (``build_deps``) from changed settings: for settings that shape the adapters
        themselves (the webhook address policy)."""
        settings = dataclasses.replace(self.settings, **setting_changes)
        deps = build_deps(settings, session=self.session, timing=self.deps.timing, clock=self.deps.clock)
        self.built.append(deps)
        return self.use(deps)

    def close(self) -> None:
        for deps in self.built:
            deps.close()

    # ---- clients ------------------------------------------------------------------------------------
    @property
    def s3(self):
        return self.session.client("s3")

    @property
    def sqs(self):
        return self.session.client("sqs")

    # ---- the functions, as Lambda runs them -----------------------------------------------------------
    def context(self, function: str) -> LambdaContext:
        fn = self.functions[function]
        return LambdaContext.for_function(fn, f"{self.stack_name}-{fn.logical_id}")

    def invoke(self, function: str, event: dict, *, instance: int = 0) -> Any:
        """One invocation; ``instance`` > 0: another container (its own copy of the handler module)."""
        handler = self.handlers[function] if instance == 0 else self._handler(function, instance)
        return handler(event, self.context(function))

    def _handler(self, function: str, instance: int) -> Callable[[dict, Any], Any]:
        return load_handler(self.functions[function], self.stack_name, instance)

    def drop(self, job: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.s3.put_object(Bucket=self.settings.inbox_bucket, Key=f"inbox/{job}/{name}", Body=data)

    def receive(self, queue_url: str, max_messages: int = 10, wait: int = 0) -> list[dict]:
        resp = self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=2,
        )
        return resp.get("Messages", [])

    def invoke_queue(
        self, function: str, queue_url: str, messages: list[dict] | None = None, *, instance: int = 0
    ) -> dict:
        """Deliver queue messages to a function as Lambda's event source mapping would (failed ones come
        back when their 2 s visibility runs out). A crash (``FunctionCrashed``) fails the batch and is
        raised again here, for the test to see."""
        messages = self.receive(queue_url) if messages is None else messages
        if not messages:
            return {"batchItemFailures": []}
        lid = next(lid for lid, url in self.provisioned.queue_urls.items() if url == queue_url)
        source = next(s for s in self.functions[function].sqs_sources if s.queue_logical_id == lid)
        batch = run_sqs_batch(
            lambda event: self.invoke(function, event, instance=instance),
            messages,
            sqs=self.sqs,
            queue_url=queue_url,
            queue_arn=self.provisioned.arn(lid),
            report_batch_item_failures=source.report_batch_item_failures,
        )
        if isinstance(batch.error, FunctionCrashed):
            raise batch.error
        return batch.batch_item_failures

    def submit_step(self) -> dict:
        return self.invoke_queue("submit", self.settings.intake_queue_url)

    def completion_step(self) -> dict:
        return self.invoke_queue("completion", self.settings.completion_queue_url)

    def stitch_step(self) -> dict:
        return self.invoke_queue("stitch", self.settings.stitch_queue_url)

    def poll_step(self) -> dict:
        rule = f"arn:aws:events:us-east-1:123456789012:rule/{self.stack_name}-PollerFunction-EveryMinute"
        return self.invoke("poller", scheduled_event(rule))

    # ---- observers: the table, the topic, the buckets -------------------------------------------------
    def job_items(self) -> list[dict]:
        """The job items as DynamoDB holds them (read straight from the table, as an observer)."""
        table = self.session.resource("dynamodb").Table(self.settings.jobs_table)
        items = table.scan(ConsistentRead=True)["Items"]
        return [i for i in items if str(i["pk"]).startswith("job#")]

    def raw_item(self, pk: str) -> dict | None:
        """One item of the table by its key, as DynamoDB holds it."""
        table = self.session.resource("dynamodb").Table(self.settings.jobs_table)
        return table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")

    def job(self, job_name: str) -> dict | None:
        runs = [i for i in self.job_items() if i["job_name"] == job_name]
        runs.sort(key=lambda i: i["created_at"])
        return runs[-1] if runs else None

    def latest_runs(self, job_names: Iterable[str]) -> dict[str, dict | None]:
        """What ``job`` answers for each of ``job_names``, from one scan of the table: for checks that
        look at many jobs every round of ``run_until`` (a scan per job per round is moto server work the
        round's own invocations wait behind)."""
        latest: dict[str, dict | None] = dict.fromkeys(job_names)
        for item in self.job_items():  # ``job``'s choice: the last of the runs sorted by created_at
            name, seen = item["job_name"], latest.get(item["job_name"])
            if name in latest and (seen is None or item["created_at"] >= seen["created_at"]):
                latest[name] = item
        return latest

    def run_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.submit_step()
            self.poll_step()
            self.completion_step()
            self.stitch_step()
            if done():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; jobs: {[(i['job_name'], i['status']) for i in self.job_items()]}")

    def run_until_final(self, job_name: str, timeout: float = 30.0) -> dict:
        def done() -> bool:
            item = self.job(job_name)
            return bool(item and item["status"] in FINAL and item.get("notified_at"))

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


def subscribe_notes_queue(session: boto3.session.Session, provisioned: Provisioned, stack_name: str) -> str:
    """A test-only extra: an SQS queue subscribed to the notification topic, to read what was published."""
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName=f"{stack_name}-notes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    session.client("sns").subscribe(TopicArn=provisioned.ref("NotifyTopic"), Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture
def emulator_config():
    return EmulatorConfig(api_keys=(API_KEY,), pending_s=0.1, running_s=0.4, render_preset="ultrafast")


@pytest.fixture
def template_parameters() -> dict[str, str]:
    """template.yaml parameter overrides (e.g. PushEnabled)."""
    return {}


@pytest.fixture
def secret_values() -> dict[str, str]:
    """What the template's secrets hold, by the variable that names them."""
    return {"DASHSCOPE_API_KEY_SECRET": API_KEY, "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_RAW}


@pytest.fixture
def env_overrides():
    return {}


@pytest.fixture
def pipeline(moto_url, monkeypatch, emulator_config, env_overrides, template_parameters, secret_values):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session()
    stack_name = f"it-{uuid.uuid4().hex[:10]}"
    provisioned = provision(
        session, stack_name=stack_name, parameters=template_parameters, secret_values=secret_values
    )
    provisioned.discard_s3_test_events()  # start each test with an empty intake queue
    notes = subscribe_notes_queue(session, provisioned, stack_name)
    emulator = EmulatorServer(emulator_config).start()
    env = dict(
        provisioned.environment,
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
    clock = FunctionClock(lambda: time.time() + offset[0])
    deps = build_deps(settings, session=session, timing=timing, clock=clock)
    functions = {short_name(fn): fn for fn in provisioned.functions.values()}
    pipeline = Pipeline(
        session=session,
        provisioned=provisioned,
        stack_name=stack_name,
        deps=deps,
        emulator=emulator,
        functions=functions,
        handlers={name: load_handler(fn, stack_name) for name, fn in functions.items()},
        notifications_queue=notes,
        clock_offset=offset,
        built=[deps],
    )
    pipeline.use(deps)
    try:
        yield pipeline
    finally:
        use_deps(None)
        pipeline.close()
        emulator.stop()


@pytest.fixture
def pair() -> dict[str, bytes]:
    return {"first.png": frame_png(RED), "last.png": frame_png(BLUE)}
