"""S3 trigger function: an image put under uploads/<tenant>/ becomes a task.

S3 notifies an SQS queue (so failures retry and dead-letter); a direct S3 event works too, which is what
`sam local invoke -e events/s3_put.json` sends.
"""

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.service import gateway

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def on_s3_records(records: list[dict[str, Any]]) -> None:
    for record in records:
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])  # keys in S3 events are URL-encoded
        task = gateway().create_from_upload(s3["bucket"]["name"], key, s3["object"].get("eTag", ""))
        logger.info("upload", key=key, task_id=task and task.id, status=task and task.status.value)


def on_sqs_record(record: SQSRecord) -> None:
    body = json.loads(record.body)
    on_s3_records(body.get("Records", []))  # s3:TestEvent has no Records


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("Records", [{}])[0].get("eventSource") == "aws:s3":
        on_s3_records(event["Records"])
        return {"batchItemFailures": []}
    return process_partial_response(
        event=event, record_handler=on_sqs_record, processor=processor, context=context
    )
