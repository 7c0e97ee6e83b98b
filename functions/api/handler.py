"""API function: POST/GET /v1/videos, cancel, uploads, providers, OpenAPI. Routes live in i2v.api."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.api import create_app
from i2v.runtime import Runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = create_app(Runtime.from_environment())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
