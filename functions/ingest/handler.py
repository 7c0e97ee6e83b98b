"""Ingest function (SQS): copies a provider's result into S3, then marks the task succeeded."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.batch import Record, partial_batch
from i2v.ingest import ingest
from i2v.messages import IngestMessage
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()


def record_handler(record: Record) -> str:
    message = IngestMessage.model_validate_json(record["body"])  # malformed: this record fails, alone
    outcome = ingest(rt, message)
    logger.info("ingest", task_id=message.task_id, outcome=outcome)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return partial_batch(event, record_handler)
