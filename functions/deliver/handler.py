"""Deliver function (SQS): POSTs each finished task's signed webhook; failures come back later, slower."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.delivery import DeliveryFailed
from i2v.service import gateway, sqs

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def deliver(record: SQSRecord) -> str:
    task_id = json.loads(record.body)["task_id"]
    try:
        outcome = gateway().deliver(task_id)
    except DeliveryFailed:
        # Exponential backoff by hiding the message longer each time it comes back (the DLQ ends it).
        tries = int(record.attributes.approximate_receive_count)
        delay = min(gateway().settings.delivery_backoff_seconds * 2 ** (tries - 1), 900)
        sqs().change_message_visibility(
            QueueUrl=gateway().settings.delivery_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=delay,
        )
        raise
    logger.info("webhook", task_id=task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
