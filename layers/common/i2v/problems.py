"""RFC 9457 problem responses, shared by the API and callback functions."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from i2v.models import FieldError, RequestProblem

PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str = "", errors: list[FieldError] | None = None
) -> Response[Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    return Response(status_code=status, content_type=PROBLEM, body=json.dumps(body))


def problem_for(exc: RequestProblem) -> Response[Any]:
    return problem(exc.status, exc.title, exc.detail, exc.errors)
