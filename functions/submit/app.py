"""SubmitFunction: S3 notifications (via the intake queue) -> jobs queued for a provider slot (or, for
deletes, cancelled); admissions when a push event freed a slot; ``inbetween cancel`` requests."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from inbetween.domain.messages import AdmitWaiting, CancelRequest, ObjectCreated, ObjectRemoved, intake_items
from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import admission, cancel, intake
from inbetween.wiring import get_deps

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    deps = get_deps()
    for item in intake_items(record.body):
        if isinstance(item, ObjectCreated):
            outcome: str = intake.on_object_created(deps, item.bucket, item.key)
        elif isinstance(item, AdmitWaiting):
            outcome = f"admitted {admission.admit(deps, item.model, lane=item.lane)}"
        elif isinstance(item, ObjectRemoved):
            outcome = cancel.on_object_removed(deps, item.bucket, item.key)
        elif isinstance(item, CancelRequest):
            outcome = f"cancel {cancel.on_request(deps, item.target)}"
        else:
            outcome = intake.examine(deps, item.job_name)
        logger.info("intake", extra={"item": str(item), "outcome": outcome})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    get_deps(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
