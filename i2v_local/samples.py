"""The world the sample events in events/ name, made on a fresh local stack for `make invoke`.

Each sample event names things a fresh stack does not have: the API key `i2v_sample_key_0123456789` of
tenant `demo`, the task `vid_019ab1c2d3e4f5a6b7c8d9` at the `local` provider as job
`5dc76841b9bfe8f840fbd914`, the sample image under inputs/ and uploads/. `prepare` makes them, in the state
the event needs (a job still running for a cancel, a rendered one for a callback or an ingest), so every
sample event shows what its function does rather than a 401 or a 404. `check` refuses, in one line, an
event its function cannot take.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from i2v.messages import IngestMessage
from i2v.models import Attempt, Mode, Status, Task, VideoRequest
from i2v.submit import token_under
from i2v.views import iso
from i2v_local.stack import ROOT, LocalStack, clear_parameter_caches

SAMPLE_KEY = "i2v_sample_key_0123456789"
SAMPLE_TENANT = "demo"
SAMPLE_TASK = "vid_019ab1c2d3e4f5a6b7c8d9"
SAMPLE_JOB = "5dc76841b9bfe8f840fbd914"  # the local provider's job id for SAMPLE_TASK
SAMPLE_PROMPT = "the sun sinks slowly behind the hills"
# The callback secret of a stack made for `make invoke` (never of `make local` or a deployment), so the token
# in events/callback.json is SAMPLE_TASK's real token there: the sample callback is verified, not refused.
SAMPLE_CALLBACK_SECRET = "i2v-sample-callback-secret"  # noqa: S105 - a sample stack's, published on purpose

# The kind of event each kind of template event source delivers.
SOURCE_KINDS = {"Api": "API Gateway", "SQS": "SQS", "Schedule": "scheduled"}


class BadEvent(Exception):
    """An event its function cannot take; the message is the whole story, in one line."""


def sample_token() -> str:
    """SAMPLE_TASK's callback token under SAMPLE_CALLBACK_SECRET, made as the gateway makes every token."""
    return token_under(SAMPLE_CALLBACK_SECRET, SAMPLE_TASK)


def event_kind(event: Any) -> str:
    """What an event is, by its shape: "API Gateway", "S3", "SQS" or "scheduled"; else BadEvent."""
    if isinstance(event, dict):
        if "httpMethod" in event and "path" in event:
            return "API Gateway"
        if event.get("detail-type") == "Scheduled Event":
            return "scheduled"
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            source = records[0].get("eventSource")
            if source == "aws:s3":
                return "S3"
            if source == "aws:sqs":
                return "SQS"
    raise BadEvent(
        "is not an event any function takes: an API Gateway proxy event, an S3 or SQS event with Records,"
        " or a scheduled event"
    )


def kinds_taken(stack: LocalStack, function: str) -> set[str]:
    """The kinds of event `function` takes, from its event sources in template.yaml. The S3 trigger also
    takes S3's own event (what `sam local invoke -e events/s3_put.json` sends it)."""
    assert stack.resources is not None
    props = dict(stack.resources.of_type("AWS::Serverless::Function"))[function]
    sources = props.get("Events", {}).values()
    kinds = {SOURCE_KINDS[e["Type"]] for e in sources if e["Type"] in SOURCE_KINDS}
    if any("UploadsQueue" in str(e["Properties"].get("Queue")) for e in sources if e["Type"] == "SQS"):
        kinds.add("S3")
    return kinds


def check(stack: LocalStack, function: str, event: Any) -> None:
    """BadEvent unless `function` takes events of this kind."""
    kind = event_kind(event)
    taken = kinds_taken(stack, function)
    if kind not in taken:
        raise BadEvent(f"is {_a(kind)} event; {function} takes {' or '.join(sorted(taken))} events")


def _a(kind: str) -> str:
    return f"{'a' if kind == 'scheduled' else 'an'} {kind}"  # an API Gateway, an S3, an SQS


def prepare(stack: LocalStack, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Make what the sample events name, in the state this event needs; returns the event to invoke (the
    same, but for an ingest message's result link: see `_live_result_link`)."""
    # One handler, one event: no queue pump or schedule runs meanwhile (the seeded upload's own S3
    # notification would otherwise become a task beside the one the event makes).
    for logical in stack.functions:
        stack.pause(logical)
    assert stack.resources is not None
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.refs["CallbackSecret"], SecretString=SAMPLE_CALLBACK_SECRET
    )
    clear_parameter_caches()
    stack.records.put_api_key(SAMPLE_KEY, SAMPLE_TENANT)
    s3 = boto3.client("s3")
    image = (ROOT / "assets" / "sample.png").read_bytes()
    s3.put_object(Bucket=stack.bucket, Key=f"inputs/{SAMPLE_TENANT}/sample.png", Body=image)
    s3.put_object(
        Bucket=stack.bucket,
        Key=f"uploads/{SAMPLE_TENANT}/sample.png",
        Body=image,
        Metadata={"prompt": SAMPLE_PROMPT},
    )
    # A callback or an ingest is about a job that has rendered; anything else finds it still running.
    rendered = function in ("CallbackFunction", "IngestFunction")
    _seed_job(stack, rendered)
    _seed_task(stack)
    return _live_result_link(stack, event) if rendered else event


def _seed_job(stack: LocalStack, rendered: bool) -> None:
    """SAMPLE_JOB at the local provider's simulator: rendered (waited for), or queued and held there."""
    sim = stack.simulators["local"]
    bucket = stack.bucket
    image = boto3.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": f"inputs/{SAMPLE_TENANT}/sample.png"}, ExpiresIn=600
    )
    sim.faults.stall = not rendered
    sim.new_id = lambda: SAMPLE_JOB  # type: ignore[method-assign]  # the id the sample events name
    try:
        job = sim.create({"first_frame": image}, 2, "720p", None, {"image_url": image, "duration": 2})
    finally:
        del sim.new_id  # back to the class's own ids for every later job
    deadline = time.monotonic() + 60
    while rendered and job.state != "succeeded":
        if job.state == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"the sample job did not render: {job.error or 'took over 60 s'}")
        time.sleep(0.1)


def _seed_task(stack: LocalStack) -> None:
    """SAMPLE_TASK of tenant demo, submitted to the local provider as SAMPLE_JOB."""
    rt = stack.runtime()
    now = rt.now()
    request = VideoRequest(
        image_url=f"s3://{stack.bucket}/inputs/{SAMPLE_TENANT}/sample.png",
        prompt=SAMPLE_PROMPT,
        resolution="720p",
        duration=2,
    )
    task = Task(
        id=SAMPLE_TASK,
        tenant=SAMPLE_TENANT,
        status=Status.SUBMITTED,
        request=request,
        mode=Mode.FIRST_FRAME,
        provider="local",
        provider_task_id=SAMPLE_JOB,
        providers=["local"],
        attempts=[Attempt(provider="local", at=iso(now), outcome="accepted", provider_task_id=SAMPLE_JOB)],
        created_at=now,
        updated_at=now,
        deadline_at=now + rt.settings.task_deadline_seconds,
        next_poll_at=now,  # due: a scheduled sweep polls it
    )
    rt.tasks.create(task)


def _live_result_link(stack: LocalStack, event: dict[str, Any]) -> dict[str, Any]:
    """The event, with an ingest message for SAMPLE_JOB's video pointed at the simulator's live link.

    A provider's result link is signed and expires (the simulator's too), so no sample file can hold one
    that works; the sample's link names the job's file, and this gives it the signature it lacks.
    """
    sim = stack.simulators["local"]
    for record in event.get("Records", []):
        try:
            message = IngestMessage.model_validate_json(record.get("body") or "")
        except ValueError:
            continue  # not an ingest message: the function says so itself
        if f"/files/{SAMPLE_JOB}.mp4" in message.result_url:
            live = sim.result_url(sim.tasks[SAMPLE_JOB])
            record["body"] = json.dumps({**json.loads(record["body"]), "result_url": live})
    return event


def outcome(stack: LocalStack, function: str) -> str | None:
    """One line on what the invocation left behind that its answer does not show, if anything."""
    rt = stack.runtime()
    if function == "S3TriggerFunction":
        made = [t for t in rt.tasks.list_for_tenant(SAMPLE_TENANT, 10, None)[0] if t.source == "s3"]
        return "; ".join(f"the drop folder made task {t.id} ({t.status.value})" for t in made) or None
    if function in ("CallbackFunction", "IngestFunction", "SweeperFunction"):
        task = rt.tasks.require(SAMPLE_TASK)
        said = f"task {SAMPLE_TASK} is now {task.status.value}"
        if task.output is not None:
            said += f", its video at s3://{stack.bucket}/{task.output.key}"
        queued = _waiting(stack, "IngestQueue")
        return f"{said}; {queued} ingest message(s) queued for IngestFunction" if queued else said
    return None


def _waiting(stack: LocalStack, queue: str) -> int:
    assert stack.resources is not None
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.refs[queue], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])
