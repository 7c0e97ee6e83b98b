"""Webhooks on the local stack: http to 127.0.0.1 is delivered, signed, verifiable with the standardwebhooks
library; a failed attempt is one log line naming the host, the attempt and what happened, never a
traceback, and the queue gets the message back to retry."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook

from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from i2v_local.stack import sqs_event
from tests.support import Receiver, api_call, invoke


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True  # the task is ended by a cancel: no render needed


def ended_task_with_webhook(aws: LocalResources, webhook_url: str) -> tuple[str, dict[str, Any]]:
    """A task with this webhook_url, cancelled; (its id, the Deliver function's SQS event for it)."""
    image = f"s3://{aws.refs['Bucket']}/inputs/demo/sample.png"
    status, task = api_call("POST", "/v1/videos", {"image_url": image, "webhook_url": webhook_url})
    assert status == 202, task
    assert api_call("POST", f"/v1/videos/{task['id']}/cancel")[0] == 200
    sqs = boto3.client("sqs")
    url = aws.refs["DeliveryQueue"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"])
    return task["id"], sqs_event(messages["Messages"], arn)


def warnings_and_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # Any logger's: a child logger's name depends on whether its module was imported before the service
    # name was set (in a test run, collection may import it first).
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def printed(record: logging.LogRecord) -> str:
    """The record as the functions print it: powertools' JSON formatter, as CloudWatch and `make local`
    show it."""
    handler: logging.Handler = logging.getLogger("i2v-gateway").powertools_handler  # type: ignore[attr-defined]
    assert handler.formatter is not None
    return handler.formatter.format(record)


def test_http_to_loopback_is_delivered_signed_and_verifies_with_standardwebhooks(
    aws: LocalResources, webhook_receiver: Receiver
) -> None:
    url, seen, _ = webhook_receiver
    task_id, event = ended_task_with_webhook(aws, url)
    assert invoke("deliver", event) == {"batchItemFailures": []}
    [(headers, body)] = seen
    _, secret = api_call("GET", "/v1/webhooks/secret")
    verified = Webhook(secret["secret"]).verify(body, {k.lower(): v for k, v in headers.items()})
    assert (verified["type"], verified["data"]["id"]) == ("video.cancelled", task_id)


@pytest.mark.parametrize(
    ("answer", "error"),
    [(500, "HTTP 500"), (None, "ConnectError: ")],  # None: nothing listens on the port
)
def test_a_failed_attempt_logs_one_line_with_host_attempt_and_what_happened(
    aws: LocalResources,
    webhook_receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    answer: int | None,
    error: str,
) -> None:
    url, _, answers = webhook_receiver
    if answer is None:
        url = "http://127.0.0.1:9/hooks/video"  # the discard port: refused
    else:
        answers.append(answer)
    task_id, event = ended_task_with_webhook(aws, url)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = invoke("deliver", event)
    # Not raised: the message is reported failed, and comes back later for the next attempt.
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    [record] = warnings_and_worse(caplog)
    assert record.exc_info is None
    line = printed(record)
    assert "\n" not in line
    logged = json.loads(line)
    assert logged["message"] == "webhook attempt failed"
    assert (logged["task_id"], logged["host"], logged["attempt"]) == (task_id, "127.0.0.1", 1)
    assert logged["error"].startswith(error), logged["error"]
    assert "Traceback" not in line
