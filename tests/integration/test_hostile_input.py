"""Hostile input is a clean 4xx problem body naming the field, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from i2v_local.sim_local import LocalSimulator
from tests.support import api_call, invoke, load_event

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True


def fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem.get("errors", [])]


def callback(task_id: str, token: str) -> dict[str, Any]:
    event = load_event("callback.json")
    event["path"] = f"/v1/callbacks/local/{task_id}"
    event["pathParameters"] = {"provider": "local", "task_id": task_id}
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    return event


@pytest.mark.parametrize("token", ["tökén", "\ud800"])
def test_a_callback_token_no_task_has_is_a_401_problem(token: str) -> None:
    result = invoke("callback", callback("vid_x", token))
    assert result["statusCode"] == 401, result
    assert result["multiValueHeaders"]["Content-Type"] == [PROBLEM]


@pytest.mark.parametrize("task_id", ["vid_\ud800", "../x", "a/b"])
def test_a_callback_path_no_task_can_have_is_a_404_problem(task_id: str) -> None:
    result = invoke("callback", callback(task_id, "t"))
    assert result["statusCode"] == 404, result
    assert result["multiValueHeaders"]["Content-Type"] == [PROBLEM]


def test_a_50000_deep_json_array_is_a_4xx_problem() -> None:
    status, problem = api_call("POST", "/v1/videos", raw_body="[" * 50_000 + "]" * 50_000)
    assert status == 422, problem
    assert fields(problem) == ["body"]
    assert "nested too deeply" in problem["detail"]


def test_a_body_longer_than_any_valid_request_is_a_413_before_it_is_parsed(sample_url: str) -> None:
    body = {"image_url": sample_url, "provider": ["x"] * 120_000}
    status, problem = api_call("POST", "/v1/videos", body)
    assert status == 413, problem
    assert fields(problem) == ["body"]


@pytest.mark.parametrize("provider", [["local"] * 11, "x" * 33, ["local", "x" * 33], [], ""])
def test_a_provider_list_is_at_most_10_names_of_at_most_32_characters(provider: Any, sample_url: str) -> None:
    status, problem = api_call("POST", "/v1/videos", {"image_url": sample_url, "provider": provider})
    assert status == 422, problem
    assert {f.split(".")[0] for f in fields(problem)} == {"provider"}, problem


@pytest.mark.parametrize("path", ["/v1/videos", "/v1/uploads"])
@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "text/plain"]
)
def test_a_body_that_is_not_json_is_a_415_problem(path: str, content_type: str) -> None:
    status, problem = api_call("POST", path, raw_body="--x\r\n", headers={"Content-Type": content_type})
    assert status == 415, problem
    assert problem["title"] == "Unsupported media type"


@pytest.mark.parametrize("url", ["https://\u009fx", "http://[x", "https://a\u0000b/x"])
def test_an_unparseable_webhook_url_is_a_422_naming_it(url: str, sample_url: str) -> None:
    status, problem = api_call("POST", "/v1/videos", {"image_url": sample_url, "webhook_url": url})
    assert status == 422, problem
    assert fields(problem) == ["webhook_url"]


@pytest.mark.parametrize("url", ["s3://[x/y", "http://[x/a.png"])
def test_an_unparseable_image_url_is_a_422_naming_it(url: str) -> None:
    status, problem = api_call("POST", "/v1/videos", {"image_url": url})
    assert status == 422, problem
    assert fields(problem) == ["image_url"]
