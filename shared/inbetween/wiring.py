"""The only place clients are built: once per container, lazily (so moto can be active first)."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import boto3
import httpx
from botocore.config import Config

from inbetween.aws.jobs_table import JobStore
from inbetween.aws.s3_blobs import Blobs
from inbetween.aws.secrets import SecretReader, webhook_secret_value
from inbetween.aws.sqs_queues import Queues
from inbetween.config import Settings, Timing, get_settings
from inbetween.deps import Deps

VIDEO_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)


def build_deps(
    settings: Settings,
    *,
    session: Any = None,
    timing: Timing | None = None,
    clock=time.time,
    sleep=time.sleep,
    provider_transport: httpx.BaseTransport | None = None,
) -> Deps:
    from inbetween.provider.client import DashScopeClient
    from inbetween.webhooks import AddressPolicy, WebhookSender

    session = session or boto3.session.Session()
    retries = Config(retries={"max_attempts": 5, "mode": "standard"})
    s3 = session.client("s3", config=retries.merge(Config(signature_version="s3v4")))
    secrets = SecretReader(session.client("secretsmanager", config=retries))

    def provider():
        http = httpx.Client(transport=provider_transport) if provider_transport else None
        return DashScopeClient(
            api_key=lambda: secrets.get(settings.api_key_secret),
            base_url=settings.provider_base_url,
            http=http,
        )

    def webhook_sender():
        local = settings.allow_local_webhooks
        return WebhookSender(
            secret=lambda: webhook_secret_value(secrets.get(settings.webhook_secret_name)),
            policy=AddressPolicy(allow_loopback=local, allow_http=local),
        )

    return Deps(
        settings=settings,
        store=JobStore(session.client("dynamodb", config=retries), settings.jobs_table, clock=clock),
        blobs=Blobs(s3),
        queues=Queues(
            session.client("sqs", config=retries),
            intake_url=settings.intake_queue_url,
            completion_url=settings.completion_queue_url,
        ),
        sns=session.client("sns", config=retries),
        provider_factory=provider,
        webhook_sender_factory=webhook_sender,
        http_factory=lambda: httpx.Client(timeout=VIDEO_TIMEOUT, follow_redirects=False),
        timing=timing or Timing.from_env(),
        clock=clock,
        sleep=sleep,
    )


@lru_cache(maxsize=1)
def get_deps() -> Deps:
    return build_deps(get_settings())
