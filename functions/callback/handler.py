"""Callback function: POST /v1/callbacks/{provider}/{task_id}?token=... from providers.

The body is never trusted: the token is checked, then the provider's own status API is asked.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from i2v.complete import on_callback
from i2v.models import RequestProblem
from i2v.problems import not_routed, problem_for
from i2v.runtime import Runtime

logger = Logger()
metrics = Metrics()
rt = Runtime.from_environment()
# Providers wait seconds for our answer: one short status query, else the sweeper asks later.
rt.client.budget = rt.settings.callback_status_budget_seconds
app = APIGatewayRestResolver()


app.not_found(lambda _: not_routed(app))


@app.post("/v1/callbacks/<provider>/<task_id>")
def callback(provider: str, task_id: str) -> Response[Any]:
    token = app.current_event.get_query_string_value("token", "") or ""
    try:
        body = (app.current_event.decoded_body or "").encode()
    except ValueError:  # not base64 of UTF-8 text: the body is only ever a hint, and this one says nothing
        body = b""
    try:
        task = on_callback(rt, provider, task_id, token, body, app.current_event.headers)
    except RequestProblem as exc:
        metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
        return problem_for(exc)
    return Response(
        status_code=200, content_type="application/json", body={"id": task.id, "status": task.status}
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
