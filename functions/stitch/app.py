"""StitchFunction: a film run whose shots are all stored -> film.mp4, its poster and contact sheet.

The only function with the media layer (PyAV): the clips are joined on the function's ephemeral storage
(/tmp, tempfile's default), verified, stored, and the run announced (``inbetween.usecases.stitching``).
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from inbetween.domain.messages import stitch_item
from inbetween.observability import logger, metrics, tracer
from inbetween.usecases import stitching
from inbetween.wiring import get_deps
from inbetween_media.film_stitcher import PyAvFilmStitcher

processor = BatchProcessor(event_type=EventType.SQS)
# once per container: libx264 veryfast CRF 19, 30 fps films
STITCHER = PyAvFilmStitcher()


def record_handler(record: SQSRecord) -> None:
    deps = get_deps()
    item = stitch_item(record.body)
    logger.set_correlation_id(item.run_id)
    outcome = stitching.stitch(deps, item.run_id, STITCHER)
    logger.info("stitch", extra={"film_run": item.run_id, "outcome": outcome.value})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    get_deps(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
