"""What the use cases need, bundled and typed by the ports; built once per container by ``wiring``
(or by tests, from in-memory fakes). Immutable: to change one part, build another with
``dataclasses.replace``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from inbetween.config import Settings, Timing
from inbetween.ports import (
    Blobs,
    Clock,
    JobStore,
    Notifier,
    Provider,
    Queues,
    QuotaSource,
    SecretSource,
    VideoSource,
    WebhookSender,
)


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    timing: Timing
    store: JobStore
    blobs: Blobs
    queues: Queues
    notifier: Notifier
    provider: Provider
    quotas: QuotaSource
    videos: VideoSource
    webhooks: WebhookSender
    clock: Clock
    push_secret: SecretSource
    # seconds left in the current invocation (Lambda's deadline); unbounded outside Lambda
    time_left_s: Callable[[], float] = lambda: math.inf

    def close(self) -> None:
        """Close the HTTP clients (the AWS clients hold no sockets worth closing)."""
        self.provider.close()
        self.videos.close()
        self.webhooks.close()
