"""API function: POST/GET /v1/videos, cancel, uploads, providers, OpenAPI. Routes live in i2v.api."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.api import create_app
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()
# No provider call of this function may outlive API Gateway's 29 s (a cancel's call to the provider included;
# what it cannot finish in time stays in the task's outbox for the sweeper).
rt.client.budget = rt.settings.create_deadline_seconds
app = create_app(rt)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
