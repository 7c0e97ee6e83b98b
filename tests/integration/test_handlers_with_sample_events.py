"""Each handler runs with its sample event from events/ against moto, as `sam local invoke` would."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import httpx
import pytest

from i2v.lifecycle import Work
from i2v.models import Status
from i2v.runtime import Runtime
from i2v.submit import callback_token
from i2v_local.aws import LocalResources, load_template
from i2v_local.sim_local import LocalSimulator
from tests.support import invoke, load_event

SAMPLE_TASK = "vid_019ab1c2d3e4f5a6b7c8d9"  # the id in events/api_get.json, callback.json, sqs_ingest.json


def with_task_id(event: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The sample event, pointed at a task this test created."""
    return json.loads(json.dumps(event).replace(SAMPLE_TASK, task_id))  # type: ignore[no-any-return]


def create_from_sample(local_sim: LocalSimulator) -> dict[str, Any]:
    result = invoke("api", load_event("api_create.json"))
    assert result["statusCode"] == 202, result["body"]
    body: dict[str, Any] = json.loads(result["body"])
    return body


def wait_rendered(local_sim: LocalSimulator, provider_task_id: str) -> None:
    deadline = time.monotonic() + 30
    while local_sim.tasks[provider_task_id].state != "succeeded":
        assert time.monotonic() < deadline, "render did not finish"
        time.sleep(0.1)


def test_api_create_event_creates_and_submits_a_task(tenant: str, local_sim: LocalSimulator) -> None:
    task = create_from_sample(local_sim)
    assert task["status"] == "submitted"
    assert task["provider"] == "local"
    assert local_sim.submits == 1


def test_api_get_and_list_events_show_the_task(tenant: str, local_sim: LocalSimulator) -> None:
    task = create_from_sample(local_sim)
    got = invoke("api", with_task_id(load_event("api_get.json"), task["id"]))
    assert got["statusCode"] == 200
    assert json.loads(got["body"])["id"] == task["id"]
    listed = invoke("api", load_event("api_list.json"))
    assert [t["id"] for t in json.loads(listed["body"])["items"]] == [task["id"]]


def test_api_cancel_event_cancels(tenant: str, local_sim: LocalSimulator) -> None:
    local_sim.faults.stall = True
    task = create_from_sample(local_sim)
    result = invoke("api", with_task_id(load_event("api_cancel.json"), task["id"]))
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "cancelled"


def test_callback_event_with_the_task_token_enqueues_ingest(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, aws: LocalResources
) -> None:
    task = create_from_sample(local_sim)
    wait_rendered(local_sim, task["attempts"][-1]["provider_task_id"])
    event = with_task_id(load_event("callback.json"), task["id"])
    event["queryStringParameters"] = {"token": callback_token(rt, task["id"])}
    result = invoke("callback", event)
    assert result["statusCode"] == 200
    messages = boto3.client("sqs").receive_message(QueueUrl=aws.refs["IngestQueue"], WaitTimeSeconds=1)[
        "Messages"
    ]
    assert json.loads(messages[0]["Body"])["task_id"] == task["id"]


def test_callback_event_with_the_sample_token_is_refused(tenant: str, local_sim: LocalSimulator) -> None:
    task = create_from_sample(local_sim)
    result = invoke("callback", with_task_id(load_event("callback.json"), task["id"]))
    assert result["statusCode"] == 401


def test_schedule_event_runs_the_sweeper(rt: Runtime, tenant: str, local_sim: LocalSimulator) -> None:
    local_sim.faults.stall = True
    task = create_from_sample(local_sim)
    past = int(time.time()) - 1
    rt.tasks.update(task["id"], deadline_at=past, next_poll_at=past)  # as it is once time has passed
    outcomes = invoke("sweeper", load_event("schedule.json"))
    assert outcomes == {"timed_out": 1}
    stored = rt.tasks.get(task["id"])
    assert stored is not None
    assert stored.status is Status.TIMED_OUT


def test_sqs_ingest_event_copies_the_result_and_succeeds(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, aws: LocalResources
) -> None:
    task = create_from_sample(local_sim)
    provider_task_id = task["attempts"][-1]["provider_task_id"]
    wait_rendered(local_sim, provider_task_id)
    event = with_task_id(load_event("sqs_ingest.json"), task["id"])
    body = json.loads(event["Records"][0]["body"])
    body["result_url"] = local_sim.result_url(local_sim.tasks[provider_task_id])
    event["Records"][0]["body"] = json.dumps(body)
    assert invoke("ingest", event) == {"batchItemFailures": []}
    stored = rt.tasks.get(task["id"])
    assert stored is not None
    assert stored.status is Status.SUCCEEDED
    assert stored.output is not None
    head = boto3.client("s3").head_object(Bucket=aws.refs["Bucket"], Key=stored.output.key)
    assert head["ContentLength"] == stored.output.size


def test_sqs_ingest_event_that_cannot_reach_the_result_is_retried_and_loses_nothing(
    rt: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = create_from_sample(local_sim)
    event = with_task_id(load_event("sqs_ingest.json"), task["id"])  # its URL points at a closed port
    failed = {"itemIdentifier": event["Records"][0]["messageId"]}
    assert invoke("ingest", event) == {"batchItemFailures": [failed]}  # it returns to the queue
    stored = rt.tasks.get(task["id"])
    assert stored is not None
    assert not stored.status.terminal
    assert rt.tasks.claim(task["id"], Work.INGEST, 60)  # the failed attempt gave its claim back


def test_s3_put_event_creates_a_task_from_the_upload(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, aws: LocalResources
) -> None:
    local_sim.faults.stall = True
    image = (
        boto3.client("s3").get_object(Bucket=aws.refs["Bucket"], Key="inputs/demo/sample.png")["Body"].read()
    )
    boto3.client("s3").put_object(
        Bucket=aws.refs["Bucket"],
        Key="uploads/demo/sample.png",
        Body=image,
        Metadata={"prompt": "from metadata"},
    )
    assert invoke("s3_trigger", load_event("s3_put.json")) == {"batchItemFailures": []}
    tasks, _ = rt.tasks.list_for_tenant("demo", 10, None)
    assert [(t.source_key, t.request.prompt) for t in tasks] == [("uploads/demo/sample.png", "from metadata")]


@pytest.mark.parametrize("name", sorted(p.name for p in __import__("pathlib").Path("events").glob("*.json")))
def test_every_sample_event_is_valid_json(name: str) -> None:
    assert isinstance(load_event(name), dict)


def test_sam_env_file_names_only_variables_the_template_declares() -> None:
    # `sam local invoke --env-vars` overrides only variables the template declares; others never arrive.
    params = load_event("env.json")["Parameters"]
    declared = load_template()["Globals"]["Function"]["Environment"]
    assert set(params) <= set(declared["Variables"])
    assert httpx.URL(params["AWS_ENDPOINT_URL"]).port == 5000  # `make local` serves moto there
