"""PollerFunction: every minute, everything that is due (provider tasks, admissions, retries)."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import polling
from inbetween.wiring import get_deps

# the tick stops this long before the function's timeout: what is due then is the next tick's
SAFETY_MARGIN_S = 15.0


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = get_deps(context)
    remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_S
    report = polling.tick(deps, budget_s=max(0.0, min(deps.settings.poll_budget_s, remaining)))
    logger.info("poll tick", extra=asdict(report))
    return asdict(report)
