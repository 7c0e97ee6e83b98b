"""Helpers the tests share: sample events, invoking real handlers, calling the API function."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3

from i2v_local.stack import FakeContext, load_handler

if TYPE_CHECKING:
    from i2v.models import Task
    from i2v.runtime import Runtime
    from i2v_local.aws import LocalResources

# A loopback webhook receiver (the `webhook_receiver` fixture): its URL, the requests it saw (headers, body),
# and the status codes it is to answer in turn before 204.
Receiver = tuple[str, list[tuple[dict[str, str], bytes]], list[int]]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
SAMPLE_KEY = "i2v_sample_key_0123456789"  # the key in events/api_*.json


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


containers: dict[str, Any] = {}  # function -> its loaded handler; the `aws` fixture empties it per test


def handler(function: str) -> Any:
    """The function's handler in a container that lives for the test (loaded on first use, a cold start)."""
    if function not in containers:
        containers[function] = load_handler(f"functions/{function}", "handler.lambda_handler")
    return containers[function]


def invoke(function: str, event: dict[str, Any]) -> Any:
    """Run a function's real handler, loaded from its CodeUri as Lambda would."""
    return handler(function)(copy.deepcopy(event), FakeContext(function_name=function))


def api_call(
    method: str,
    path: str,
    body: Any = None,
    key: str | None = SAMPLE_KEY,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    base64_encoded: bool = False,
) -> tuple[int, Any]:
    """Call the API function with an event built from events/api_create.json; returns (status, JSON body)."""
    event = load_event("api_create.json")
    event.update(httpMethod=method, path=path, resource=path, queryStringParameters=query)
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    event["headers"] = hdrs
    event["multiValueHeaders"] = {k: [v] for k, v in hdrs.items()}
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event["isBase64Encoded"] = base64_encoded
    event["requestContext"].update(httpMethod=method, path=f"/live{path}", resourcePath=path)
    result = invoke("api", event)
    text = result.get("body") or "null"
    return result["statusCode"], json.loads(text) if text.strip().startswith(("{", "[", "null")) else text


def copy_bus_to_queue(bus: str, queue: str) -> str:
    """A queue that gets a copy of every event the gateway puts on `bus` (moto delivers within put_events);
    returns its URL."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = str(sqs.create_queue(QueueName=queue)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="copy-all", EventBusName=bus, EventPattern=json.dumps({"source": ["i2v.gateway"]}))
    events.put_targets(Rule="copy-all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def drive_until_ended(rt: Runtime, aws: LocalResources, ids: list[str], seconds: float) -> list[Task]:
    """Run the sweeper and the ingest function as their schedule and queue would, until every task ended."""
    from i2v.sweep import sweep

    sqs = boto3.client("sqs")
    deadline = time.monotonic() + seconds
    while True:
        tasks = [rt.tasks.require(task_id) for task_id in ids]
        if all(t.status.terminal for t in tasks):
            return tasks
        assert time.monotonic() < deadline, [t.status for t in tasks]
        sweep(rt)
        got = sqs.receive_message(QueueUrl=aws.refs["IngestQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        records = [
            {**load_event("sqs_ingest.json")["Records"][0], "messageId": m["MessageId"], "body": m["Body"]}
            for m in got.get("Messages", [])
        ]
        if records:
            invoke("ingest", {"Records": records})
            for m in got["Messages"]:
                sqs.delete_message(QueueUrl=aws.refs["IngestQueue"], ReceiptHandle=m["ReceiptHandle"])
        else:
            time.sleep(0.2)


def s3_event(bucket: str, *keys: str) -> dict[str, Any]:
    """An S3 notification for these keys, encoded as S3 encodes them (`+` for a space)."""
    event = load_event("s3_put.json")
    template = event["Records"][0]
    event["Records"] = []
    for key in keys:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"].update(key=quote_plus(key, safe="/"), eTag="e1")
        event["Records"].append(record)
    return event
