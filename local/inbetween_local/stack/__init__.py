"""The whole pipeline on one machine: moto server + the DashScope emulator + the functions in-process.

    with LocalStack() as stack:
        s3 = stack.boto3_session().client("s3", endpoint_url=stack.moto_url)
        s3.put_object(Bucket=stack.inbox_bucket, Key="inbox/shot/first.png", Body=...)
        ...
        job = stack.wait_for_job("shot", timeout=60)

Every resource comes from template.yaml (``provision``, the builder the integration tests and the bench
use too; see ``template`` and ``resources``); the functions get the template's environment with
intrinsics resolved to the local resources, plus local overrides (endpoints, short timings). The environment is process-global and ``get_settings``/``get_deps`` are cached per
process, so run one LocalStack per process at a time; ``stop()`` restores the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from .provision import Provisioned, provision
from .push import LocalPush, with_push
from .resources import Provisioner
from .runtime import LocalFunction, Scheduler, SqsPump
from .template import ACCOUNT_ID, REGION, REPO_ROOT, TEMPLATE_PATH, LocalTemplate, TemplateError

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_STATE_FILE",
    "REGION",
    "LocalStack",
    "LocalTemplate",
    "PortInUse",
    "StackOptions",
    "TemplateError",
    "fake_credentials",
]

DEFAULT_STATE_FILE = REPO_ROOT / ".inbetween-local.json"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Local clocks: short enough for a demo in seconds; each is an environment variable of inbetween.config.
LOCAL_TIMINGS = {
    "SETTLE_SECONDS": "1",
    "FIRST_POLL_DELAY_SECONDS": "1",
    "POLL_INTERVAL_SECONDS": "1",
    "POLL_BUDGET_SECONDS": "3",
    "NOTIFY_GRACE_SECONDS": "15",
    "COMPLETION_GRACE_SECONDS": "30",
    "SUBMIT_LEASE_SECONDS": "20",
}


def fake_credentials() -> dict[str, str]:
    return dict(FAKE_CREDENTIALS)


@dataclass
class StackOptions:
    stack_name: str = "inbetween-local"
    template_path: Path = TEMPLATE_PATH
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    moto_port: int = 0  # 0: an ephemeral port
    emulator_port: int = 0
    emulator_pending_s: float = 0.5
    emulator_running_s: float = 2.0
    emulator_config: Any = None  # an EmulatorConfig; its port and api_keys are set by the stack
    poller_period_s: float = 2.0  # the template's rate(1 minute), faster locally
    retry_visibility_s: int = 2  # failed SQS messages come back after this, not the queue's timeout
    timings: dict[str, str] = field(default_factory=lambda: dict(LOCAL_TIMINGS))
    environment: dict[str, str] = field(default_factory=dict)  # extra function environment
    log_level: str = "WARNING"  # the functions' Powertools log level
    # Fault injection (the fault suite); the defaults are Lambda's ordinary behaviour.
    sqs_concurrency: int = 1  # concurrent invocations per SQS event source (separate "containers")
    s3_event_copies: int = 1  # each S3 event notification is delivered this many times
    concurrent_schedules: int = (
        1  # invocations of each schedule that run at once (staggered by half a period)
    )
    # Provider push (stack/push.py): PushEnabled=true, the function URL on 127.0.0.1, emulator events.
    push: bool = False
    push_faults: Any = None  # an emulator PushConfig (drops, duplicates, delays, reordering)
    # Adapters wrapped around the functions' own (fault injection: a store that dies after a write, a
    # slow blob store): called once with the deps built from the stack's environment.
    wrap_deps: Callable[[Any], Any] | None = None


class LocalStack:
    def __init__(self, options: StackOptions | None = None, **overrides: Any):
        self.options = dataclasses.replace(options or StackOptions(), **overrides)
        if self.options.push:
            self.options = with_push(self.options)
        self.push: LocalPush | None = None
        self.template = LocalTemplate.load(
            self.options.template_path,
            stack_name=self.options.stack_name,
            parameters=self.options.parameters,
        )
        self.api_key = "sk-local-" + secrets.token_hex(8)
        self._moto: Any = None
        self._emulator: Any = None
        self._provisioner: Provisioner | None = None
        self._provisioned: Provisioned | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.functions: dict[str, LocalFunction] = {}
        self.pumps: list[SqsPump] = []
        self.schedulers: list[Scheduler] = []
        self.environment: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}
        self.deps: Any = None  # what the functions' get_deps answers (built from the stack's environment)
        self._started = False
        self._state_file: Path | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self._started:
            return self
        try:
            self._start_moto()
            self._start_emulator()
            self._provision()
            self._apply_environment()
            self._start_functions()
            if self.options.push:
                self.push = LocalPush(self)
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self.push is not None:
            self.push.stop()
            self.push = None
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._restore_environment()
        if self.deps is not None:
            self.deps.close()
            self.deps = None
        if self._state_file is not None:
            with contextlib.suppress(OSError):
                self._state_file.unlink()
            self._state_file = None
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        _serialize_moto_dynamodb()
        _announce_delete_markers()
        if self.options.moto_port:
            # ThreadedMotoServer waits forever when its thread cannot bind: check first
            _check_port_free(self.options.moto_port)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.options.moto_port, verbose=False)
        self._moto.start()

    def _start_emulator(self) -> None:
        from inbetween_local.emulator import EmulatorConfig, EmulatorServer

        base = self.options.emulator_config or EmulatorConfig(
            pending_s=self.options.emulator_pending_s, running_s=self.options.emulator_running_s
        )
        config = dataclasses.replace(base, port=self.options.emulator_port, api_keys=(self.api_key,))
        self._emulator = EmulatorServer(config).start()

    def _provision(self) -> None:
        # the one builder of the template's resources (the integration tests and the bench use it too)
        self._provisioned = provision(
            self.client,
            template=self.template,
            secret_values={"DASHSCOPE_API_KEY_SECRET": self.api_key},
        )
        self._provisioner = self._provisioned.provisioner

    def _function_environment(self) -> dict[str, str]:
        if self._provisioned is None:
            raise RuntimeError("the local stack is not started")
        env = dict(self._provisioned.environment)  # the template's, resolved to the local resources
        env.update(
            {
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                **FAKE_CREDENTIALS,
                "PROVIDER_BASE_URL": self.emulator_url,
                "ALLOW_LOCAL_WEBHOOKS": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": self.options.log_level,
                **self.options.timings,
                **self.options.environment,
            }
        )
        return env

    def _apply_environment(self) -> None:
        from inbetween.config import get_settings
        from inbetween.wiring import deps_from_environment, use_deps

        self.environment = self._function_environment()
        removed = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
        for name in (*self.environment, *removed):
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in removed:
            os.environ.pop(name, None)
        os.environ.update(self.environment)
        get_settings.cache_clear()
        use_deps(None)
        # Build the clients now, while the environment is ours (tests may change it between calls). The
        # functions get them per invocation, so a test's own deps in this process do not reach them.
        deps = deps_from_environment()
        self.deps = self.options.wrap_deps(deps) if self.options.wrap_deps is not None else deps

    def _restore_environment(self) -> None:
        if not self._saved_env:
            return
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        with contextlib.suppress(ImportError):
            from inbetween.config import get_settings
            from inbetween.wiring import use_deps

            get_settings.cache_clear()
            use_deps(None)

    def _start_functions(self) -> None:
        # Powertools warns on every invocation that emits no metric; locally that is only noise.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        sqs = self.client("sqs")
        for fn in self.template.functions():
            function = LocalFunction(fn, self.options.stack_name, deps=self.deps)
            self.functions[fn.logical_id] = function

            def instance_of(i: int, fn=fn, function=function) -> LocalFunction:
                return (
                    function
                    if i == 0
                    else LocalFunction(fn, self.options.stack_name, instance=i, deps=self.deps)
                )

            for source in fn.sqs_sources:
                for i in range(max(1, self.options.sqs_concurrency)):
                    pump = SqsPump(
                        instance_of(i),
                        source,
                        sqs=sqs,
                        queue_url=self.resolve({"Ref": source.queue_logical_id}),
                        queue_arn=self.resolve({"Fn::GetAtt": [source.queue_logical_id, "Arn"]}),
                        retry_visibility_s=self.options.retry_visibility_s,
                        stopping=self._stopping,
                        event_copies=self.options.s3_event_copies,
                        instance=i,
                    )
                    self.pumps.append(pump)
            for schedule in fn.schedules:
                for i in range(max(1, self.options.concurrent_schedules)):
                    scheduler = Scheduler(
                        instance_of(i),
                        f"{self.options.stack_name}-{fn.logical_id}-{schedule.name}",
                        self.options.poller_period_s,
                        self._stopping,
                        instance=i,
                    )
                    self.schedulers.append(scheduler)
        from inbetween.observability import logger

        logger.setLevel(self.options.log_level)
        self._threads = [*self.pumps, *self.schedulers]
        for thread in self._threads:
            thread.start()

    # ---- addresses and names ------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if self._provisioner is None:
            raise RuntimeError("the local stack is not started")
        return self._provisioner.resolve(value)

    @property
    def moto_url(self) -> str:
        if self._moto is None:
            raise RuntimeError("the local stack is not started")
        host, port = self._moto.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def emulator_url(self) -> str:
        if self._emulator is None:
            raise RuntimeError("the local stack is not started")
        return self._emulator.base_url

    @property
    def emulator(self) -> Any:
        return self._emulator

    @property
    def outputs(self) -> dict[str, str]:
        """The template's Outputs, resolved to the local resources."""
        if self._provisioned is None:
            raise RuntimeError("the local stack is not started")
        return self._provisioned.outputs

    @property
    def inbox_bucket(self) -> str:
        return self.outputs["InboxBucketName"]

    @property
    def output_bucket(self) -> str:
        return self.outputs["OutputBucketName"]

    @property
    def table_name(self) -> str:
        return self.outputs["JobsTableName"]

    @property
    def topic_arn(self) -> str:
        return self.outputs["NotifyTopicArn"]

    @property
    def queue_urls(self) -> dict[str, str]:
        return {lid: self.resolve({"Ref": lid}) for lid in self.template.logical_ids("AWS::SQS::Queue")}

    @property
    def webhook_secret(self) -> str:
        """The ``whsec_`` form of the stack's webhook signing secret (for a receiver)."""
        value = self.client("secretsmanager").get_secret_value(
            SecretId=self.outputs["WebhookSigningSecretArn"]
        )["SecretString"]
        return value if value.startswith("whsec_") else "whsec_" + value

    # ---- clients and helpers ------------------------------------------------------------------------
    def boto3_session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=REGION, **_session_credentials())

    def client(self, service: str, **kwargs: Any) -> Any:
        config = Config(signature_version="s3v4") if service == "s3" else None
        return self.boto3_session().client(service, endpoint_url=self.moto_url, config=config, **kwargs)

    def subscribe_queue(self, name: str = "notifications") -> str:
        """A new SQS queue subscribed to the notification topic (raw delivery off: SNS envelopes).
        Returns its URL; read it with ``notifications``."""
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=f"{self.options.stack_name}-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.client("sns").subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)
        return url

    def notifications(self, queue_url: str, *, wait_s: int = 1) -> list[dict[str, Any]]:
        """SNS envelopes waiting in a subscribed queue (each with Message, Subject, MessageAttributes)."""
        sqs = self.client("sqs")
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
        out = []
        for message in resp.get("Messages", []):
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    def job_store(self) -> Any:
        from inbetween.aws.jobs_table import DynamoJobStore

        return DynamoJobStore(self.client("dynamodb"), self.table_name)

    def latest_job(self, job_name: str) -> Any:
        runs = [job for job in self.job_store().recent_jobs(limit=1000) if job.job_name == job_name]
        return runs[0] if runs else None

    def wait_for_job(self, job_name: str, timeout: float = 60.0, *, poll_s: float = 0.25) -> Any:
        """The job's latest run once it is final; TimeoutError (with its last state) otherwise."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.latest_job(job_name)
            if job is not None and job.status.is_final:
                return job
            time.sleep(poll_s)
        state = job.status.value if job is not None else "no job yet"
        raise TimeoutError(f"job {job_name!r} did not finish within {timeout:.0f} s (last state: {state})")

    def state(self) -> dict[str, Any]:
        outputs = self.outputs
        return {
            "pid": os.getpid(),
            "stack_name": self.options.stack_name,
            "endpoint_url": self.moto_url,
            "emulator_url": self.emulator_url,
            "region": REGION,
            "inbox_bucket": outputs["InboxBucketName"],
            "output_bucket": outputs["OutputBucketName"],
            "jobs_table": outputs["JobsTableName"],
            "topic_arn": outputs["NotifyTopicArn"],
            "webhook_secret_arn": outputs["WebhookSigningSecretArn"],
            "queues": self.queue_urls,
        }

    def write_state(self, path: Path = DEFAULT_STATE_FILE) -> Path:
        """Where other ``inbetween`` commands find this stack; removed again by ``stop()``."""
        path = Path(path)
        path.write_text(json.dumps(self.state(), indent=2) + "\n")
        self._state_file = path
        return path


_DYNAMODB_LOCK = threading.RLock()


def _serialize_moto_dynamodb() -> None:
    """DynamoDB applies each request atomically: a conditional write's check and write are one step, and
    a transaction is all-or-nothing against concurrent writers. moto's server threads do not lock, so two
    concurrent conditional updates can both pass (the fault suite saw a slot counter released twice).
    One lock around moto's DynamoDB actions (in this process) restores the guarantee the pipeline
    relies on."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_inbetween_serialized", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return unlocked(self)

    call_action._inbetween_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


DELETE_MARKER_EVENT = "s3:ObjectRemoved:DeleteMarkerCreated"


def _announce_delete_markers() -> None:
    """S3 sends ``ObjectRemoved:DeleteMarkerCreated`` when a plain delete in a versioned bucket (the
    inbox is one) leaves a delete marker; moto (5.x) sends nothing then (only for a version's permanent
    delete, ``ObjectRemoved:Delete``). Locally we send what S3 sends, to the bucket's queue
    notifications, so that deleting a job's inputs cancels it here as it does on AWS (docs/cancel.md).
    The record is S3's for a delete marker: the key, the marker's version id and a sequencer, no size
    and no ETag."""
    from urllib.parse import quote_plus

    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    if getattr(S3Backend._set_delete_marker, "_inbetween_announced", False):
        return
    unannounced = S3Backend._set_delete_marker

    def _set_delete_marker(self: Any, bucket_name: str, key_name: str) -> Any:
        marker = unannounced(self, bucket_name, key_name)
        bucket = self.get_bucket(bucket_name)
        config = bucket.notification_configuration
        for notification in config.queue if config is not None else ():
            if not notification.matches(DELETE_MARKER_EVENT, key_name):
                continue
            record = {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": bucket.region_name,
                "eventTime": iso_8601_datetime_with_milliseconds(),
                "eventName": DELETE_MARKER_EVENT.removeprefix("s3:"),
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": notification.id,
                    "bucket": {"name": bucket.name, "arn": bucket.arn},
                    "object": {
                        "key": quote_plus(key_name),
                        "versionId": marker.version_id,
                        "sequencer": f"{time.time_ns():X}",
                    },
                },
            }
            arn_parts = notification.arn.split(":")
            notifications._send_sqs_message(
                self.account_id, {"Records": [record]}, arn_parts[-1], arn_parts[3]
            )
        return marker

    _set_delete_marker._inbetween_announced = True  # type: ignore[attr-defined]
    S3Backend._set_delete_marker = _set_delete_marker  # type: ignore[method-assign]


class PortInUse(RuntimeError):
    pass


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(f"port {port} on 127.0.0.1 is in use; pick another with --port") from None


def _session_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
