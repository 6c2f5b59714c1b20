"""CompletionFunction: finished tasks -> stored, verified videos with their pictures, and notifications;
webhook retries.

It has the media layer (PyAV) for the pictures: a stored video's poster and contact sheet are made on
the function's ephemeral storage (/tmp, tempfile's default) by ``PyAvClipPictures``
(``inbetween.usecases.completion``).
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from inbetween.domain.messages import CompleteJob, completion_item
from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import completion, webhook_delivery
from inbetween.wiring import get_deps
from inbetween_media.clip_stills import PyAvClipPictures

processor = BatchProcessor(event_type=EventType.SQS)
# once per container: a stored clip's poster (its middle frame) and one-row contact sheet
PICTURES = PyAvClipPictures()


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    deps = get_deps()
    item = completion_item(record.body)
    if isinstance(item, CompleteJob):
        logger.set_correlation_id(item.job_id)
        outcome: str = completion.complete(
            deps,
            item.job_id,
            PICTURES,
            time_left_s=lambda: lambda_context.get_remaining_time_in_millis() / 1000,
        )
    else:
        outcome = webhook_delivery.attempt(deps, item.delivery_id)
    logger.info("completion", extra={"item": str(item), "outcome": outcome})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    get_deps(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
