"""Ingest function (SQS): copies a provider's result into S3, then marks the task succeeded."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.service import gateway

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def ingest(record: SQSRecord) -> str:
    message = json.loads(record.body)
    outcome = gateway().ingest(message["task_id"], message["result_url"])
    logger.info("ingest", task_id=message["task_id"], outcome=outcome)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=ingest, processor=processor, context=context)
