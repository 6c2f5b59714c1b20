"""ProviderEventsFunction: DashScope task-finished events (Alibaba Cloud EventBridge -> function URL)."""

from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import push
from inbetween.wiring import get_deps


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    deps = get_deps()
    request = push.request_from_function_url(event)
    return push.handle_request(deps, request, secret=push.push_secret(deps)).to_lambda()
