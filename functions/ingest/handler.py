"""Ingest function (SQS): copies a provider's result into S3, then marks the task succeeded."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.ingest import ingest
from i2v.messages import IngestRecord
from i2v.runtime import Runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()
rt = Runtime.from_environment()
processor = BatchProcessor(event_type=EventType.SQS, model=IngestRecord)


def record_handler(record: IngestRecord) -> str:
    outcome = ingest(rt, record.body)
    logger.info("ingest", task_id=record.body.task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
