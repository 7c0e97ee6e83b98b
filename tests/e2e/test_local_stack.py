"""The whole gateway on the embedded local stack: HTTP in, provider simulator, callbacks, sweeper, S3 out."""

from __future__ import annotations

import hashlib
import io
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import boto3
import httpx
import pytest
from standardwebhooks import Webhook

from i2v.runtime import Runtime
from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import (
    bus_events,
    create,
    drained,
    finished,
    stored_item,
    tasks_for_key,
    upload_event,
    wait_for,
)
from tests.support import Receiver

pytestmark = pytest.mark.e2e


def test_http_task_ends_succeeded_with_a_real_mp4_in_s3(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    task = create(
        api, {"image_url": image_url, "prompt": "hills at dusk", "resolution": "720p", "duration": 2}
    )
    assert task["status"] == "submitted"
    assert task["links"]["self"] == f"/v1/videos/{task['id']}"
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert view["output"]["key"] == f"outputs/{stack.tenant}/{task['id']}.mp4"
    assert view["expires_at"]
    body = boto3.client("s3").get_object(Bucket=stack.bucket, Key=view["output"]["key"])["Body"].read()
    assert len(body) == view["output"]["size"]
    with av.open(io.BytesIO(body)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert min(stream.width, stream.height) == 720
        assert abs(frames / float(stream.average_rate or 24) - 2) <= 0.2


def signing(output_url: str) -> tuple[float, int]:
    """(when the URL was signed, for how many seconds) from its SigV4 query."""
    query = parse_qs(urlsplit(output_url).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed_at.timestamp(), int(query["X-Amz-Expires"][0])


def test_every_get_of_a_succeeded_task_presigns_a_new_output_url_that_downloads_the_video(
    api: httpx.Client, image_url: str
) -> None:
    task = create(api, {"image_url": image_url, "resolution": "720p", "duration": 2})
    assert finished(api, task["id"])["status"] == "succeeded"

    def get() -> dict[str, Any]:
        before = time.time()
        view: dict[str, Any] = api.get(f"/v1/videos/{task['id']}").json()
        after = time.time()
        signed_at, lifetime = signing(view["output_url"])
        # Signed while answering this GET, not kept from an earlier one.
        assert int(before) <= signed_at <= after
        assert lifetime == 900  # presign_seconds
        # moto serves presigned GETs without checking their signature or expiry, so the lifetime is read from
        # the URL: it is the one the view announces, and S3 refuses the URL after it.
        assert abs(datetime.fromisoformat(view["expires_at"]).timestamp() - (signed_at + lifetime)) <= 1
        return view

    first = get()
    # SigV4 dates have whole seconds: once the clock has moved on, a GET that presigns anew gives another URL.
    second = wait_for(lambda: (view := get())["output_url"] != first["output_url"] and view, seconds=5)
    assert signing(second["output_url"])[0] > signing(first["output_url"])[0]
    assert second["expires_at"] > first["expires_at"]
    for view in (first, second):
        download = httpx.get(view["output_url"])
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == view["output"]["sha256"]


def test_duplicate_callbacks_ingest_once(
    rt: Runtime, sim: Simulator, api: httpx.Client, image_url: str, stack: LocalStack, events_queue: str
) -> None:
    sim.faults.duplicate_callbacks = 5
    task = create(api, {"image_url": image_url, "resolution": "720p", "duration": 2})
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    provider_id = view["attempts"][-1]["provider_task_id"]
    wait_for(lambda: len([c for c in sim.callbacks_sent if task["id"] in c[0]]) >= 5)
    drained(stack, "IngestQueue")  # every duplicate's ingest message handled (each was sent before its 200)
    assert [status for url, status in sim.callbacks_sent if task["id"] in url] == [200] * 5
    assert sim.downloads[provider_id] == 1
    listed = boto3.client("s3").list_objects_v2(
        Bucket=stack.bucket, Prefix=f"outputs/{stack.tenant}/{task['id']}"
    )
    assert listed["KeyCount"] == 1
    assert [e["detail"]["status"] for e in bus_events(rt, events_queue, task["id"])] == ["succeeded"]


def test_forged_callback_token_is_401_and_changes_nothing(
    rt: Runtime, sim: Simulator, api: httpx.Client, image_url: str, stack: LocalStack
) -> None:
    sim.faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})
    stack.pause("SweeperFunction")  # its own turns at the task are not the callback's doing
    stack.pause("PollFunction")  # nor are the timed turns
    before = stored_item(rt, task["id"])
    forged = httpx.post(
        f"{stack.url}/v1/callbacks/local/{task['id']}",
        params={"token": "0" * 64},
        json={"id": "x", "status": "succeeded", "video_url": "http://127.0.0.1:1/evil.mp4"},
    )
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    missing = httpx.post(f"{stack.url}/v1/callbacks/local/{task['id']}", json={})
    assert missing.status_code == 401
    assert stored_item(rt, task["id"]) == before


def test_lost_callback_is_caught_by_the_sweeper(sim: Simulator, api: httpx.Client, image_url: str) -> None:
    sim.faults.drop_callbacks = True
    task = create(api, {"image_url": image_url, "duration": 2, "resolution": "720p"})
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert not [c for c in sim.callbacks_sent if task["id"] in c[0]]


def test_task_past_its_deadline_is_timed_out(
    rt: Runtime, sim: Simulator, api: httpx.Client, image_url: str, events_queue: str
) -> None:
    sim.faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})
    rt.tasks.update(task["id"], deadline_at=int(time.time()) - 1)
    view = finished(api, task["id"])
    assert view["status"] == "timed_out"
    assert view["error"]["code"] == "timed_out"
    provider_id = view["attempts"][-1]["provider_task_id"]
    assert [e["detail"]["status"] for e in bus_events(rt, events_queue, task["id"])] == ["timed_out"]
    assert sim.tasks[provider_id].state == "cancelled"  # we stop paying for what nobody will collect


def test_cancel_stops_the_task_once(sim: Simulator, api: httpx.Client, image_url: str) -> None:
    sim.faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})
    cancelled = api.post(f"/v1/videos/{task['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert api.get(f"/v1/videos/{task['id']}").json()["status"] == "cancelled"
    again = api.post(f"/v1/videos/{task['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["detail"].startswith("it was cancelled at ")
    assert again.json()["detail"].endswith("; nothing to cancel")


def test_idempotency_key_replays_the_same_task_and_refuses_a_different_body(
    sim: Simulator, api: httpx.Client, image_url: str
) -> None:
    sim.faults.stall = True
    body = {"image_url": image_url, "duration": 3}
    submits_before = sim.submits
    first = create(api, body, **{"Idempotency-Key": "order-42"})
    second = create(api, body, **{"Idempotency-Key": "order-42"})
    assert second["id"] == first["id"]
    assert sim.submits == submits_before + 1
    changed = api.post("/v1/videos", json={**body, "duration": 4}, headers={"Idempotency-Key": "order-42"})
    assert changed.status_code == 422
    assert "Idempotency-Key" in changed.json()["title"]


def test_another_tenants_task_does_not_exist_for_you(
    rt: Runtime, sim: Simulator, stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    sim.faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})
    rt.records.put_api_key("other-tenant-key", "other")
    other = httpx.Client(base_url=stack.url, headers={"Authorization": "Bearer other-tenant-key"})
    assert other.get(f"/v1/videos/{task['id']}").status_code == 404
    assert other.post(f"/v1/videos/{task['id']}/cancel").status_code == 404
    assert task["id"] not in [t["id"] for t in other.get("/v1/videos").json()["items"]]
    assert task["id"] in [t["id"] for t in api.get("/v1/videos").json()["items"]]


def test_requests_without_a_valid_key_are_401(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.url}/v1/videos").status_code == 401
    assert httpx.get(f"{stack.url}/v1/videos", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_listing_pages_newest_first(sim: Simulator, api: httpx.Client, image_url: str) -> None:
    sim.faults.stall = True
    ids = [create(api, {"image_url": image_url, "duration": 2})["id"] for _ in range(3)]
    page = api.get("/v1/videos", params={"limit": 2}).json()
    assert [t["id"] for t in page["items"]] == ids[::-1][:2]
    rest = api.get("/v1/videos", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == ids[0]
    assert api.get("/v1/videos", params={"cursor": "garbage"}).status_code == 422


def test_s3_upload_is_animated_with_its_metadata_prompt_to_its_own_key_in_the_mirrored_folder(
    api: httpx.Client, stack: LocalStack
) -> None:
    key = f"uploads/{stack.tenant}/trips/hills.png"
    s3 = boto3.client("s3")
    with open("assets/sample.png", "rb") as fh:
        s3.put_object(
            Bucket=stack.bucket,
            Key=key,
            Body=fh.read(),
            Metadata={"prompt": "wind in the grass", "duration": "2", "resolution": "720p"},
        )
    task = wait_for(lambda: tasks_for_key(api, key))[0]
    view = finished(api, task["id"])
    assert view["status"] == "succeeded"
    assert view["request"]["prompt"] == "wind in the grass"
    assert view["output"]["key"] == f"outputs/{stack.tenant}/trips/hills-{task['id']}.mp4"
    assert (
        s3.head_object(Bucket=stack.bucket, Key=view["output"]["key"])["ContentLength"]
        == view["output"]["size"]
    )


def test_same_s3_object_event_twice_creates_one_task(
    sim: Simulator, api: httpx.Client, stack: LocalStack
) -> None:
    sim.faults.stall = True
    key = f"uploads/{stack.tenant}/twice.png"
    s3 = boto3.client("s3")
    with open("assets/sample.png", "rb") as fh:
        etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=fh.read(), Metadata={"duration": "2"})[
            "ETag"
        ].strip('"')
    wait_for(lambda: tasks_for_key(api, key))
    stack.invoke("S3TriggerFunction", upload_event(stack.bucket, key, etag))
    stack.invoke("S3TriggerFunction", upload_event(stack.bucket, key, etag))
    assert len(tasks_for_key(api, key)) == 1


def test_sidecar_json_gives_the_options(sim: Simulator, api: httpx.Client, stack: LocalStack) -> None:
    sim.faults.stall = True
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=stack.bucket,
        Key=f"uploads/{stack.tenant}/side.json",
        Body=json.dumps({"prompt": "from the sidecar", "duration": 3}),
    )
    with open("assets/sample.png", "rb") as fh:
        s3.put_object(Bucket=stack.bucket, Key=f"uploads/{stack.tenant}/side.png", Body=fh.read())
    task = wait_for(lambda: tasks_for_key(api, f"uploads/{stack.tenant}/side.png"))[0]
    assert task["request"]["prompt"] == "from the sidecar"
    assert task["request"]["duration"] == 3


def test_invalid_upload_options_are_recorded_as_a_failed_task(api: httpx.Client, stack: LocalStack) -> None:
    key = f"uploads/{stack.tenant}/bad.png"
    with open("assets/sample.png", "rb") as fh:
        boto3.client("s3").put_object(
            Bucket=stack.bucket, Key=key, Body=fh.read(), Metadata={"duration": "99"}
        )
    task = wait_for(lambda: tasks_for_key(api, key))[0]
    assert task["status"] == "failed"
    assert task["error"]["code"] == "invalid_request"
    assert "duration" in task["error"]["message"]


def test_openapi_document_and_swagger_ui_are_served(stack: LocalStack) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    assert "/v1/videos" in spec["paths"]
    assert "VideoRequest" in json.dumps(spec)
    docs = httpx.get(f"{stack.url}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_finished_task_is_delivered_as_a_signed_webhook_retried_until_accepted(
    stack: LocalStack,
    api: httpx.Client,
    image_url: str,
    webhook_receiver: Receiver,
) -> None:
    url, seen, answers = webhook_receiver
    answers.extend([500, 503])  # the receiver is down twice
    task = create(api, {"image_url": image_url, "duration": 2, "resolution": "720p", "webhook_url": url})
    assert finished(api, task["id"])["status"] == "succeeded"
    wait_for(lambda: len(seen) >= 3, seconds=30)
    secret = api.get("/v1/webhooks/secret").json()["secret"]
    headers, body = seen[-1]
    event = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    assert event["type"] == "video.succeeded"
    assert event["data"]["id"] == task["id"]
    assert event["data"]["output"]["key"].endswith(".mp4")
    assert len({h["Webhook-Id"] for h, _ in seen}) == 1  # one message id: receivers can drop duplicates
    webhook = api.get(f"/v1/videos/{task['id']}").json()["webhook"]
    assert webhook["delivered"] is True
    assert [a["result"] for a in webhook["attempts"]] == ["HTTP 500", "HTTP 503", "HTTP 204"]
    drained(stack, "DeliveryQueue")
    assert len(seen) == 3  # delivered once it was accepted, never again


def test_webhook_signature_does_not_verify_with_another_tenants_secret(
    rt: Runtime, stack: LocalStack, api: httpx.Client
) -> None:
    rt.records.put_api_key("tenant-b-key", "tenant-b")
    mine = api.get("/v1/webhooks/secret").json()["secret"]
    theirs = httpx.get(
        f"{stack.url}/v1/webhooks/secret", headers={"Authorization": "Bearer tenant-b-key"}
    ).json()
    assert mine.startswith("whsec_")
    assert mine != theirs["secret"]


def sample_png() -> bytes:
    with open("assets/sample.png", "rb") as fh:
        return fh.read()


def jpeg_of_the_sample() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.open("assets/sample.png").convert("RGB").save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("trips/my lake photo.jpg", jpeg_of_the_sample),
        ("été [1]+2.png", sample_png),
    ],
)
def test_a_drop_folder_image_named_as_people_name_files_is_animated_beside_its_mirrored_name(
    api: httpx.Client, stack: LocalStack, name: str, body: Any
) -> None:
    key = f"uploads/{stack.tenant}/{name}"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.bucket, Key=key, Body=body(), Metadata={"duration": "2", "resolution": "720p"})
    task = wait_for(lambda: tasks_for_key(api, key))[0]
    view = finished(api, task["id"])
    assert view["status"] == "succeeded", view.get("error")
    mirrored = f"outputs/{stack.tenant}/{name.rsplit('.', 1)[0]}-{task['id']}.mp4"
    assert view["output"]["key"] == mirrored
    video = s3.get_object(Bucket=stack.bucket, Key=mirrored)["Body"].read()
    assert len(video) == view["output"]["size"]
    with av.open(io.BytesIO(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_a_drop_folder_file_the_model_cannot_take_is_listed_as_a_failed_task(
    api: httpx.Client, stack: LocalStack
) -> None:
    key = f"uploads/{stack.tenant}/party time.gif"
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"GIF89a")
    task = wait_for(lambda: tasks_for_key(api, key))[0]
    assert task["status"] == "failed"
    assert task["error"]["code"] == "invalid_request"
    assert (
        task["error"]["message"]
        == "'party time.gif' is not an image the model accepts (JPEG, PNG, BMP, WEBP)"
    )


def test_no_later_upload_changes_the_video_of_a_task_that_has_ended(
    api: httpx.Client, stack: LocalStack, image_url: str
) -> None:
    """An API task, then cat.png twice (another prompt the second time, so another video), cat.jpg beside
    it, and an image named after the API task: each task keeps its own video at its own key."""
    s3, tenant = boto3.client("s3"), stack.tenant
    shape = {"duration": "2", "resolution": "720p"}
    ended = [finished(api, create(api, {"image_url": image_url, "prompt": "api", **shape})["id"])]
    png = open("assets/sample.png", "rb").read()  # noqa: SIM115 - read whole at once
    jpeg = io.BytesIO()
    with av.open(io.BytesIO(png)) as container:  # the sample as a JPEG, decoded and encoded by PyAV
        next(container.decode(video=0)).to_image().convert("RGB").save(jpeg, "JPEG")
    drops = [
        ("cat.png", png, "first cat"),
        ("cat.png", png, "second cat"),
        ("cat.jpg", jpeg.getvalue(), "jpeg cat"),
        (f"{ended[0]['id']}.png", png, "named like a task"),
    ]
    for name, body, prompt in drops:
        key = f"uploads/{tenant}/{name}"
        seen = {t["id"] for t in tasks_for_key(api, key)}
        s3.put_object(Bucket=stack.bucket, Key=key, Body=body, Metadata={"prompt": prompt, **shape})
        [task] = wait_for(
            lambda key=key, seen=seen: [t for t in tasks_for_key(api, key) if t["id"] not in seen]
        )
        ended.append(finished(api, task["id"]))
    assert [view["status"] for view in ended] == ["succeeded"] * 5, [v.get("error") for v in ended]
    keys = [view["output"]["key"] for view in ended]
    assert len(set(keys)) == 5, keys
    assert len({view["output"]["sha256"] for view in ended}) == 5  # five prompts, five videos
    for view in ended:  # after every later upload, each task's URL serves the video it records
        fresh = api.get(f"/v1/videos/{view['id']}").json()
        download = httpx.get(fresh["output_url"])
        assert hashlib.sha256(download.content).hexdigest() == view["output"]["sha256"], view["id"]
