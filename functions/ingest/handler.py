"""Ingest function (SQS): copies a provider's result into S3, then marks the task succeeded."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.ingest import ingest
from i2v.messages import IngestMessage
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    message = IngestMessage.model_validate_json(record.body)  # malformed: this record fails, alone
    outcome = ingest(rt, message)
    logger.info("ingest", task_id=message.task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
