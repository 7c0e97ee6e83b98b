"""What every video cost, end to end: billed seconds read from the stored MP4, the provider's reported spend,
and no charge for a task that did not succeed."""

from __future__ import annotations

import io
import time
from typing import Any

import av
import boto3
import httpx
import pytest

from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import bus_events, create, finished, wait_for

pytestmark = pytest.mark.e2e


def costed(api: httpx.Client, task_id: str) -> dict[str, Any]:
    """The ended task once its cost is recorded (the step right after its terminal write)."""
    finished(api, task_id)
    view: dict[str, Any] = wait_for(lambda: (v := api.get(f"/v1/videos/{task_id}").json())["cost"] and v)
    return view


def stored_seconds(stack: LocalStack, key: str) -> float:
    """The stored MP4's duration, decoded independently of the gateway (PyAV)."""
    body = boto3.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    with av.open(io.BytesIO(body)) as container:
        assert container.duration is not None
        return float(container.duration / av.time_base)


def upload(api: httpx.Client, name: str, content: bytes, content_type: str) -> str:
    ticket = api.post("/v1/uploads", json={"filename": name, "content_type": content_type}).json()
    httpx.put(ticket["put_url"], content=content, headers={"Content-Type": content_type}).raise_for_status()
    return str(ticket["url"])


def test_billed_seconds_are_the_stored_videos_for_several_durations_and_a_continuation(
    sims: dict[str, Simulator], stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    views = [costed(api, create(api, {"image_url": image_url, "duration": d})["id"]) for d in (2, 5)]
    sims["local"].faults.render_seconds = 4  # the host delivers 4 s for a 2 s request: 4 s are billed
    views.append(costed(api, create(api, {"image_url": image_url, "duration": 2})["id"]))
    sims["local"].faults.render_seconds = None
    first = boto3.client("s3").get_object(Bucket=stack.bucket, Key=views[0]["output"]["key"])["Body"].read()
    clip = upload(api, "clip.mp4", first, "video/mp4")
    views.append(costed(api, create(api, {"video_url": clip, "duration": 3})["id"]))
    assert views[3]["mode"] == "video_continuation"
    for view in views:
        assert view["status"] == "succeeded"
        assert view["cost"]["billed_seconds"] == pytest.approx(
            stored_seconds(stack, view["output"]["key"]), abs=0.01
        )
        assert view["cost"]["cost_source"] == "no_price"  # the local stack sets no prices: null, and why
        assert view["cost"]["provider_cost"] is None
    assert [round(v["cost"]["billed_seconds"]) for v in views[:3]] == [2, 5, 4]


def test_ai_ml_apis_reported_spend_reaches_provider_cost_and_the_tasks_event(
    sims: dict[str, Simulator], stack: LocalStack, api: httpx.Client, image_url: str, events_queue: str
) -> None:
    task = create(api, {"image_url": image_url, "duration": 5, "resolution": "720p", "provider": "aimlapi"})
    view = costed(api, task["id"])
    assert view["status"] == "succeeded"
    sim = sims["aimlapi"]
    job = stack.runtime().tasks.require(task["id"]).provider_task_id
    answer = httpx.get(
        f"{sim.base_url}/v2/video/generations",
        params={"generation_id": job},
        headers={"Authorization": f"Bearer {sim.api_key}"},
    ).json()
    spent = answer["meta"]["usage"]["usd_spent"]
    assert view["cost"]["provider_cost"] == spent
    assert view["cost"]["cost_source"] == "reported"
    assert view["cost"]["client_charge"] == spent  # pass-through
    events = wait_for(lambda: bus_events(stack.runtime(), events_queue, task["id"]))
    assert [event["detail"]["cost"] for event in events] == [view["cost"]]


def test_failed_cancelled_and_timed_out_tasks_charge_the_client_nothing(
    sims: dict[str, Simulator], stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    before = usage(api, "status")
    body = {"image_url": image_url, "duration": 2}
    sims["local"].faults.fail_render = "content refused"
    failed = create(api, body)
    assert finished(api, failed["id"])["status"] == "failed"
    sims["local"].faults.fail_render = None
    sims["local"].faults.stall = True
    cancelled = create(api, body)
    assert api.post(f"/v1/videos/{cancelled['id']}/cancel").status_code == 200
    overdue = create(api, body)
    stack.runtime().tasks.update(overdue["id"], deadline_at=0)
    assert finished(api, overdue["id"])["status"] == "timed_out"
    for task in (failed, cancelled, overdue):
        cost = costed(api, task["id"])["cost"]
        assert (cost["client_charge"], cost["billed_seconds"]) == (0.0, 0.0)
        assert cost["cost_source"] == "not_billed"
    after = usage(api, "status")
    nothing = {"billed_seconds": 0, "provider_cost": 0, "client_charge": 0, "unpriced_tasks": 0}
    for status in ("failed", "cancelled", "timed_out"):
        added = {k: after[status][k] - before.get(status, {}).get(k, 0) for k in after[status]}
        assert added == {"tasks": 1, **nothing}


def usage(api: httpx.Client, group_by: str) -> dict[str, dict[str, float]]:
    answer = api.get("/v1/usage", params={"group_by": group_by})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert set(report) == {"from", "to", "group_by", "currency", "groups", "total"}
    return {row.pop("key"): row for row in report["groups"]}


def test_usage_adds_up_the_tasks_costs_by_provider_and_day(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    before = usage(api, "provider").get("aimlapi", {})
    task = create(api, {"image_url": image_url, "duration": 5, "resolution": "720p", "provider": "aimlapi"})
    cost = costed(api, task["id"])["cost"]
    after = usage(api, "provider")["aimlapi"]
    assert after["tasks"] - before.get("tasks", 0) == 1
    assert after["client_charge"] - before.get("client_charge", 0) == pytest.approx(cost["client_charge"])
    assert after["billed_seconds"] - before.get("billed_seconds", 0) == pytest.approx(cost["billed_seconds"])
    by_day = usage(api, "day")
    assert list(by_day) == [time.strftime("%Y-%m-%d", time.gmtime())]
    by_status = usage(api, "status")
    assert sum(row["tasks"] for row in by_day.values()) == sum(row["tasks"] for row in by_status.values())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
        ({"group_by": "tenant"}, "group_by"),
    ],
)
def test_a_bad_usage_query_is_a_422_naming_the_parameter(
    api: httpx.Client, params: dict[str, str], field: str
) -> None:
    answer = api.get("/v1/usage", params=params)
    assert answer.status_code == 422
    assert field in answer.text
