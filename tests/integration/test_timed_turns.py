"""Timed turns through the poll queue: each turn queues the task's next at its due time, duplicates die at
the claim, and a sweep takes its share of turns itself and queues the rest (moto and the simulator)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest

from i2v import create
from i2v.models import Status, Task, VideoRequest
from i2v.polls import follow
from i2v.runtime import Runtime
from i2v.sweep import sweep, take_turn, take_turns
from i2v_local.sim_local import LocalSimulator
from tests.e2e.flows import wait_for
from tests.support import invoke


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch, aws: Any) -> Runtime:
    """A runtime whose tasks are due again 2 s after each poll."""
    monkeypatch.setenv("I2V_POLL_INTERVAL_SECONDS", "2")
    return Runtime.from_environment()


def submitted(rt: Runtime, tenant: str, sim: LocalSimulator) -> Task:
    """A task created through the create use case and held by the (stalled) simulator."""
    sim.faults.stall = True
    request = VideoRequest(
        image_url=f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png", duration=2, resolution="720p"
    )
    task, _ = create.create(rt, tenant, request)
    assert task.status is Status.SUBMITTED
    return task


def receive(rt: Runtime) -> list[str]:
    """Task ids of the poll messages visible now (taken off the queue)."""
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=rt.settings.poll_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    ids = []
    for message in got.get("Messages", []):
        ids.append(json.loads(message["Body"])["task_id"])
        sqs.delete_message(QueueUrl=rt.settings.poll_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return ids


def queued(rt: Runtime) -> int:
    """Every message in the poll queue: visible, in flight or still delayed."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=rt.settings.poll_queue_url, AttributeNames=names
    )
    return sum(int(v) for v in attrs["Attributes"].values())


def test_a_created_task_has_its_first_poll_queued_for_when_it_is_due(
    quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = submitted(quick, tenant, local_sim)
    assert task.next_poll_at is not None
    assert receive(quick) == []  # delayed: not before it is due
    arrived = wait_for(lambda: receive(quick), seconds=10)
    assert arrived == [task.id]
    assert time.time() >= task.next_poll_at - 1  # SQS delays are whole seconds


def test_a_turn_queues_exactly_one_next_turn(quick: Runtime, tenant: str, local_sim: LocalSimulator) -> None:
    task = submitted(quick, tenant, local_sim)
    wait_for(lambda: receive(quick), seconds=10)  # the first poll's message, taken as a worker would
    assert take_turns(quick, [task.id]) == {"submitted": 1}  # polled: still queued at the host
    assert queued(quick) == 1
    assert wait_for(lambda: receive(quick), seconds=10) == [task.id]


def test_a_duplicate_turn_message_takes_no_turn_and_queues_nothing(
    quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = submitted(quick, tenant, local_sim)
    wait_for(lambda: receive(quick), seconds=10)
    assert take_turns(quick, [task.id]) == {"submitted": 1}
    before = queued(quick)
    # A second message for the same turn (a sweep queued it too): the task is no longer due.
    assert take_turn(quick, task.id).outcome == "taken"
    assert take_turns(quick, [task.id]) == {"taken": 1}
    assert queued(quick) == before == 1


def test_a_task_out_of_the_due_index_or_due_past_sqs_delays_queues_nothing(
    quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = submitted(quick, tenant, local_sim)
    boto3.client("sqs").purge_queue(QueueUrl=quick.settings.poll_queue_url)
    assert follow(quick, [task.model_copy(update={"next_poll_at": None})]) == 0
    assert follow(quick, [task.model_copy(update={"next_poll_at": quick.now() + 901})]) == 0  # the sweep's
    assert queued(quick) == 0


def test_a_sweep_takes_its_limit_of_turns_and_queues_the_rest(
    monkeypatch: pytest.MonkeyPatch, quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    tasks = [submitted(quick, tenant, local_sim) for _ in range(5)]
    for task in tasks:
        quick.tasks.update(task.id, {Status.SUBMITTED}, next_poll_at=quick.now() - 1)
    boto3.client("sqs").purge_queue(QueueUrl=quick.settings.poll_queue_url)  # the create calls' own messages
    monkeypatch.setenv("I2V_SWEEP_INLINE_LIMIT", "2")
    rt = Runtime.from_environment()
    outcomes = sweep(rt)
    assert outcomes == {"submitted": 2, "queued": 3}
    handed = receive(rt)  # at once, not delayed; the two turns' next messages are delayed
    assert len(handed) == 3
    assert set(handed) < {t.id for t in tasks}


def test_the_due_index_is_read_to_its_end_past_a_page(
    quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    tasks = [submitted(quick, tenant, local_sim) for _ in range(7)]
    for task in tasks:
        quick.tasks.update(task.id, {Status.SUBMITTED}, next_poll_at=quick.now() - 1)
    assert sorted(quick.tasks.due(limit=2)) == sorted(t.id for t in tasks)


def test_the_poll_worker_fails_only_a_malformed_record(
    quick: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    from i2v_local.stack import sqs_event

    task = submitted(quick, tenant, local_sim)
    quick.tasks.update(task.id, {Status.SUBMITTED}, next_poll_at=quick.now() - 1)
    records = [
        {
            "MessageId": "good",
            "ReceiptHandle": "r1",
            "Body": json.dumps({"task_id": task.id}),
            "MD5OfBody": "-",
        },
        {"MessageId": "bad", "ReceiptHandle": "r2", "Body": "{not json", "MD5OfBody": "-"},
    ]
    answer = invoke("poll", sqs_event(records, "arn:aws:sqs:us-east-1:123456789012:poll"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    after = quick.tasks.require(task.id)
    assert after.next_poll_at is not None
    assert after.next_poll_at > quick.now()  # the good one took its turn


def test_while_a_query_is_out_the_other_turns_claim_their_tasks_and_wait_for_a_query_slot(
    monkeypatch: pytest.MonkeyPatch, aws: Any, tenant: str, local_sim: LocalSimulator
) -> None:
    monkeypatch.setenv("I2V_POLL_INTERVAL_SECONDS", "2")
    monkeypatch.setenv("I2V_SWEEPER_CONCURRENCY", "1")  # one status query out at a time
    maker = Runtime.from_environment()
    ids = [submitted(maker, tenant, local_sim).id for _ in range(3)]

    def due() -> bool:
        return all(
            task is not None and task.next_poll_at <= time.time() for task in map(maker.tasks.get, ids)
        )

    wait_for(due, seconds=10)
    queries: list[str] = []
    sent, answer = threading.Event(), threading.Event()

    class Held(httpx.BaseTransport):
        """The simulator, but each status query waits for the test's word."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            queries.append(request.url.path)
            sent.set()
            answer.wait(10)
            return self.inner.handle_request(request)

    rt = Runtime.from_environment()
    rt.client.transport = Held()

    def claimed() -> bool:  # a due claim moves the task's next poll past its lease
        return all(
            task is not None and task.next_poll_at > time.time() + 60 for task in map(rt.tasks.get, ids)
        )

    with ThreadPoolExecutor(max_workers=1) as pool:
        turns = pool.submit(take_turns, rt, ids)
        assert sent.wait(10)
        assert wait_for(claimed, seconds=10)  # all three turns have claimed while the first query is out
        assert len(queries) == 1  # the other two wait for its slot
        answer.set()
        assert turns.result(timeout=30) == {"submitted": 3}
    assert len(queries) == 3
