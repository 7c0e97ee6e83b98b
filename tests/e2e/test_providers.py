"""Every provider on the local stack through its simulator: routing, callbacks or polling, failover."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest

from i2v.providers.registry import PROVIDERS
from i2v.runtime import Runtime
from i2v.submit import callback_token
from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import bus_events, create, drained, finished, stored_item, wait_for

pytestmark = pytest.mark.e2e

CALLBACK_PROVIDERS = [name for name, declared in PROVIDERS.items() if declared.capabilities.callback]
POLLED_PROVIDERS = [name for name, declared in PROVIDERS.items() if not declared.capabilities.callback]


def body_for(provider: str | list[str], image_url: str) -> dict[str, object]:
    first = provider if isinstance(provider, str) else provider[0]
    return {
        "image_url": image_url,
        "resolution": "720p",
        "duration": min(PROVIDERS[first].capabilities.durations),  # the shortest the host renders
        "provider": provider,
    }


def callbacks_for(sim: Simulator, task_id: str) -> list[int | None]:
    return [status for url, status in sim.callbacks_sent if f"/{task_id}?" in url]


@pytest.mark.parametrize("provider", CALLBACK_PROVIDERS)
def test_callback_provider_finishes_through_its_callback(
    provider: str, sims: dict[str, Simulator], stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    stack.pause("SweeperFunction")  # no polling: only the callback can move the task
    stack.pause("PollFunction")
    task = create(api, body_for(provider, image_url))
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert view["provider"] == provider
    # One callback per task, or one per status change (a host that calls on each): every one answered 200.
    assert set(callbacks_for(sims[provider], task["id"])) == {200}
    head = boto3.client("s3").head_object(Bucket=stack.bucket, Key=view["output"]["key"])
    assert head["ContentLength"] == view["output"]["size"]


@pytest.mark.parametrize("provider", POLLED_PROVIDERS)
def test_polled_provider_finishes_through_the_sweeper(
    provider: str, sims: dict[str, Simulator], stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    task = create(api, body_for(provider, image_url))
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert view["provider"] == provider
    assert sims[provider].callbacks_sent == []
    body = boto3.client("s3").get_object(Bucket=stack.bucket, Key=view["output"]["key"])["Body"].read()
    assert body[4:8] == b"ftyp"


def test_progress_and_queue_state_are_shown_while_processing(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    evolink = sims["evolink"]
    evolink.faults.hold_progress = 37  # the render stops at 37 % until released
    task = create(api, body_for("evolink", image_url))

    def processing_with_progress() -> dict[str, object] | None:
        view: dict[str, object] = api.get(f"/v1/videos/{task['id']}").json()
        return view if view["status"] == "processing" and view["progress"] != 0 else None

    view = wait_for(processing_with_progress, 20)  # as the sweeper polled it
    assert view["progress"] == 37  # the provider's number: neither a new task's 0 nor a finished one's 100
    assert view["queue_state"] == "processing"  # EvoLink's own word
    evolink.faults.hold_progress = None
    done = finished(api, task["id"])
    assert (done["status"], done["progress"]) == ("succeeded", 100)


def test_failover_on_a_503_the_host_documents_as_no_job_uses_the_next_provider_and_never_returns(
    rt: Runtime, sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    first, second = sims["local"], sims["dashscope"]
    assert 503 in rt.providers["local"].capabilities.submit_not_created  # the renderer's own contract
    first.faults.fail_submits = 99
    before_first, before_second = first.submits, second.submits
    task = create(api, body_for(["local", "dashscope"], image_url))
    assert task["provider"] == "dashscope"
    assert [(a["provider"], a["outcome"]) for a in task["attempts"]] == [
        ("local", "rejected"),
        ("dashscope", "accepted"),
    ]
    retries = rt.client.attempts
    assert first.submits - before_first == retries  # one submit per retry of the engine, then failover
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert first.submits - before_first == retries  # none after failover
    assert second.submits - before_second == 1


def test_a_503_the_host_does_not_document_as_no_job_is_never_failed_over(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    polled, other = sims["oxen"], sims["dashscope"]
    polled.faults.fail_submits = 99
    before_polled, before_other = polled.submits, other.submits
    task = create(api, body_for(["oxen", "dashscope"], image_url))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "submit_outcome_unknown"
    assert [(a["provider"], a["outcome"]) for a in task["attempts"]] == [("oxen", "unknown")]
    assert (polled.submits - before_polled, other.submits - before_other) == (1, 0)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_after_a_polled_host_made_the_job_fails_the_task_with_one_job_and_no_failover(
    status: int, sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    polled, other = sims["oxen"], sims["dashscope"]
    polled.faults.stall = True
    polled.faults.error_after_accept = status
    jobs_before, other_before = set(polled.tasks), other.submits
    task = create(api, body_for(["oxen", "dashscope"], image_url))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "submit_outcome_unknown"
    assert [(a["provider"], a["outcome"]) for a in task["attempts"]] == [("oxen", "unknown")]
    assert len(set(polled.tasks) - jobs_before) == 1  # exactly one job at the host: it was not resent
    assert other.submits == other_before  # and none at the next provider


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_after_a_callback_host_made_the_job_is_reconciled_by_its_callback_without_failover(
    status: int, sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    # `local` answers 503 before making a job, but a 500, 502 or 504 may follow one; its status answer echoes
    # the callback URL, which ties the job its callback names to this task.
    host, other = sims["local"], sims["dashscope"]
    host.faults.error_after_accept = status
    jobs_before, other_before = set(host.tasks), other.submits
    task = create(api, body_for(["local", "dashscope"], image_url))
    assert [(a["provider"], a["outcome"]) for a in task["attempts"]] == [("local", "unknown")]
    view = finished(api, task["id"])
    assert (view["status"], view["provider"]) == ("succeeded", "local")
    assert view["attempts"][-1]["detail"] == "job id learnt from its callback"
    assert len(set(host.tasks) - jobs_before) == 1
    assert other.submits == other_before


def test_submit_received_but_unanswered_is_not_sent_to_a_second_provider(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    polled, other = sims["oxen"], sims["dashscope"]
    polled.faults.hang_submit_after_accept = True
    before = other.submits
    task = create(api, body_for(["oxen", "dashscope"], image_url))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "submit_outcome_unknown"
    assert [a["outcome"] for a in task["attempts"]] == ["unknown"]
    assert other.submits == before


def test_unanswered_submit_to_a_callback_provider_is_reconciled_by_its_callback(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    # `local` echoes each job's callback URL in its status answer: that ties the job to this task.
    sims["local"].faults.hang_submit_after_accept = True
    before = sims["dashscope"].submits
    task = create(api, body_for(["local", "dashscope"], image_url))
    # Its callback may arrive before or after the submit times out: either way it names the job.
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert view["provider"] == "local"
    assert view["attempts"][-1]["outcome"] == "accepted"
    assert view["attempts"][-1]["detail"] == "job id learnt from its callback"
    assert sims["dashscope"].submits == before


def test_unanswered_submit_is_not_reconciled_by_a_callback_the_hosts_status_does_not_tie_to_the_task(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    # EvoLink's status answer does not echo the callback URL: its callback's job id is a hint no answer
    # confirms belongs to this task, so the task waits for its reconcile window (then fails, unpaid twice).
    evolink = sims["evolink"]
    evolink.faults.hang_submit_after_accept = True
    jobs_before = set(evolink.tasks)
    task = create(api, body_for(["evolink", "dashscope"], image_url))
    (job,) = wait_for(lambda: set(evolink.tasks) - jobs_before)
    wait_for(lambda: (job, "delivered") in evolink.callbacks_settled)  # our callback answered it
    view = api.get(f"/v1/videos/{task['id']}").json()
    assert view["status"] == "accepted"
    assert [(a["provider"], a["outcome"]) for a in view["attempts"]] == [("evolink", "unknown")]


def test_a_429_to_a_submit_is_not_retried_at_once_the_task_waits_out_retry_after_in_the_queue(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    # Retry-After 3 s: still in force when the create answers (1 s could end within the create's second).
    sims["novita"].faults.rate_limit_submits, sims["novita"].faults.retry_after = 1, 3
    before = sims["novita"].submits
    task = create(api, body_for("novita", image_url))
    assert task["status"] == "accepted"  # answered at once: the create does not sleep out Retry-After
    assert task["queue"]["waiting_for"] == "capacity at novita"
    assert [a["outcome"] for a in task["attempts"]] == ["rejected"]
    assert sims["novita"].submits == before + 1

    view = wait_for(lambda: (v := api.get(f"/v1/videos/{task['id']}").json())["status"] != "accepted" and v)
    assert view["status"] in ("submitted", "processing", "succeeded")
    assert view["queue_wait_seconds"] >= 3  # sent again once Retry-After had passed, not before
    assert [a["outcome"] for a in view["attempts"]] == ["rejected", "accepted"]
    assert sims["novita"].submits == before + 2


def test_unknown_provider_status_fails_the_task_keeping_the_raw_value(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    sims["dashscope"].faults.stall = True
    sims["dashscope"].faults.unknown_status = "THAWING"
    task = create(api, body_for("dashscope", image_url))
    view = finished(api, task["id"])
    assert view["status"] == "failed"
    assert view["error"]["code"] == "unknown_provider_status"
    assert "THAWING" in view["error"]["raw"]


def test_expired_result_url_is_fetched_again_from_the_provider(
    sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    sim = sims["oxen"]
    sim.faults.expire_results = True
    task = create(api, body_for("oxen", image_url))
    provider_id = task["attempts"][-1]["provider_task_id"]
    wait_for(lambda: sim.downloads.get(provider_id, 0) >= 1)
    assert api.get(f"/v1/videos/{task['id']}").json()["status"] != "succeeded"
    sim.faults.expire_results = False  # a fresh link from the next poll works
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert sim.downloads[provider_id] >= 2


@pytest.mark.parametrize("provider", CALLBACK_PROVIDERS)
def test_duplicate_callbacks_give_one_output_per_callback_provider(
    rt: Runtime,
    provider: str,
    sims: dict[str, Simulator],
    stack: LocalStack,
    api: httpx.Client,
    image_url: str,
    events_queue: str,
) -> None:
    sim = sims[provider]
    sim.faults.duplicate_callbacks = 5
    task = create(api, body_for(provider, image_url))
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    wait_for(lambda: len(callbacks_for(sim, task["id"])) >= 5)
    drained(stack, "IngestQueue")  # every duplicate's ingest message handled (each was sent before its 200)
    assert sim.downloads[view["attempts"][-1]["provider_task_id"]] == 1
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=view["output"]["key"])
    assert listed["KeyCount"] == 1
    assert [e["detail"]["status"] for e in bus_events(rt, events_queue, task["id"])] == ["succeeded"]


@pytest.mark.parametrize("provider", CALLBACK_PROVIDERS)
def test_forged_callback_changes_nothing_per_callback_provider(
    rt: Runtime,
    provider: str,
    sims: dict[str, Simulator],
    stack: LocalStack,
    api: httpx.Client,
    image_url: str,
) -> None:
    sims[provider].faults.stall = True
    task = create(api, body_for(provider, image_url))
    stack.pause("SweeperFunction")  # its own turns at the task are not the callback's doing
    stack.pause("PollFunction")  # nor are the timed turns
    before = stored_item(rt, task["id"])
    forged = httpx.post(
        f"{stack.url}/v1/callbacks/{provider}/{task['id']}", params={"token": "f" * 64}, json={}
    )
    assert forged.status_code == 401
    token = callback_token(rt, task["id"])
    wrong_provider = "novita" if provider != "novita" else "evolink"
    misrouted = httpx.post(
        f"{stack.url}/v1/callbacks/{wrong_provider}/{task['id']}", params={"token": token}, json={}
    )
    assert misrouted.status_code == 404
    assert stored_item(rt, task["id"]) == before


def test_named_provider_that_cannot_serve_the_request_is_a_422_saying_why(
    api: httpx.Client, image_url: str
) -> None:
    resp = api.post(
        "/v1/videos", json={"image_url": image_url, "last_frame_url": image_url, "provider": "aimlapi"}
    )
    assert resp.status_code == 422
    assert resp.json()["errors"] == [
        {"field": "provider", "message": "aimlapi does not support mode first_last_frame"}
    ]
    resp = api.post(
        "/v1/videos", json={"image_url": image_url, "duration": 7, "provider": ["dashscope", "aimlapi"]}
    )
    assert resp.status_code == 422
    assert "aimlapi supports durations 5, 10, 15, not 7" in resp.json()["detail"]
    resp = api.post("/v1/videos", json={"image_url": image_url, "seed": 0, "provider": "evolink"})
    assert resp.json()["errors"][0]["message"] == "evolink accepts seeds from 1, not 0"


def test_providers_endpoint_lists_capabilities_and_health(api: httpx.Client) -> None:
    listed = {p["name"]: p for p in api.get("/v1/providers").json()}
    assert set(listed) == set(PROVIDERS)  # every provider the registry declares has a simulator here
    assert listed["aimlapi"]["modes"] == ["first_frame"]
    assert listed["aimlapi"]["durations"] == [5, 10, 15]
    assert listed["evolink"]["callback"] is True
    assert listed["oxen"]["cancel"] is True
    assert all(p["status"] in ("ok", "degraded", "down") for p in listed.values())


def test_image_with_alpha_is_not_sent_to_a_provider_that_forbids_it(
    api: httpx.Client, sims: dict[str, Simulator], media_server: tuple[Path, str]
) -> None:
    sims["local"].faults.stall = True
    ticket = api.post("/v1/uploads", json={"filename": "alpha.png", "content_type": "image/png"}).json()
    with open(media_server[0] / "alpha.png", "rb") as fh:
        httpx.put(
            ticket["put_url"], content=fh.read(), headers={"Content-Type": "image/png"}
        ).raise_for_status()
    refused = api.post("/v1/videos", json={"image_url": ticket["url"], "provider": "dashscope"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "provider",
            "message": "dashscope does not accept images with an alpha channel (transparency)",
        }
    ]
    assert api.post("/v1/videos", json={"image_url": ticket["url"], "provider": "local"}).status_code == 202
