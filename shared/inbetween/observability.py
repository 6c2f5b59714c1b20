"""The one logger, metrics and tracer of the pipeline (Powertools). Handlers decorate with them."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="inbetween")
metrics = Metrics(namespace="Inbetween", service="inbetween")
tracer = Tracer(service="inbetween", patch_modules=["botocore", "httpx"])

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=max(0.0, value))
