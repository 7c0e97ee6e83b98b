"""Nothing lost, nothing paid twice: overlapping sweeps, duplicate ingest messages, a failed send, a cancel
racing completion, and an ingest that died after storing the MP4 — against moto and the local simulator.

Each test counts what reached the outside world (submits and downloads at the simulator, objects in S3,
events on the bus, webhook POSTs at a receiver), so it fails if any of them happens twice, or never.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from i2v import cancel, create, layout
from i2v.ingest import ingest
from i2v.lifecycle import Step, Work
from i2v.media import PART_SIZE, stream_to_s3
from i2v.messages import IngestMessage
from i2v.models import TERMINAL, Mode, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v.store import Claim, new_task_id
from i2v.sweep import sweep
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from i2v_local.stack import FakeContext, load_handler, sqs_event
from tests.support import api_call, copy_bus_to_queue, invoke, load_event

FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # the box every MP4 starts with


def past() -> int:
    return int(time.time()) - 1


def mp4_like(size: int, seed: int) -> bytes:
    """`size` bytes that pass ingest's MP4 check: a valid ftyp box, then noise."""
    return FTYP + random.Random(seed).randbytes(size - len(FTYP))


def in_threads(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs on threads released together by a barrier; their results (or raised errors), in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int, job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = job()
        except Exception as exc:  # the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a job did not finish"
    return results


# -- what reaches the outside --------------------------------------------------------------------------------


@dataclass
class Webhooks:
    """A loopback webhook receiver: every POST counted by its webhook-id (msg_<task id>_<status>)."""

    url: str = ""
    received: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_task(self, task_id: str) -> Counter[str]:
        with self.lock:
            return Counter({k: n for k, n in self.received.items() if k.startswith(f"msg_{task_id}_")})


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()

    @Request.application
    def app(request: Request) -> Response:
        with hooks.lock:
            hooks.received[request.headers.get("webhook-id", "")] += 1
        return Response(status=204)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    hooks.url = f"http://127.0.0.1:{server.server_port}/hooks"  # loopback: the local env allows it
    yield hooks
    server.shutdown()


@pytest.fixture
def bus(aws: LocalResources) -> str:
    """A queue that gets a copy of every event on the gateway's bus (moto delivers within put_events)."""
    return copy_bus_to_queue(aws.refs["EventBus"], "bus-copy")


def announced(bus_url: str) -> Counter[tuple[str, str]]:
    """(task id, status) of every event the bus carried, each read once."""
    sqs, seen = boto3.client("sqs"), Counter[tuple[str, str]]()
    while messages := sqs.receive_message(QueueUrl=bus_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            detail = json.loads(message["Body"])["detail"]
            seen[(detail["id"], detail["status"])] += 1
            sqs.delete_message(QueueUrl=bus_url, ReceiptHandle=message["ReceiptHandle"])
    return seen


def delivery_messages(aws: LocalResources) -> list[dict[str, Any]]:
    """Take what is on the delivery queue, as the Deliver function's event source does."""
    sqs, found = boto3.client("sqs"), list[dict[str, Any]]()
    while True:
        got = sqs.receive_message(
            QueueUrl=aws.refs["DeliveryQueue"], MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
        if not got.get("Messages"):
            return found
        found.extend(dict(message) for message in got["Messages"])
        for message in got["Messages"]:
            sqs.delete_message(QueueUrl=aws.refs["DeliveryQueue"], ReceiptHandle=message["ReceiptHandle"])


def deliver(aws: LocalResources, messages: list[dict[str, Any]]) -> None:
    """Run the real Deliver function on these delivery queue messages."""
    if messages:
        event = sqs_event(messages, aws.attrs[("DeliveryQueue", "Arn")])
        assert invoke("deliver", event) == {"batchItemFailures": []}


def outputs(aws: LocalResources, tenant: str) -> dict[str, bytes]:
    """Every object under the tenant's outputs, with its content."""
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=aws.refs["Bucket"], Prefix=f"{layout.OUTPUTS}/{tenant}/")
    return {
        obj["Key"]: s3.get_object(Bucket=aws.refs["Bucket"], Key=obj["Key"])["Body"].read()
        for obj in listed.get("Contents", [])
    }


def stored_object(aws: LocalResources, key: str) -> bytes | None:
    try:
        body: bytes = boto3.client("s3").get_object(Bucket=aws.refs["Bucket"], Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchKey":
            raise
        return None
    return body


# -- tasks at the simulator ----------------------------------------------------------------------------------


def accepted_due_task(rt: Runtime, tenant: str, image_url: str) -> Task:
    """A task the API stored and never submitted (its function died), due for the sweeper."""
    now = int(time.time())
    task = Task(
        id=new_task_id(),
        tenant=tenant,
        status=Status.ACCEPTED,
        request=VideoRequest(image_url=image_url, duration=2, resolution="720p"),
        mode=Mode.FIRST_FRAME,
        providers=["local"],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_poll_at=past(),
    )
    rt.tasks.create(task)
    return task


def submitted_task(rt: Runtime, tenant: str, sim: LocalSimulator, webhook_url: str | None = None) -> Task:
    """A task created through the create use case and taken by the (stalled) simulator."""
    sim.faults.stall = True
    request = VideoRequest(
        image_url=f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png",
        duration=2,
        resolution="720p",
        webhook_url=webhook_url,
    )
    task, _ = create.create(rt, tenant, request)
    assert task.status is Status.SUBMITTED
    assert task.provider_task_id in sim.tasks
    return task


def job_done(sim: LocalSimulator, task: Task, video: Path) -> str:
    """The simulator finishes the task's job with this file as its result; the result URL."""
    assert task.provider_task_id is not None
    job = sim.tasks[task.provider_task_id]
    with sim.lock:
        job.video, job.state, job.progress, job.finished_at = video, "succeeded", 100, time.time()
    url = sim.result_url(job)
    assert url is not None
    return url


def ingest_event(task_id: str, result_url: str, copy: int = 0) -> dict[str, Any]:
    """An SQS event carrying one ingest message (each copy with its own message id, as a redelivery has)."""
    record = load_event("sqs_ingest.json")["Records"][0]
    body = IngestMessage(task_id=task_id, result_url=result_url).model_dump_json()
    return {"Records": [{**record, "messageId": f"{task_id}-{copy}", "body": body}]}


def run_sweeper() -> dict[str, int]:
    """One run of the real Sweeper function, on its schedule event."""
    outcomes: dict[str, int] = invoke("sweeper", load_event("schedule.json"))
    return outcomes


def ingest_container() -> Callable[[dict[str, Any]], Any]:
    """A new container of the Ingest function (a cold start of its own)."""
    handler = load_handler("functions/ingest", "handler.lambda_handler")
    return lambda event: handler(event, FakeContext(function_name="ingest"))


# -- overlapping sweeps --------------------------------------------------------------------------------------


def overlapping_sweeps(monkeypatch: pytest.MonkeyPatch, count: int = 2) -> list[Counter[str]]:
    """`count` sweeps, each in its own container, that all list the due tasks before any takes a turn, so
    every due task is contended by every sweep."""
    runtimes = [Runtime.from_environment() for _ in range(count)]
    listed = threading.Barrier(count)
    for rt in runtimes:

        def due(limit: int = 100, original: Callable[[int], Iterator[str]] = rt.tasks.due) -> Iterator[str]:
            ids = list(original(limit))
            listed.wait(timeout=30)
            return iter(ids)

        monkeypatch.setattr(rt.tasks, "due", due)
    results: list[Counter[str]] = in_threads(*(partial(sweep, rt) for rt in runtimes))
    return results


def test_two_overlapping_sweeps_submit_each_task_once(
    rt: Runtime,
    tenant: str,
    local_sim: LocalSimulator,
    media_server: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    tasks = [accepted_due_task(rt, tenant, f"{media_server[1]}/sample.png") for _ in range(20)]

    first, second = overlapping_sweeps(monkeypatch)

    assert first + second == Counter({"submitted": 20, "taken": 20}), (first, second)
    assert local_sim.submits == 20
    jobs: list[str | None] = []
    for task in tasks:
        stored = rt.tasks.require(task.id)
        assert stored.status is Status.SUBMITTED
        assert [(a.provider, a.outcome) for a in stored.attempts] == [("local", "accepted")]
        jobs.append(stored.provider_task_id)
    assert sorted(map(str, jobs)) == sorted(local_sim.tasks)  # one job per task, and no job without its task


def test_overlapping_sweeps_announce_each_ended_task_once(
    rt: Runtime,
    tenant: str,
    aws: LocalResources,
    bus: str,
    webhooks: Webhooks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ten tasks ended while EventBridge was down: each owes its event and its webhook.
    now = int(time.time())
    ids = []
    for _ in range(10):
        task = Task(
            id=new_task_id(),
            tenant=tenant,
            status=Status.FAILED,
            request=VideoRequest(image_url="https://media.example/a.png", webhook_url=webhooks.url),
            mode=Mode.FIRST_FRAME,
            created_at=now,
            updated_at=now,
            deadline_at=now + 3600,
            finished_at=now,
            next_poll_at=past(),
            outbox=[Step.PUBLISH, Step.NOTIFY],
        )
        rt.tasks.create(task)
        ids.append(task.id)

    first, second = overlapping_sweeps(monkeypatch)

    # Every task got a turn from each sweep; the second finds the outbox done, or being done.
    turns = first + second
    assert turns.total() == 20, turns
    assert set(turns) <= {"outbox_done", "outbox_taken"}, turns
    assert announced(bus) == Counter({(i, "failed"): 1 for i in ids})
    queued = delivery_messages(aws)
    assert sorted(json.loads(m["Body"])["task_id"] for m in queued) == sorted(ids)
    deliver(aws, queued)
    assert webhooks.received == Counter({f"msg_{i}_failed": 1 for i in ids})
    assert not list(rt.tasks.due())  # nothing is owed any more


# -- duplicate ingest messages -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result larger than one multipart part, so the copy takes two parts."""
    path = tmp_path_factory.mktemp("results") / "big.mp4"
    path.write_bytes(mp4_like(PART_SIZE + 1536 * 1024, seed=1))
    return path


@pytest.fixture(scope="module")
def small_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "small.mp4"
    path.write_bytes(mp4_like(64 * 1024, seed=2))
    return path


def test_duplicate_ingest_messages_at_once_download_store_announce_and_notify_once(
    rt: Runtime,
    tenant: str,
    aws: LocalResources,
    local_sim: LocalSimulator,
    bus: str,
    webhooks: Webhooks,
    big_result: Path,
) -> None:
    task = submitted_task(rt, tenant, local_sim, webhooks.url)
    url = job_done(local_sim, task, big_result)
    served = big_result.read_bytes()
    message = IngestMessage(task_id=task.id, result_url=url)
    s3, bucket = boto3.client("s3"), aws.refs["Bucket"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})  # count writes
    # Five copies of the message through five Ingest containers, and two through the use case itself.
    handlers = [ingest_container() for _ in range(5)]
    runtimes = [Runtime.from_environment() for _ in range(2)]
    results = in_threads(
        *(partial(h, ingest_event(task.id, url, copy=i)) for i, h in enumerate(handlers)),
        *(partial(ingest, r, message) for r in runtimes),
    )
    assert results[:5] == [{"batchItemFailures": []}] * 5
    assert sorted(results[5:]) in (["duplicate", "duplicate"], ["duplicate", "succeeded"])
    # A copy redelivered after all that changes nothing either.
    assert handlers[0](ingest_event(task.id, url, copy=9)) == {"batchItemFailures": []}

    assert task.provider_task_id is not None
    assert local_sim.downloads == {task.provider_task_id: 1}
    stored = rt.tasks.require(task.id)
    assert stored.status is Status.SUCCEEDED
    assert stored.outbox == []
    assert stored.output is not None
    assert stored.output.key == layout.output_key(task)
    assert stored.output.size == len(served) > PART_SIZE
    assert stored.output.sha256 == hashlib.sha256(served).hexdigest()
    assert outputs(aws, tenant) == {stored.output.key: served}
    versions = s3.list_object_versions(Bucket=bucket, Prefix=f"{layout.OUTPUTS}/")
    assert len(versions.get("Versions", [])) == 1  # written once, not overwritten by a duplicate
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # no copy was left half-done

    assert announced(bus) == Counter({(task.id, "succeeded"): 1})
    queued = delivery_messages(aws)
    assert len(queued) == 1
    deliver(aws, queued)
    deliver(aws, queued)  # the queue delivers the message again: the receiver still gets one POST
    assert webhooks.for_task(task.id) == Counter({f"msg_{task.id}_succeeded": 1})


# -- a failed send -------------------------------------------------------------------------------------------


def unreachable(**_: Any) -> None:
    raise EndpointConnectionError(endpoint_url="https://unreachable.amazonaws.com")


def event_refused(**_: Any) -> tuple[Any, dict[str, Any]]:
    """PutEvents answers 200 and lists the entry it did not take."""
    entry = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
    return SimpleNamespace(status_code=200), {"FailedEntryCount": 1, "Entries": [entry]}


FAILED_SENDS = {
    "event bus unreachable": ("events", "PutEvents", unreachable, ["publish", "notify"]),
    "event refused by PutEvents": ("events", "PutEvents", event_refused, ["publish", "notify"]),
    "delivery queue unreachable": ("sqs", "SendMessage", unreachable, ["notify"]),
}


def fail_once(client: Any, service: str, operation: str, answer: Callable[..., Any]) -> list[str]:
    """Make the client's first call of `operation` fail with `answer`; the list records that it did."""
    failed: list[str] = []

    def hook(**kwargs: Any) -> Any:
        if failed:
            return None
        failed.append(operation)
        return answer(**kwargs)

    client.meta.events.register(f"before-call.{service}.{operation}", hook)
    return failed


@pytest.mark.parametrize("failure", list(FAILED_SENDS))
def test_announcement_lost_to_a_failed_send_is_made_once_by_the_sweeper(
    failure: str,
    rt: Runtime,
    tenant: str,
    aws: LocalResources,
    local_sim: LocalSimulator,
    bus: str,
    webhooks: Webhooks,
) -> None:
    service, operation, answer, owed = FAILED_SENDS[failure]
    task = submitted_task(rt, tenant, local_sim, webhooks.url)
    failed = fail_once(rt.events if service == "events" else rt.sqs, service, operation, answer)

    assert cancel.cancel(rt, tenant, task.id).status is Status.CANCELLED
    assert failed == [operation]
    stored = rt.tasks.require(task.id)
    assert stored.status is Status.CANCELLED
    assert stored.outbox == owed  # the end is recorded with what it still owes
    before = announced(bus)
    assert before == (Counter() if "publish" in owed else Counter({(task.id, "cancelled"): 1}))
    assert delivery_messages(aws) == []

    rt.tasks.update(task.id, TERMINAL, next_poll_at=past())  # the retry time comes
    assert task.id in list(rt.tasks.due())  # still due: the outbox keeps it in the index
    assert run_sweeper() == {"outbox_done": 1}

    assert rt.tasks.require(task.id).outbox == []
    assert task.id not in list(rt.tasks.due())
    assert before + announced(bus) == Counter({(task.id, "cancelled"): 1})
    deliver(aws, delivery_messages(aws))
    assert webhooks.for_task(task.id) == Counter({f"msg_{task.id}_cancelled": 1})
    assert local_sim.cancels == [task.provider_task_id]  # the step done before the failure is not redone


# -- cancel racing completion --------------------------------------------------------------------------------


class WriteGate:
    """Holds the ingest's claim and the cancel's terminal write (each the first of its kind) until both are
    about to be sent, then lets them go together: the two conditional writes reach the table at once."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=20)
        self.arrived: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        names = set((params.get("ExpressionAttributeNames") or {}).values())
        values = repr(params.get("ExpressionAttributeValues"))
        if {"lease_ingest", "ingest_started"} <= names:
            side = "ingest claim"
        elif "finished_at" in names and "'cancelled'" in values:
            side = "cancel"
        else:
            return
        with self.lock:
            if side in self.arrived:
                return
            self.arrived.add(side)
        self.barrier.wait()


@pytest.fixture
def write_gates() -> Iterator[list[WriteGate | None]]:
    """Install a hook on every DynamoDB client made from now on (each round's threads make new ones) that
    passes UpdateItem calls through the gate at the end of the list, if there is one."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    gates: list[WriteGate | None] = [None]

    def hook(params: dict[str, Any], **kwargs: Any) -> None:
        gate = gates[-1]
        if gate is not None:
            gate(params, **kwargs)

    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.dynamodb.UpdateItem", hook, unique_id="once-only-gate")
    yield gates
    gates.append(None)  # clients that outlive the test pass straight through
    events.unregister("before-parameter-build.dynamodb.UpdateItem", unique_id="once-only-gate")


def test_cancel_racing_the_ingest_of_a_finished_job_ends_each_task_once(
    rt: Runtime,
    tenant: str,
    aws: LocalResources,
    local_sim: LocalSimulator,
    bus: str,
    webhooks: Webhooks,
    small_result: Path,
    write_gates: list[WriteGate | None],
) -> None:
    served = small_result.read_bytes()
    ingest_fn = ingest_container()
    assert api_call("GET", "/v1/providers")[0] == 200  # both functions warm before the race
    ended: dict[str, str] = {}
    for round_ in range(30):
        task = submitted_task(rt, tenant, local_sim, webhooks.url)
        url = job_done(local_sim, task, small_result)
        # The simulator reports the job done; the ingest and the client's cancel start together. In every
        # other round their conditional writes are also held until both are ready, then sent together.
        write_gates.append(WriteGate() if round_ % 2 else None)
        ingested, (code, body) = in_threads(
            partial(ingest_fn, ingest_event(task.id, url)),
            partial(api_call, "POST", f"/v1/videos/{task.id}/cancel"),
        )
        assert ingested == {"batchItemFailures": []}
        stored = rt.tasks.require(task.id)
        key = layout.output_key(task)
        assert task.provider_task_id is not None
        downloads = local_sim.downloads.get(task.provider_task_id, 0)
        if code == 200:  # the cancel won: nothing was stored, or even downloaded
            assert body["status"] == "cancelled"
            assert stored.status is Status.CANCELLED
            assert stored.output is None
            assert stored_object(aws, key) is None
            assert downloads == 0
        else:  # the ingest won: the loser is told so, never shown a success
            assert code == 409, body
            assert body["status"] == 409
            assert stored.status is Status.SUCCEEDED
            assert stored.output is not None
            assert stored.output.sha256 == hashlib.sha256(served).hexdigest()
            assert stored_object(aws, key) == served
            assert downloads == 1
        assert stored.outbox == []
        ended[task.id] = stored.status.value

    split = Counter(ended.values())
    assert split.total() == 30
    assert set(split) == {"cancelled", "succeeded"}, f"the race always went one way: {split}"
    assert announced(bus) == Counter({(task_id, status): 1 for task_id, status in ended.items()})
    deliver(aws, delivery_messages(aws))
    assert webhooks.received == Counter({f"msg_{i}_{status}": 1 for i, status in ended.items()})


# -- an ingest that died after storing the MP4 ---------------------------------------------------------------


def died_after_storing(rt: Runtime, aws: LocalResources, task: Task) -> str:
    """An ingest claimed the task and stored its video, then died before ending the task. The output key."""
    claim = rt.tasks.claim(task.id, Work.INGEST, 600, {Status.SUBMITTED, Status.PROCESSING})
    assert claim is not None
    key = layout.output_key(task)
    boto3.client("s3").put_object(
        Bucket=aws.refs["Bucket"], Key=key, Body=mp4_like(4096, 3), Metadata={"task-id": task.id}
    )
    return key


def end_otherwise(rt: Runtime, task: Task, ending: Status) -> int | dict[str, int]:
    """The client cancels (the API's status code), or the deadline passes (the sweeper's outcomes)."""
    if ending is Status.CANCELLED:
        return api_call("POST", f"/v1/videos/{task.id}/cancel")[0]
    rt.tasks.update(task.id, deadline_at=past(), next_poll_at=past())
    return run_sweeper()


@pytest.mark.parametrize("ending", [Status.CANCELLED, Status.TIMED_OUT])
def test_output_of_an_ingest_that_died_is_removed_when_the_task_ends_otherwise(
    ending: Status, rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator, bus: str
) -> None:
    task = submitted_task(rt, tenant, local_sim)
    key = died_after_storing(rt, aws, task)
    # While the ingest's lease is live it may yet finish: nothing else ends the task.
    assert end_otherwise(rt, task, ending) in (409, {"finishing": 1})
    assert list(outputs(aws, tenant)) == [key]

    rt.tasks.update(task.id, lease_ingest_until=past())  # the lease lapses: that ingest is dead
    assert end_otherwise(rt, task, ending) in (200, {ending.value: 1})

    stored = rt.tasks.require(task.id)
    assert stored.status is ending
    assert stored.outbox == []
    assert outputs(aws, tenant) == {}  # no video for a task that did not succeed
    assert announced(bus) == Counter({(task.id, ending.value): 1})


def drop_task(rt: Runtime, tenant: str, bucket: str, name: str) -> Task:
    """A drop-folder task for uploads/<tenant>/<name>, at its provider."""
    now = int(time.time())
    task = Task(
        id=new_task_id(),
        tenant=tenant,
        status=Status.PROCESSING,
        request=VideoRequest(image_url=f"s3://{bucket}/uploads/{tenant}/{name}"),
        mode=Mode.FIRST_FRAME,
        source="s3",
        source_key=f"uploads/{tenant}/{name}",
        providers=["local"],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_poll_at=now + 60,
    )
    rt.tasks.create(task)
    return task


def test_discarding_a_stray_output_leaves_the_video_of_a_later_upload_of_the_same_name(
    rt: Runtime, tenant: str, aws: LocalResources
) -> None:
    # Two drop-folder tasks for uploads/demo/cat.png: the first one's ingest stored its video and died;
    # then the image was uploaded again and that task's video was stored too.
    first = drop_task(rt, tenant, aws.refs["Bucket"], "cat.png")
    later = drop_task(rt, tenant, aws.refs["Bucket"], "cat.png")
    stray, kept = died_after_storing(rt, aws, first), died_after_storing(rt, aws, later)
    assert (stray, kept) == (f"outputs/{tenant}/cat-{first.id}.mp4", f"outputs/{tenant}/cat-{later.id}.mp4")
    rt.tasks.update(first.id, lease_ingest_until=past())

    assert cancel.cancel(rt, tenant, first.id).status is Status.CANCELLED

    assert list(outputs(aws, tenant)) == [kept]
    head = boto3.client("s3").head_object(Bucket=aws.refs["Bucket"], Key=kept)
    assert head["Metadata"] == {"task-id": later.id}


def test_the_copy_into_s3_never_replaces_an_object_at_its_key(
    rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator, small_result: Path
) -> None:
    task = submitted_task(rt, tenant, local_sim)
    key = died_after_storing(rt, aws, task)
    before = stored_object(aws, key)
    url = job_done(local_sim, task, small_result)
    with pytest.raises(ClientError) as refused:
        stream_to_s3(rt.fetcher, rt.s3, url, aws.refs["Bucket"], key, {"task-id": task.id})
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert stored_object(aws, key) == before
    assert boto3.client("s3").list_multipart_uploads(Bucket=aws.refs["Bucket"]).get("Uploads", []) == []


def test_an_ingest_that_finds_a_dead_ingests_copy_at_its_key_stores_its_own_video_there(
    rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator, small_result: Path
) -> None:
    task = submitted_task(rt, tenant, local_sim)
    key = died_after_storing(rt, aws, task)  # a copy of other bytes, by a holder whose lease then lapsed
    rt.tasks.update(task.id, lease_ingest_until=past())
    url = job_done(local_sim, task, small_result)

    assert ingest(rt, IngestMessage(task_id=task.id, result_url=url)) == "succeeded"

    served = small_result.read_bytes()
    stored = rt.tasks.require(task.id)
    assert stored.output is not None
    assert (stored.output.key, stored.output.sha256) == (key, hashlib.sha256(served).hexdigest())
    assert stored_object(aws, key) == served


def ingest_as(rt: Runtime, claim: Claim, url: str) -> str:
    """The ingest use case resumed by the holder of `claim`, taken earlier (a copy that stalled)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rt.tasks, "claim", lambda *_, **__: claim)
        return ingest(rt, IngestMessage(task_id=claim.task_id, result_url=url))


def test_an_ingest_that_lost_its_lease_to_a_later_holder_leaves_the_object_at_its_key_alone(
    rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator, small_result: Path
) -> None:
    task = submitted_task(rt, tenant, local_sim)
    url = job_done(local_sim, task, small_result)
    stale = rt.tasks.claim(task.id, Work.INGEST, 600, {Status.SUBMITTED, Status.PROCESSING})
    assert stale is not None
    rt.tasks.update(task.id, lease_ingest_until=past())  # it stalled past its lease...
    key = died_after_storing(rt, aws, task)  # ...and a later holder stored its copy (and holds the lease)
    before = stored_object(aws, key)
    # The stale holder's copy meets the object; its lease is gone, so it must not remove it.
    assert ingest_as(rt, stale, url) == "lost_lease"
    assert stored_object(aws, key) == before
