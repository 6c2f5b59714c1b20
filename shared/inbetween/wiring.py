"""The only place clients and secret readers are built: once per container, lazily (so moto can be
active first, and a function pays at cold start only for the clients it builds).

Handlers call ``get_deps(context)``: the first call builds everything from the environment, every call
binds the invocation's remaining time, which bounds the provider client's retries. ``use_deps`` puts
other deps in place for the whole process (tests hand in their own); ``invocation_deps`` for one
invocation only (the local stack runs its functions so, and can share a process with a test's own).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import boto3
import httpx
from botocore.config import Config

from inbetween.aws.jobs_table import DynamoJobStore
from inbetween.aws.s3_blobs import S3Blobs
from inbetween.aws.secrets import SecretReader, webhook_secret_value
from inbetween.aws.sns_notifier import SnsNotifier
from inbetween.aws.sqs_queues import SqsQueues
from inbetween.clock import FunctionClock, SystemClock
from inbetween.config import Settings, Timing, get_settings
from inbetween.deps import Deps
from inbetween.errors import ConfigError
from inbetween.ports import Clock
from inbetween.provider.client import DashScopeClient
from inbetween.provider.quotas import LiveQuotas
from inbetween.provider.video_download import HttpVideoSource
from inbetween.webhooks.guard import AddressPolicy
from inbetween.webhooks.sender import WebhookSender

AWS_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})
# The provider events function answers an HTTP request: its one secret read must fail fast.
PUSH_SECRET_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=5
)


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class InvocationDeadline:
    """Seconds left in the current invocation, for the provider client's retry budget and for admission
    (which starts no create the invocation might not outlive).

    One invocation runs at a time in a Lambda container; the local stack may run several containers of
    a function in one process, each invocation on a thread of its own: the thread that bound a deadline
    sees its own, any other thread (a poller's workers) the latest one bound."""

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._own = threading.local()

    def bind(self, context: LambdaContext | None) -> None:
        if context is not None:
            self._deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
            self._own.deadline = self._deadline

    def __call__(self) -> float:
        deadline = getattr(self._own, "deadline", self._deadline)
        return math.inf if deadline is None else deadline - time.monotonic()


def build_deps(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    timing: Timing | None = None,
    clock: Clock | None = None,
    provider_transport: httpx.BaseTransport | None = None,
    video_transport: httpx.BaseTransport | None = None,
    time_left_s: InvocationDeadline | None = None,
) -> Deps:
    session = session or boto3.session.Session()
    clock = clock or SystemClock()
    s3 = session.client("s3", config=AWS_RETRIES.merge(Config(signature_version="s3v4")))
    secrets = SecretReader(session.client("secretsmanager", config=AWS_RETRIES))
    local = settings.allow_local_webhooks

    def push_secret() -> str:
        if not settings.push_secret_name:
            raise ConfigError("PUSH_SECRET_NAME is not set; the provider events function needs it")
        return _push_secret_reader(session).get(settings.push_secret_name)

    provider = DashScopeClient(
        api_key=lambda: secrets.get(settings.api_key_secret),
        base_url=settings.provider_base_url,
        http=httpx.Client(transport=provider_transport) if provider_transport else None,
        time_left_s=time_left_s,
        sleep=clock.sleep,
    )
    return Deps(
        settings=settings,
        timing=timing or Timing.from_env(),
        store=DynamoJobStore(
            session.client("dynamodb", config=AWS_RETRIES), settings.jobs_table, clock=clock.now
        ),
        blobs=S3Blobs(s3),
        queues=SqsQueues(
            session.client("sqs", config=AWS_RETRIES),
            intake_url=settings.intake_queue_url,
            completion_url=settings.completion_queue_url,
            stitch_url=settings.stitch_queue_url,
        ),
        notifier=SnsNotifier(session.client("sns", config=AWS_RETRIES), settings.topic_arn),
        provider=provider,
        quotas=LiveQuotas(provider.get_quota, now=clock.now),
        videos=HttpVideoSource(
            httpx.Client(transport=video_transport, follow_redirects=False) if video_transport else None
        ),
        webhooks=WebhookSender(
            secret=lambda: webhook_secret_value(secrets.get(settings.webhook_secret_name)),
            policy=AddressPolicy(allow_loopback=local, allow_http=local),
        ),
        clock=clock,
        push_secret=push_secret,
        time_left_s=time_left_s or (lambda: math.inf),
    )


_push_readers: dict[int, SecretReader] = {}


def _push_secret_reader(session: Any) -> SecretReader:
    reader = _push_readers.get(id(session))
    if reader is None:
        reader = SecretReader(session.client("secretsmanager", config=PUSH_SECRET_CONFIG))
        _push_readers[id(session)] = reader
    return reader


_lock = threading.Lock()
_deps: Deps | None = None
_deadline = InvocationDeadline()
_invocation: ContextVar[Deps | None] = ContextVar("inbetween_invocation_deps", default=None)


def deps_from_environment() -> Deps:
    """Deps built from this process's environment, their provider bounded by the invocation's time."""
    return build_deps(get_settings(), time_left_s=_deadline)


def get_deps(context: LambdaContext | None = None) -> Deps:
    """The deps of this invocation: ``invocation_deps``' if set, else this container's, built from the
    environment on first use. Binds ``context``'s deadline."""
    global _deps
    _deadline.bind(context)
    override = _invocation.get()
    if override is not None:
        return override
    if _deps is None:
        with _lock:
            if _deps is None:
                _deps = deps_from_environment()
    return _deps


def use_deps(deps: Deps | None) -> None:
    """Put ``deps`` in place of the built ones (None: build again from the environment on next use)."""
    global _deps
    with _lock:
        _deps = deps


@contextmanager
def invocation_deps(deps: Deps) -> Iterator[None]:
    """``deps`` for what runs inside (in this thread): one invocation of a function."""
    token = _invocation.set(deps)
    try:
        yield
    finally:
        _invocation.reset(token)


__all__ = [
    "Deps",
    "FunctionClock",
    "InvocationDeadline",
    "build_deps",
    "deps_from_environment",
    "get_deps",
    "invocation_deps",
    "use_deps",
]
