"""Poll function (SQS): one turn per queued task — a timed poll or the sweep's overflow — then the messages
for the next turns of the tasks still running (see i2v.polls).

The batch's turns run at once (`take_turns`) and their next messages go out in one SendMessageBatch, which
handling one record after another cannot do: each record is only read here, and a turn never raises, so the
only failed record is one whose body is not a PollMessage, reported back as SQS's partial batch response.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.batch import Record, partial_batch
from i2v.messages import PollMessage
from i2v.runtime import Runtime
from i2v.sweep import take_turns

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ids: list[str] = []

    def read(record: Record) -> None:
        ids.append(PollMessage.model_validate_json(record["body"]).task_id)  # malformed: this record fails

    answer = partial_batch(event, read)
    for outcome, count in take_turns(rt, ids).items():
        metrics.add_metric(name=f"Turn_{outcome}", unit=MetricUnit.Count, value=count)
    return answer
