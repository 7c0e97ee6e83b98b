"""Sweeper function (scheduled): polls due tasks, submits again, times out the overdue, drains outboxes."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.runtime import Runtime
from i2v.sweep import sweep

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    outcomes = sweep(rt)
    for outcome, count in outcomes.items():
        metrics.add_metric(name=f"Swept_{outcome}", unit=MetricUnit.Count, value=count)
    logger.info("sweep done", outcomes=dict(outcomes))
    return dict(outcomes)
