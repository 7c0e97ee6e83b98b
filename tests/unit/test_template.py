"""template.yaml: lint-clean, secure by default, and every function wired to code, build and sample event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from i2v_local.aws import LocalResources, load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties", {}) for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_reports_nothing() -> None:
    # cfn-lint is what `sam validate --lint` runs; `make validate` runs the SAM CLI itself.
    matches = lint_file(ROOT / "template.yaml", config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_bucket_is_private_and_encrypted(template: dict[str, Any]) -> None:
    bucket = resources(template, "AWS::S3::Bucket")["Bucket"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    rules = bucket["NotificationConfiguration"]["QueueConfigurations"][0]["Filter"]["S3Key"]["Rules"]
    assert rules == [{"Name": "prefix", "Value": "uploads/"}]


def test_every_queue_has_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    fed = {k for k, v in queues.items() if "RedrivePolicy" in v}
    dead = {v["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for k, v in queues.items() if k in fed}
    assert fed | dead == set(queues)
    assert fed == {"UploadsQueue", "IngestQueue", "DeliveryQueue", "PollQueue"}


def test_table_has_the_listing_due_and_queue_indexes_and_ttl(template: dict[str, Any]) -> None:
    table = resources(template, "AWS::DynamoDB::Table")["Table"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_tenant", "by_due", "by_queue"}
    # A dispatch reads which providers each waiting task may use from the index alone.
    projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["providers"]}
    assert indexes["by_queue"]["Projection"] == projection
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize(
    "logical",
    [
        "ApiFunction",
        "CallbackFunction",
        "SweeperFunction",
        "IngestFunction",
        "S3TriggerFunction",
        "DeliverFunction",
    ],
)
def test_function_has_a_handler_a_build_target_and_no_wildcard_policy(
    template: dict[str, Any], logical: str
) -> None:
    props = resources(template, "AWS::Serverless::Function")[logical]
    code = ROOT / props["CodeUri"]
    assert (code / "handler.py").is_file()
    assert f"build-{logical}:" in (code / "Makefile").read_text()
    assert template["Resources"][logical]["Metadata"]["BuildMethod"] == "makefile"
    for policy in props["Policies"]:
        for statement in policy.get("Statement", []):
            assert "*" not in statement["Action"]
            assert statement["Resource"] != "*"


def test_sample_events_exist_for_every_kind_of_trigger() -> None:
    names = {p.name for p in (ROOT / "events").glob("*.json")}
    assert {
        "api_create.json",
        "api_get.json",
        "callback.json",
        "schedule.json",
        "sqs_ingest.json",
        "s3_put.json",
    } <= names


@pytest.mark.parametrize("worker_concurrency", ["0", "1", "2", "5", "40"])
def test_no_queue_runs_more_batches_than_its_function_may_run(
    template: dict[str, Any], worker_concurrency: str
) -> None:
    # Past its function's reserved concurrency a queue's poller is throttled, each throttled batch goes back
    # with its receive count raised, and enough of those send a good message to the dead-letter queue.
    stack = LocalResources(template, refs={"WorkerConcurrency": worker_concurrency})
    sources = 0
    for function in resources(template, "AWS::Serverless::Function").values():
        reserved = stack.resolve(function.get("ReservedConcurrentExecutions"))
        for event in function.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            sources += 1
            scaling = stack.resolve(event["Properties"].get("ScalingConfig"))
            if reserved is None:
                assert scaling is None
            elif int(reserved) >= 2:  # SQS takes a MaximumConcurrency of 2 to 1000
                assert int(scaling["MaximumConcurrency"]) <= int(reserved)
            else:
                assert scaling is None
    assert sources == 4
