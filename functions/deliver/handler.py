"""Deliver function (SQS): POSTs each ended task's signed webhook; failures come back later, slower."""

from typing import Any

import httpx
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.batch import Record, partial_batch
from i2v.delivery import DeliveryFailed
from i2v.messages import DeliveryMessage
from i2v.notify import deliver
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()


def record_handler(record: Record) -> str:
    message = DeliveryMessage.model_validate_json(record["body"])  # malformed: this record fails, alone
    try:
        outcome = deliver(rt, message)
    except (DeliveryFailed, httpx.HTTPError):
        # Exponential backoff by hiding the message longer each time it comes back (the DLQ ends it).
        tries = int(record["attributes"]["ApproximateReceiveCount"])
        delay = min(rt.settings.delivery_backoff_seconds * 2 ** (tries - 1), 900)
        rt.sqs.change_message_visibility(
            QueueUrl=rt.settings.delivery_queue_url,
            ReceiptHandle=record["receiptHandle"],
            VisibilityTimeout=delay,
        )
        raise
    logger.info("webhook", task_id=message.task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A failed attempt is logged in one line by i2v.notify, not again with its traceback.
    return partial_batch(event, record_handler, told=(DeliveryFailed, httpx.HTTPError))
