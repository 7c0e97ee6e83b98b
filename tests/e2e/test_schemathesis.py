"""Schemathesis over /openapi.json against the local stack: every operation, bounded examples of valid and
of invalid requests, the bearer key, and create bodies whose media are the stack's own uploaded image so
they get past probing to a submit.

Whatever it sends, no answer is a 5xx, and every answer is one the document declares: its status code,
its content type and its body's schema. Requests go where the document's own (relative) server says.
What the document calls valid is what the API can take: no create without media, no cursor of another shape.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from i2v_local.simulator import Faults, Simulator
from i2v_local.stack import LocalStack

ROUTES = {
    "POST /v1/videos",
    "GET /v1/videos",
    "GET /v1/videos/{task_id}",
    "POST /v1/videos/{task_id}/cancel",
    "POST /v1/uploads",
    "GET /v1/webhooks/secret",
    "GET /v1/providers",
    "GET /v1/usage",
}
# ignored_auth: the document's bearer scheme is enforced (no key or a wrong key is refused).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}
# Operations whose inputs have a schema that can be broken (the others take only strings or nothing).
NEGATABLE = {"POST /v1/videos", "POST /v1/uploads", "GET /v1/videos", "GET /v1/usage"}
CURSOR = re.compile(r"[A-Za-z0-9_-]*")  # base64url, as i2v.store makes them


@pytest.fixture
def stalled(sims: dict[str, Simulator]) -> None:
    # Accepted jobs stay queued: this is about what the API answers, not rendering.
    for simulator in sims.values():
        simulator.faults = Faults(stall=True)


def reachable(body: Any, image_url: str) -> Any:
    """A generated valid create body made to lead somewhere: its media the stack's uploaded image (first
    frame, and last frame where it has one), its providers `local`. Generated URLs and names lead nowhere."""
    if not isinstance(body, dict):
        return body
    reached = {k: v for k, v in body.items() if k not in ("video_url", "audio_url", "mode", "webhook_url")}
    reached["image_url"] = image_url
    if "last_frame_url" in reached:
        reached["last_frame_url"] = image_url
    if "provider" in reached:
        reached["provider"] = "local"
    return reached


def test_every_answer_is_declared_and_none_is_a_5xx(stack: LocalStack, image_url: str, stalled: None) -> None:
    # Loaded from the served document and driven here: schemathesis' lazy pytest loader
    # (schemathesis.pytest.from_fixture) does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    # An operation schemathesis cannot load is an Err, whose missing .ok() fails the test.
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == ROUTES
    seen: Counter[str] = Counter()
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            if (
                mode is GenerationMode.NEGATIVE
                and f"{operation.method.upper()} {operation.path}" not in NEGATABLE
            ):
                continue
            exercise(operation, mode, examples, stack, image_url, seen)
    # Valid bodies got past validation, probing and routing to a provider, and invalid ones were refused.
    assert seen["POST /v1/videos 202"] >= 10, seen
    assert seen["POST /v1/videos 422"] >= 5, seen
    assert seen["POST /v1/uploads 201"] >= 10, seen


def valid_by_the_document(case: schemathesis.Case[Any]) -> None:
    """What the document lets through as valid is not what the API refuses outright."""
    body, cursor = case.body, (case.query or {}).get("cursor")
    if (case.method, case.path) == ("POST", "/v1/videos"):
        assert isinstance(body, dict)
        assert body.get("image_url") or body.get("video_url"), body
    if (case.method, case.path) == ("GET", "/v1/videos") and cursor is not None:
        assert CURSOR.fullmatch(str(cursor)), cursor


def exercise(
    operation: Any, mode: GenerationMode, examples: int, stack: LocalStack, image_url: str, seen: Counter[str]
) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers(case: schemathesis.Case[Any]) -> None:
        if mode is GenerationMode.POSITIVE:
            valid_by_the_document(case)
        if case.method == "POST" and case.path == "/v1/videos" and mode is GenerationMode.POSITIVE:
            case.body = reachable(case.body, image_url)
        # No base_url: the document's server, relative to where the document was loaded from.
        response = case.call_and_validate(headers={"Authorization": f"Bearer {stack.api_key}"}, checks=CHECKS)
        seen[f"{case.method} {case.path} {response.status_code}"] += 1

    answers()
