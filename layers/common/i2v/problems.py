"""RFC 9457 problem responses, shared by the API and callback functions."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from i2v.models import FieldError, RequestProblem

PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str = "",
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    return Response(status_code=status, content_type=PROBLEM, body=json.dumps(body), headers=headers)


def problem_for(exc: RequestProblem) -> Response[Any]:
    return problem(exc.status, exc.title, exc.detail, exc.errors)


def allowed_methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """The methods the app has a route for at `path` (none: an unknown path). Powertools keeps its routes
    in these attributes and answers any unrouted method with its not-found handler."""
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted({route.method for route in routes if route.rule.match(path)})


def not_routed(app: APIGatewayRestResolver) -> Response[Any]:
    """The answer for a request no route takes: 405 naming the methods the path has, else 404."""
    event = app.current_event
    allowed = allowed_methods(app, event.path)
    if allowed:
        return problem(
            405,
            "Method not allowed",
            f"{event.path} answers {', '.join(allowed)}, not {event.http_method}",
            headers={"Allow": ", ".join(allowed)},
        )
    return problem(404, "Not found", f"no route {event.http_method} {event.path}")
