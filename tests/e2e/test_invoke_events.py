"""`make invoke FN=<function> EVENT=events/<case>.json` gives every sample event its function's real answer on
a fresh local stack (the key, task, job and images the events name are made first), and a file that is not
an event for that function is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from i2v_local.__main__ import invoke
from i2v_local.samples import SAMPLE_TASK, sample_token
from tests.support import EVENTS, load_event

Check = Callable[[Any, str], None]


def answered(code: int, **fields: Any) -> Check:
    """An API Gateway answer with this status code, whose JSON body has these fields."""

    def check(result: Any, notes: str) -> None:
        assert result["statusCode"] == code, result["body"]
        body = json.loads(result["body"])
        assert {k: body.get(k) for k in fields} == fields, body

    return check


def listed(result: Any, notes: str) -> None:
    assert result["statusCode"] == 200, result["body"]
    assert [t["id"] for t in json.loads(result["body"])["items"]] == [SAMPLE_TASK]


def cancelled(result: Any, notes: str) -> None:
    answered(200, id=SAMPLE_TASK, status="cancelled")(result, notes)
    assert "cancel" not in json.loads(result["body"])["links"]  # nothing left to cancel


def callback_taken(result: Any, notes: str) -> None:
    answered(200, id=SAMPLE_TASK)(result, notes)  # verified: the sample token is the sample task's
    assert "1 ingest message(s) queued for IngestFunction" in notes


def upload_made_a_task(result: Any, notes: str) -> None:
    assert result == {"batchItemFailures": []}
    assert "the drop folder made task vid_" in notes


def swept(result: Any, notes: str) -> None:
    assert result == {"submitted": 1}  # the sample task was due; its job is still queued at the provider


def ingested(result: Any, notes: str) -> None:
    assert result == {"batchItemFailures": []}
    assert f"task {SAMPLE_TASK} is now succeeded, its video at s3://" in notes


# Every sample event: the function that takes it, and what it should show (the README's table).
EXPECTED: dict[str, tuple[str, Check]] = {
    "api_create.json": ("ApiFunction", answered(202, status="submitted", provider="local")),
    "api_get.json": ("ApiFunction", answered(200, id=SAMPLE_TASK, status="submitted")),
    "api_list.json": ("ApiFunction", listed),
    "api_cancel.json": ("ApiFunction", cancelled),
    "callback.json": ("CallbackFunction", callback_taken),
    "s3_put.json": ("S3TriggerFunction", upload_made_a_task),
    "schedule.json": ("SweeperFunction", swept),
    "sqs_ingest.json": ("IngestFunction", ingested),
}
SAMPLES = sorted(p.name for p in EVENTS.glob("*.json") if p.name != "env.json")


def printed_result(out: str) -> Any:
    """The handler's answer as invoke prints it (indented JSON), among any one-line JSON log records."""
    lines = out.splitlines()
    start = lines.index("{")
    return json.loads("\n".join(lines[start : lines.index("}", start) + 1]))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_event_gets_its_functions_answer_on_a_fresh_stack(
    name: str, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert name in EXPECTED, f"events/{name} has no expected outcome here (nor a row in the README table)"
    function, check = EXPECTED[name]
    assert invoke(function, f"events/{name}", aws_endpoint=moto_endpoint) == 0
    out, err = capsys.readouterr()
    check(printed_result(out), err)
    assert "Traceback" not in out + err


def test_the_sample_callback_carries_the_sample_tasks_token() -> None:
    assert load_event("callback.json")["queryStringParameters"] == {"token": sample_token()}


@pytest.mark.parametrize(
    ("function", "content", "says"),
    [
        ("ApiFunction", "not json {", "is not JSON: Expecting value"),
        ("ApiFunction", '{"hello": "world"}', "is not an event any function takes"),
        ("ApiFunction", "[1, 2]", "is not an event any function takes"),
        ("NoSuchFunction", "{}", "unknown function 'NoSuchFunction'; template.yaml has ApiFunction, "),
        ("SweeperFunction", (EVENTS / "api_get.json").read_text(), "is an API Gateway event; Sweeper"),
        ("ApiFunction", (EVENTS / "s3_put.json").read_text(), "is an S3 event; ApiFunction takes API"),
    ],
)
def test_a_bad_event_is_one_line_and_a_non_zero_exit(
    function: str,
    content: str,
    says: str,
    tmp_path: Path,
    moto_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    assert invoke(function, str(path), aws_endpoint=moto_endpoint) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("invoke: "), err
    assert says in err, err


def test_a_batch_whose_record_fails_is_one_line_and_exit_1(
    tmp_path: Path, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("sqs_ingest.json")
    event["Records"][0]["body"] = "{}"  # an SQS record, but no ingest message
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    assert invoke("IngestFunction", str(path), aws_endpoint=moto_endpoint) == 1
    out, err = capsys.readouterr()
    message_id = event["Records"][0]["messageId"]
    assert err.strip().splitlines() == [
        f"invoke: IngestFunction failed 1 of 1 record(s) ({message_id}): they return to the queue;"
        " its log says why"
    ]
    assert '"batchItemFailures"' in out
