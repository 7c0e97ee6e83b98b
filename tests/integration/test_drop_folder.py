"""The drop folder takes any key S3 can hold: an image becomes a task, anything else under a tenant's folder
becomes a failed task saying why, and nothing it could record ends in the dead-letter queue."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from i2v import create, layout
from i2v.models import RequestProblem, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v.uploads import from_upload
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from i2v_local.stack import sqs_event
from tests.support import api_call, invoke, s3_event

PYDANTIC_HELP = "errors.pydantic.dev"


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True  # tasks stay submitted: these tests are about what becomes a task


def image(name: str) -> bytes:
    """A small image in the format its name says."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 90, 160)).save(out, fmt.get(name[name.rfind(".") :].lower(), "PNG"))
    return out.getvalue()


def notified(aws: LocalResources) -> dict[str, Any]:
    """The uploads queue's messages as the trigger's SQS event: what S3 itself wrote (keys URL-encoded)."""
    sqs = boto3.client("sqs")
    url = aws.refs["UploadsQueue"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"])
    messages = got["Messages"]
    uploads = [m for m in messages if "Records" in json.loads(m["Body"])]  # not S3's s3:TestEvent
    return sqs_event(uploads, arn)


def tasks_of(rt: Runtime, tenant: str) -> list[Task]:
    return rt.tasks.list_for_tenant(tenant, 100, None)[0]


@pytest.mark.parametrize(
    "key",
    [
        "uploads/demo/trips/my lake photo.jpg",
        "uploads/demo/été [1]+2.png",
        "uploads/demo/100% (final) & more?#.webp",
        "uploads/demo/日本/猫 cat.JPEG",
    ],
)
def test_an_image_with_any_key_s3_can_hold_becomes_a_task_from_s3s_own_notification(
    rt: Runtime, aws: LocalResources, key: str
) -> None:
    bucket = aws.refs["Bucket"]
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=image(key), Metadata={"prompt": "ripples"})
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    [task] = tasks_of(rt, "demo")
    assert (task.status, task.source_key, task.request.prompt) == (Status.SUBMITTED, key, "ripples")
    assert layout.parse_s3_url(task.request.image_url or "", bucket) == key
    stem = key.removeprefix("uploads/").rsplit(".", 1)[0]
    assert layout.output_key(task) == f"outputs/{stem}-{task.id}.mp4"


REFUSED = [
    # key, the tenant it is recorded under, what the message says
    ("uploads/demo/../beta/cat.png", "demo", "has a '..' path segment"),
    ("uploads/demo/./../beta/cat.png", "demo", "has a '.' path segment"),
    ("uploads/./beta/cat.png", layout.UNATTRIBUTED, "has a '.' path segment"),
    ("uploads/../uploads/beta/cat.png", layout.UNATTRIBUTED, "has a '..' path segment"),
    ("uploads/demo//cat.png", "demo", "has a empty path segment"),
    ("uploads//beta/cat.png", layout.UNATTRIBUTED, "has a empty path segment"),
    ("uploads/demo/a\\..\\..\\beta\\cat.png", "demo", "has a backslash"),
    ("uploads/nobody/cat.png", layout.UNATTRIBUTED, "'nobody' is not a tenant of this gateway"),
    ("uploads/demo#x/cat.png", layout.UNATTRIBUTED, "is not under a known tenant's folder"),
    ("uploads/demo/a.gif", "demo", "'a.gif' is not an image the model accepts (JPEG, PNG, BMP, WEBP)"),
    ("uploads/demo/my scan [2].tiff", "demo", "'my scan [2].tiff' is not an image the model accepts"),
]


@pytest.mark.parametrize(("key", "owner", "reason"), REFUSED)
def test_a_key_that_cannot_be_a_task_is_a_failed_task_kept_from_any_other_tenant(
    rt: Runtime, aws: LocalResources, key: str, owner: str, reason: str
) -> None:
    rt.records.put_api_key("beta-key", "beta")
    invoke("s3_trigger", s3_event(aws.refs["Bucket"], key))  # a direct S3 event: anything raised fails here
    [task] = tasks_of(rt, owner)
    assert (task.status, task.source_key, task.error and task.error.code) == (
        Status.FAILED,
        key,
        "invalid_request",
    )
    assert task.error
    assert reason in task.error.message
    assert [t.id for t in tasks_of(rt, "beta")] == []  # never shown to the tenant the key points at
    assert task.tenant == owner


def test_a_refused_upload_is_recorded_once_per_put(rt: Runtime, aws: LocalResources) -> None:
    event = s3_event(aws.refs["Bucket"], "uploads/demo/party.gif")
    invoke("s3_trigger", event)
    invoke("s3_trigger", event)  # a redelivered notification
    assert len(tasks_of(rt, "demo")) == 1
    event["Records"][0]["s3"]["object"]["sequencer"] = "0A1B2C3D4E5F678902"  # the same bytes put again
    invoke("s3_trigger", event)
    assert len(tasks_of(rt, "demo")) == 2
    del event["Records"][0]["s3"]["object"]["sequencer"]  # as moto writes it: the ETag tells puts apart
    invoke("s3_trigger", event)
    invoke("s3_trigger", event)
    event["Records"][0]["s3"]["object"]["eTag"] = "e2"
    invoke("s3_trigger", event)
    assert len(tasks_of(rt, "demo")) == 4


@pytest.mark.parametrize(
    "key",
    ["uploads/demo/trips/cat.json", "uploads/cat.png", "uploads/demo/trips/", "inputs/demo/cat.png"],
)
def test_sidecars_folder_markers_and_keys_under_no_tenant_are_ignored_quietly(
    rt: Runtime, aws: LocalResources, key: str
) -> None:
    invoke("s3_trigger", s3_event(aws.refs["Bucket"], key))
    assert tasks_of(rt, "demo") == tasks_of(rt, layout.UNATTRIBUTED) == []


def test_refused_options_read_as_field_and_message_not_as_pydantic_text(
    rt: Runtime, aws: LocalResources
) -> None:
    key = "uploads/demo/my lake photo.png"
    boto3.client("s3").put_object(
        Bucket=aws.refs["Bucket"], Key=key, Body=image(key), Metadata={"duration": "99", "seed": "x"}
    )
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    [task] = tasks_of(rt, "demo")
    assert task.status == Status.FAILED
    assert task.error
    assert (
        task.error.message
        == "x-amz-meta-duration: must be at most 15; x-amz-meta-seed: must be a whole number"
    )
    assert PYDANTIC_HELP not in task.error.message


def test_refused_sidecar_options_name_the_sidecar_field_and_the_limit(
    rt: Runtime, aws: LocalResources
) -> None:
    key = "uploads/demo/trip/lake.png"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws.refs["Bucket"], Key=key, Body=image(key), Metadata={"prompt": "a lake"})
    sidecar = {"resolution": "4k", "webhook_url": "ftp://hooks.example/x", "colour": "red"}
    s3.put_object(Bucket=aws.refs["Bucket"], Key="uploads/demo/trip/lake.json", Body=json.dumps(sidecar))
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    [task] = [t for t in tasks_of(rt, "demo") if t.source_key == key]
    assert task.error
    assert task.error.message.split("; ")[:2] == [
        "resolution in lake.json: must be '720p' or '1080p'",
        "webhook_url in lake.json: must be an https URL",
    ]
    assert task.error.message.split("; ")[2].startswith(
        "colour in lake.json: is not an option (the options: prompt, "
    )
    assert PYDANTIC_HELP not in task.error.message


@pytest.mark.parametrize(
    ("sidecar", "reason"),
    [
        (b'{"prompt": "a lake",}', "lake.json is not JSON: Expecting property name enclosed in double"),
        (b'["a lake"]', 'lake.json must hold one JSON object of options, like {"prompt": "..."}'),
        (b"\xff\xfe", "lake.json is not JSON: "),
        (b'{"seed": ' + b"1" * 5000 + b"}", "lake.json is not JSON: a number in it has more digits than"),
        (b"[" * 30_000 + b"]" * 30_000, "lake.json is not JSON: it is nested too deeply"),
    ],
)
def test_a_sidecar_that_cannot_be_read_fails_the_upload_saying_why(
    rt: Runtime, aws: LocalResources, sidecar: bytes, reason: str
) -> None:
    # Never animated without the options its uploader wrote: that would be a video nobody asked for.
    key = "uploads/demo/trip/lake.png"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws.refs["Bucket"], Key="uploads/demo/trip/lake.json", Body=sidecar)
    s3.put_object(Bucket=aws.refs["Bucket"], Key=key, Body=image(key))
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    [task] = [t for t in tasks_of(rt, "demo") if t.source_key == key]
    assert task.status is Status.FAILED
    assert task.error is not None
    assert task.error.message.startswith(reason)
    assert task.provider is None  # nothing was submitted


def test_a_key_too_long_for_an_image_url_is_still_recorded_as_failed(
    rt: Runtime, aws: LocalResources
) -> None:
    key = "uploads/demo/" + "é" * 500 + ".png"  # 1,017 bytes: S3 holds it; percent-encoded it is 3,000+ chars
    boto3.client("s3").put_object(Bucket=aws.refs["Bucket"], Key=key, Body=image(key))
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    [task] = tasks_of(rt, "demo")
    assert (task.status, task.source_key) == (Status.FAILED, key)
    assert task.error
    assert task.error.message.startswith("image_url: ")
    assert "2048" in task.error.message


def test_an_image_gone_before_it_is_read_is_a_failed_task(rt: Runtime, aws: LocalResources) -> None:
    invoke("s3_trigger", s3_event(aws.refs["Bucket"], "uploads/demo/deleted since.png"))
    [task] = tasks_of(rt, "demo")
    assert task.status == Status.FAILED
    assert task.error
    assert "could not be read" in task.error.message


def answer_403(operation: str, keys: set[str]) -> Any:
    """A botocore hook answering `operation` on these keys as S3 does for a caller without ListBucket."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] in keys:
            code = "AccessDenied" if operation == "GetObject" else "403"  # HEAD has no body: a bare 403
            error = {"Error": {"Code": code, "Message": "Access Denied"}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)

    return hook


def test_a_missing_sidecar_that_s3_answers_with_403_is_no_sidecar(rt: Runtime, aws: LocalResources) -> None:
    # Deployed, the trigger may read uploads/* but not list the bucket, so S3 answers a missing sidecar
    # with 403 AccessDenied; moto answers 404 NoSuchKey, hence the hook.
    bucket, key = aws.refs["Bucket"], "uploads/demo/trips/cat.png"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=image(key), Metadata={"prompt": "purr"})
    sidecar = "uploads/demo/trips/cat.json"
    rt.s3.meta.events.register("before-parameter-build.s3.GetObject", answer_403("GetObject", {sidecar}))
    task = from_upload(rt, bucket, key, "e1")
    assert task is not None
    assert (task.status, task.request.prompt) == (Status.SUBMITTED, "purr")


def test_an_image_s3_answers_with_403_is_a_failed_task(rt: Runtime, aws: LocalResources) -> None:
    bucket, key = aws.refs["Bucket"], "uploads/demo/gone.png"
    rt.s3.meta.events.register("before-parameter-build.s3.HeadObject", answer_403("HeadObject", {key}))
    task = from_upload(rt, bucket, key, "e1")
    assert task is not None
    assert task.status == Status.FAILED
    assert task.error
    assert "could not be read" in task.error.message


def test_idempotency_keys_a_client_sends_cannot_spend_the_keys_the_drop_folder_makes_for_itself(
    rt: Runtime, aws: LocalResources
) -> None:
    bucket, s3 = aws.refs["Bucket"], boto3.client("s3")
    etags = {}
    for key in ("uploads/demo/victim.png", "uploads/demo/party.gif"):
        etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=image("victim.png"))["ETag"].strip('"')
    # Every form the gateway's own keys have taken, sent first by a client of the same tenant.
    for key, etag in etags.items():
        for sent in (
            f"s3:{key}:{etag}",
            f"{key}:{etag}",
            f"s3:{key}:{etag}:rejected",
            f"{key}:{etag}:rejected",
        ):
            body = {"image_url": f"s3://{bucket}/inputs/demo/sample.png", "prompt": sent}
            status, answer = api_call("POST", "/v1/videos", body, headers={"Idempotency-Key": sent})
            assert status == 202, answer
    assert invoke("s3_trigger", notified(aws)) == {"batchItemFailures": []}
    dropped = {t.source_key: t for t in tasks_of(rt, "demo") if t.source == "s3"}
    assert dropped["uploads/demo/victim.png"].status is Status.SUBMITTED, dropped
    refused = dropped["uploads/demo/party.gif"]
    assert refused.error
    assert "is not an image the model accepts" in refused.error.message


def test_an_image_our_storage_does_not_serve_in_time_is_sent_again_not_failed(
    rt: Runtime, aws: LocalResources
) -> None:
    # As under a burst: S3 throttles, or the probe's share of the call runs out before the image arrives.
    bucket, key = aws.refs["Bucket"], "uploads/demo/slow day.png"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=image(key))
    rt.settings.probe_deadline_seconds = 1e-6
    with pytest.raises(RequestProblem) as caught:  # the record fails: SQS delivers it again later
        from_upload(rt, bucket, key, "v1")
    assert caught.value.status == 503
    assert tasks_of(rt, "demo") == []
    rt.settings.probe_deadline_seconds = 5.0
    task = from_upload(rt, bucket, key, "v1")
    assert task is not None
    assert task.status is Status.SUBMITTED
    assert [t.id for t in tasks_of(rt, "demo")] == [task.id]


def test_an_api_input_our_storage_does_not_serve_in_time_is_a_503_and_stores_nothing(
    rt: Runtime, aws: LocalResources, tenant: str
) -> None:
    rt.settings.probe_deadline_seconds = 1e-6
    request = VideoRequest(image_url=f"s3://{aws.refs['Bucket']}/inputs/demo/sample.png")
    with pytest.raises(RequestProblem) as caught:
        create.create(rt, tenant, request)
    assert caught.value.status == 503
    assert "send it again" in caught.value.detail
    assert tasks_of(rt, tenant) == []
