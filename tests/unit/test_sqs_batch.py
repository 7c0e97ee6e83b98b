"""i2v.batch: SQS partial batch responses, as the event source reads them (ReportBatchItemFailures)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from i2v.batch import Record, partial_batch


class Refused(Exception):
    pass


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m-{n}", "receiptHandle": f"r-{n}", "body": body, "eventSource": "aws:sqs"}
            for n, body in enumerate(bodies)
        ]
    }


def test_only_the_records_that_raise_are_named_back_each_handled_once() -> None:
    handled: list[str] = []

    def handle(record: Record) -> None:
        handled.append(record["messageId"])
        if json.loads(record["body"])["ok"] is False:
            raise ValueError("no")

    event = sqs_event('{"ok": true}', '{"ok": false}', '{"ok": true}', '{"ok": false}')
    assert partial_batch(event, handle) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]
    }
    assert handled == ["m-0", "m-1", "m-2", "m-3"]


def test_a_batch_whose_every_record_fails_is_answered_not_raised() -> None:
    def handle(record: Record) -> None:
        raise RuntimeError("down")

    answer = partial_batch(sqs_event("a", "b"), handle)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}


def test_a_batch_of_successes_names_nothing() -> None:
    assert partial_batch(sqs_event("a", "b"), lambda record: record["body"]) == {"batchItemFailures": []}


def test_an_unexpected_failure_is_logged_with_its_record_and_traceback_a_told_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handle(record: Record) -> None:
        raise Refused("logged by the use case") if record["body"] == "told" else KeyError("bug")

    with caplog.at_level("INFO"):
        answer = partial_batch(sqs_event("told", "bug"), handle, told=(Refused,))
    assert len(answer["batchItemFailures"]) == 2
    logged = [r for r in caplog.records if r.name.endswith("batch")]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], KeyError)
    assert getattr(logged[0], "message_id", None) == "m-1"
