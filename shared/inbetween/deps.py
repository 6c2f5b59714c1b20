"""What the use cases need, bundled; built once per container by ``wiring`` (or by tests, by hand)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inbetween.aws.jobs_table import JobStore
from inbetween.aws.s3_blobs import Blobs
from inbetween.aws.sqs_queues import Queues
from inbetween.config import Settings, Timing


@dataclass
class Deps:
    settings: Settings
    store: JobStore
    blobs: Blobs
    queues: Queues
    sns: Any  # boto3 SNS client
    provider_factory: Callable[[], Any]  # -> DashScopeClient, built on first use (needs the API key)
    webhook_sender_factory: Callable[[], Any]  # -> WebhookSender
    http_factory: Callable[[], Any]  # -> httpx.Client for downloading videos
    timing: Timing = field(default_factory=Timing)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _provider: Any = None
    _webhooks: Any = None
    _http: Any = None

    @property
    def provider(self) -> Any:
        if self._provider is None:
            self._provider = self.provider_factory()
        return self._provider

    @property
    def webhooks(self) -> Any:
        if self._webhooks is None:
            self._webhooks = self.webhook_sender_factory()
        return self._webhooks

    @property
    def http(self) -> Any:
        if self._http is None:
            self._http = self.http_factory()
        return self._http
