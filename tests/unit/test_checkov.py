"""checkov passes on template.yaml: every check it runs passes or is skipped inline with its reason, and the
production settings a user expects are there (reserved concurrency, log retention, API access logs).

checkov runs from its own venv (tests/tool_venv.py): its pins would otherwise steer the app's dependencies.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from i2v_local.aws import load_template
from tests.tool_venv import tool_python

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def checkov() -> dict[str, Any]:
    checkov = tool_python().parent / "checkov"
    run = subprocess.run(
        [str(checkov), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(run.stdout)
    return report


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def inline_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(resource, check id) -> comment, for every `Metadata: checkov: skip:` entry in the template."""
    return {
        (logical, skip["id"]): skip.get("comment", "")
        for logical, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }


def test_checkov_finds_no_failed_check(checkov: dict[str, Any]) -> None:
    assert checkov["results"]["parsing_errors"] == []
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in checkov["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov["summary"]["passed"] > 0


def test_every_skipped_check_is_justified_inline_and_applies(
    checkov: dict[str, Any], template: dict[str, Any]
) -> None:
    skips = inline_skips(template)
    assert skips
    assert {k: c for k, c in skips.items() if len(c.split()) < 8} == {}  # a reason, not a shrug
    skipped = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in checkov["results"]["skipped_checks"]}
    assert skipped == set(skips)  # no skip for a check that does not apply, none taken from elsewhere


def test_every_function_has_reserved_concurrency_and_its_own_log_group_with_retention(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 7
    groups = set()
    for props in functions.values():
        reserved = props["ReservedConcurrentExecutions"]["Fn::If"]
        assert reserved[1] in ({"Ref": "ApiConcurrency"}, {"Ref": "WorkerConcurrency"})
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        groups.add(group)
    assert len(groups) == len(functions)


def test_api_writes_access_logs_without_headers_bodies_or_query_strings(template: dict[str, Any]) -> None:
    api = template["Resources"]["Api"]["Properties"]["AccessLogSetting"]
    group = template["Resources"][api["DestinationArn"]["Fn::GetAtt"][0]]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    fields = json.loads(api["Format"])
    assert {"requestId", "status", "resource"} <= set(fields)
    assert not any(word in api["Format"] for word in ("header", "body", "querystring", "authorizer"))
