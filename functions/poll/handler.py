"""Poll function (SQS): one turn per queued task — a timed poll or the sweep's overflow — each followed by
the message for that task's next turn (see i2v.polls)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.messages import PollMessage
from i2v.runtime import Runtime
from i2v.sweep import sweep_one

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    message = PollMessage.model_validate_json(record.body)  # malformed: this record fails, alone
    outcome = sweep_one(rt, message.task_id)  # never raises: a failed turn is the sweep's again when due
    metrics.add_metric(name=f"Turn_{outcome}", unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
