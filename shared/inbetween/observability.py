"""The one logger, metrics and tracer of the pipeline (Powertools). Handlers decorate with them.

The Tracer needs aws-xray-sdk, which pulls botocore into the layer (tens of MB that the Lambda runtime
already has, and a second botocore shadowing the runtime's). So the layer does not ship it: where the SDK
is missing, the tracer is a pass-through and Lambda's active tracing still records every invocation.
Deploy with the managed Powertools layer (which carries the SDK) to get subsegments as well.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="inbetween")
metrics = Metrics(namespace="Inbetween", service="inbetween")

_F = TypeVar("_F", bound=Callable[..., Any])


class TracerLike(Protocol):
    """What the handlers use of a tracer: decorators that keep the decorated function's signature."""

    def capture_lambda_handler(self, handler: _F, /) -> _F: ...

    def capture_method(self, method: _F, /) -> _F: ...


class _PassThroughTracer:
    def capture_lambda_handler(self, handler: _F, /) -> _F:
        return handler

    def capture_method(self, method: _F, /) -> _F:
        return method


tracer: TracerLike
if importlib.util.find_spec("aws_xray_sdk") is not None:
    from aws_lambda_powertools import Tracer

    # Powertools types capture_lambda_handler as returning Callable[..., Any]; its wrapper (functools.wraps)
    # takes and returns what the handler does, so the narrower protocol holds.
    tracer = cast(TracerLike, Tracer(service="inbetween", patch_modules=["botocore", "httpx"]))
else:  # pragma: no cover - the layer's case
    tracer = _PassThroughTracer()

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=max(0.0, value))


def percent(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Percent, value=max(0.0, value))


def amount(name: str, value: float) -> None:
    """A plain quantity, such as a cost in the billing currency (CloudWatch has no currency unit)."""
    metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=value)
