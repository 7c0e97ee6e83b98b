"""Steps the end-to-end tests share: create a task, wait for it, read what the gateway stored and sent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import httpx

from i2v.runtime import Runtime
from i2v_local.stack import LocalStack
from tests.support import load_event

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def wait_for(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


def finished(api: httpx.Client, task_id: str, seconds: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view: dict[str, Any] = api.get(f"/v1/videos/{task_id}").json()
        return view if view["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(done, seconds)
    return result


def stored_item(rt: Runtime, task_id: str) -> dict[str, Any]:
    item = rt.tasks.table.get(f"TASK#{task_id}")
    assert item is not None
    return item


def drained(stack: LocalStack, queue: str) -> None:
    """Wait until a queue holds no message, visible or being handled: every message sent to it so far has
    been handled and deleted (the stack's pumps delete a message only after its function returned)."""
    assert stack.resources is not None
    url = stack.resources.refs[queue]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def empty() -> bool:
        counts = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return all(counts[name] == "0" for name in names)

    wait_for(empty)


def bus_events(rt: Runtime, queue_url: str, task_id: str) -> list[dict[str, Any]]:
    """Every event on the bus about a task, read once the task's after-end steps are all done (so every
    send that will happen has happened; moto delivers bus events to the queue within put_events)."""
    wait_for(lambda: not stored_item(rt, task_id).get("outbox") and "finished_at" in stored_item(rt, task_id))
    sqs, found = boto3.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return [e for e in found if e["detail"]["id"] == task_id]
        for message in got["Messages"]:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def create(api: httpx.Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    resp = api.post("/v1/videos", json=body, headers=headers)
    assert resp.status_code == 202, resp.text
    created: dict[str, Any] = resp.json()
    return created


def upload_event(bucket: str, key: str, etag: str) -> dict[str, Any]:
    """The notification of a put as moto writes it (with no `sequencer`, which S3 itself adds)."""
    event = load_event("s3_put.json")
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"].update(key=key, eTag=etag)
    del event["Records"][0]["s3"]["object"]["sequencer"]
    return event


def tasks_for_key(api: httpx.Client, key: str) -> list[dict[str, Any]]:
    return [t for t in api.get("/v1/videos", params={"limit": 100}).json()["items"] if t["source_key"] == key]
