"""ProviderEventsFunction: DashScope task-finished events (Alibaba Cloud EventBridge -> function URL)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import push
from inbetween.wiring import get_deps


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps(context)
    return push.handle_request(deps, push.request_from_function_url(event)).to_lambda()
