"""Every function's Timeout follows from the work its settings give it, and every SQS queue's visibility
timeout from the Timeout of the function it feeds (template.yaml against i2v's settings and pacing)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from i2v import delivery, pacing
from i2v.config import Settings
from i2v.providers.registry import PROVIDERS
from i2v_local.aws import load_template
from i2v_local.simulator import simulator_for

ROOT = Path(__file__).resolve().parents[2]
API_GATEWAY_LIMIT = 29  # seconds API Gateway waits for a Lambda integration
MARGIN = 2  # seconds a function needs around its bounded work: its writes, its answer, a cold start's share


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(table_name="t", bucket_name="b")


def timeout(template: dict[str, Any], function: str) -> int:
    own = template["Resources"][function]["Properties"].get("Timeout")
    return int(own if own is not None else template["Globals"]["Function"]["Timeout"])


def sqs_sources(template: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(function, queue, batch size) for every SQS event source."""
    found = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                found.append((name, queue, int(event["Properties"].get("BatchSize", 10))))
    return found


def test_every_sqs_queue_hides_a_message_for_at_least_six_times_its_functions_timeout(
    template: dict[str, Any],
) -> None:
    # AWS's advice for SQS event sources: a message in flight stays invisible while its function (and the
    # poller's retries of a throttled invoke) may still be working on it, so it is not handled twice.
    sources = sqs_sources(template)
    assert {queue for _, queue, _ in sources} == {"IngestQueue", "DeliveryQueue", "UploadsQueue", "PollQueue"}
    for function, queue, _ in sources:
        visibility = int(template["Resources"][queue]["Properties"]["VisibilityTimeout"])
        assert visibility >= 6 * timeout(template, function), f"{queue} feeds {function}"


def test_the_api_answers_within_api_gateways_limit_and_waits_for_a_whole_create(
    template: dict[str, Any], settings: Settings
) -> None:
    assert settings.create_deadline_seconds + MARGIN <= API_GATEWAY_LIMIT
    assert timeout(template, "ApiFunction") >= API_GATEWAY_LIMIT


def test_the_callback_answers_before_any_provider_stops_waiting_for_it(
    template: dict[str, Any], settings: Settings
) -> None:
    budget = settings.callback_status_budget_seconds
    # Each host that calls back waits this long for our answer (as its simulator has it from its docs).
    patience = {
        name: simulator_for(name).callback_timeout
        for name, declared in PROVIDERS.items()
        if declared.capabilities.callback
    }
    assert patience, "no provider calls back: nothing to check"
    assert budget + MARGIN <= min(patience.values()), patience
    assert timeout(template, "CallbackFunction") >= budget + MARGIN


def test_the_drop_folder_function_has_time_for_a_whole_batch_of_creates(
    template: dict[str, Any], settings: Settings
) -> None:
    [batch] = [size for function, _, size in sqs_sources(template) if function == "S3TriggerFunction"]
    per_create = settings.create_deadline_seconds + MARGIN
    assert timeout(template, "S3TriggerFunction") >= batch * per_create


def test_the_deliver_function_has_time_for_a_whole_batch_of_webhook_posts(template: dict[str, Any]) -> None:
    [batch] = [size for function, _, size in sqs_sources(template) if function == "DeliverFunction"]
    per_post = inspect.signature(delivery.post).parameters["timeout"].default
    assert timeout(template, "DeliverFunction") >= batch * (per_post + MARGIN)


def test_an_ingest_lease_outlives_the_ingest_function_that_holds_it(template: dict[str, Any]) -> None:
    # An expired lease means a dead ingest: it must not expire while a live one still runs.
    assert timeout(template, "IngestFunction") < pacing.INGEST_LEASE_SECONDS


def test_a_sweeps_turn_on_a_task_outlives_the_sweeper_that_holds_it(template: dict[str, Any]) -> None:
    assert timeout(template, "SweeperFunction") < pacing.POLL_LEASE_SECONDS


def test_a_submit_lease_outlives_every_bounded_submit(settings: Settings) -> None:
    # Until it ends the sweeper leaves an accepted task to the call submitting it.
    assert settings.submit_grace_seconds > settings.create_deadline_seconds + MARGIN
    assert settings.submit_grace_seconds > settings.submit_budget_seconds + MARGIN
