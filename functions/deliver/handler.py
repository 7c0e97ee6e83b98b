"""Deliver function (SQS): POSTs each ended task's signed webhook; failures come back later, slower."""

from typing import Any

import httpx
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.delivery import DeliveryFailed
from i2v.messages import DeliveryMessage
from i2v.notify import deliver
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()
# A failed attempt is logged in one line by i2v.notify; a batch of only failed attempts is answered as
# failures too (ReportBatchItemFailures), not raised with every record's traceback.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> str:
    message = DeliveryMessage.model_validate_json(record.body)  # malformed: this record fails, alone
    try:
        outcome = deliver(rt, message)
    except (DeliveryFailed, httpx.HTTPError):
        # Exponential backoff by hiding the message longer each time it comes back (the DLQ ends it).
        tries = int(record.attributes.approximate_receive_count)
        delay = min(rt.settings.delivery_backoff_seconds * 2 ** (tries - 1), 900)
        rt.sqs.change_message_visibility(
            QueueUrl=rt.settings.delivery_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=delay,
        )
        raise
    logger.info("webhook", task_id=message.task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
