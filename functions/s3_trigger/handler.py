"""S3 trigger function: an image put under uploads/<tenant>/ becomes a task.

S3 notifies an SQS queue (so failures retry and dead-letter); a direct S3 event works too, which is what
`sam local invoke -e events/s3_put.json` sends.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.batch import Record, partial_batch
from i2v.messages import UploadNotification
from i2v.runtime import Runtime
from i2v.uploads import from_upload

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()


def on_notification(notification: UploadNotification) -> None:
    for record in notification.Records:
        key = record.s3.object.plain_key
        task = from_upload(rt, record.s3.bucket.name, key, record.s3.object.version)
        logger.info("upload", key=key, task_id=task and task.id, status=task and task.status.value)


def record_handler(record: Record) -> None:
    on_notification(UploadNotification.model_validate_json(record["body"]))  # malformed: this record fails


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("Records", [{}])[0].get("eventSource") == "aws:s3":
        on_notification(UploadNotification.model_validate(event))
        return {"batchItemFailures": []}
    return partial_batch(event, record_handler)
