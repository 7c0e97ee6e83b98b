"""SQS event sources on the local stack run several batches at once, as Lambda's pollers do deployed.

A source runs as many batches at once as its ScalingConfig.MaximumConcurrency allows, never more than its
function's reserved concurrency, both as template.yaml resolves them. The burst tests stand a container in
for DeliverFunction's that holds each batch until let go, so how many run at once is seen, not guessed.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from i2v_local.aws import LocalResources, load_template
from i2v_local.stack import (
    UNBOUNDED_SOURCE_BATCHES,
    UNRESERVED_CONTAINERS,
    Handler,
    LocalStack,
    QueueSource,
    batches_at_once,
    reserved_concurrency,
)
from tests.e2e.flows import drained, wait_for

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

pytestmark = pytest.mark.e2e

DELIVER, QUEUE = "DeliverFunction", "DeliveryQueue"


class Held:
    """A stand-in container for DeliverFunction: it records each batch and holds it until let go, the way
    slow webhook receivers hold the deployed function's batches."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._changed = threading.Condition()
        self._holding = False
        self._permits = 0  # held batches that may end now
        self.started = 0  # batches given to it
        self.started_while_paused = 0
        self.handled: list[str] = []  # the bodies of the batches that ended

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._changed:
            self.started += 1
            if DELIVER in self._stack.paused:
                self.started_while_paused += 1
            # Bounded, so that a failed test cannot keep the stack from stopping.
            self._changed.wait_for(lambda: not self._holding or self._permits > 0, timeout=60)
            if self._holding and self._permits > 0:
                self._permits -= 1
            self.handled.extend(record["body"] for record in event["Records"])
        return {"batchItemFailures": []}

    def hold(self) -> None:
        with self._changed:
            self._holding, self._permits = True, 0

    def let_go(self, batches: int) -> None:
        with self._changed:
            self._permits += batches
            self._changed.notify_all()

    def let_all_go(self) -> None:
        with self._changed:
            self._holding = False
            self._changed.notify_all()

    def reset(self) -> None:
        with self._changed:
            self._holding, self._permits = False, 0
            self.started = self.started_while_paused = 0
            self.handled = []


@pytest.fixture(scope="module")
def stand_in(stack: LocalStack) -> Iterator[Held]:
    function = stack.functions[DELIVER]
    assert function.cold_starts == 0  # no real container of it is warm: every batch goes to the stand-in
    held = Held(stack)
    real_load = function.load

    def load(code_uri: str, handler: str) -> Handler:
        return held

    function.load = load
    yield held
    function.load = real_load


@pytest.fixture
def held(stand_in: Held, stack: LocalStack) -> Iterator[Held]:
    stand_in.reset()
    yield stand_in
    stand_in.let_all_go()
    stack.resume(DELIVER)
    drained(stack, QUEUE)


def source_of(stack: LocalStack, queue: str) -> QueueSource:
    (source,) = [s for s in stack.queue_sources if s.queue == queue]
    return source


def send(stack: LocalStack, source: QueueSource, count: int) -> list[str]:
    """`count` messages on the source's queue; returns their bodies."""
    bodies = [json.dumps({"burst": n}) for n in range(count)]
    sqs = boto3.client("sqs")
    for first in range(0, count, 10):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[first : first + 10])
        ]
        sqs.send_message_batch(QueueUrl=source.url, Entries=entries)
    return bodies


def stays_false(check: Callable[[], bool], seconds: float) -> bool:
    """Whether `check` stays false for `seconds` (it is watched the whole time, not read once at the end)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return False
        time.sleep(0.05)
    return True


def test_a_burst_runs_as_many_batches_at_once_as_the_template_allows_and_no_more(
    stack: LocalStack, held: Held
) -> None:
    source, function = source_of(stack, QUEUE), stack.functions[DELIVER]
    at_once = source.batches_at_once
    assert 1 < at_once <= function.concurrency
    held.hold()
    # Enough for every pump to take a full batch, with as many again waiting behind them.
    sent = send(stack, source, 2 * at_once * source.batch_size)
    wait_for(lambda: function.running == at_once)
    assert function.peak_running == at_once
    held.let_all_go()
    drained(stack, QUEUE)
    assert sorted(held.handled) == sorted(sent)
    assert function.peak_running == at_once
    assert function.running == 0


def test_pause_waits_for_every_running_batch_and_none_starts_until_resume(
    stack: LocalStack, held: Held
) -> None:
    source, function = source_of(stack, QUEUE), stack.functions[DELIVER]
    at_once = source.batches_at_once
    held.hold()
    sent = send(stack, source, 3 * at_once * source.batch_size)
    wait_for(lambda: function.running == at_once)

    returned = threading.Event()
    running_when_returned: list[int] = []

    def pause() -> None:
        stack.pause(DELIVER)
        running_when_returned.append(function.running)
        returned.set()

    threading.Thread(target=pause, daemon=True).start()
    wait_for(lambda: DELIVER in stack.paused)
    # The held batches end one by one; while any is still running, pause has not returned.
    for still_running in range(at_once - 1, 0, -1):
        held.let_go(1)

        def one_fewer(left: int = still_running) -> bool:
            return function.running == left

        wait_for(one_fewer)
        assert not returned.is_set()
    started = held.started
    held.let_go(1)
    assert returned.wait(timeout=10)
    assert running_when_returned == [0]

    # Paused, with messages waiting: no source starts a batch, however many pumps are polling.
    held.let_all_go()
    assert stack._from_source(DELIVER, {"Records": []}) is None
    assert stays_false(lambda: held.started > started, seconds=1.5)
    assert held.started_while_paused == 0
    assert held.started == started

    stack.resume(DELIVER)
    drained(stack, QUEUE)
    assert sorted(held.handled) == sorted(sent)
    assert held.started_while_paused == 0


def test_each_function_runs_the_containers_and_pumps_the_template_gives_it(stack: LocalStack) -> None:
    assert stack.resources is not None
    for logical, props in stack.resources.of_type("AWS::Serverless::Function"):
        reserved = reserved_concurrency(stack.resources, props)
        assert stack.functions[logical].concurrency == (reserved or UNRESERVED_CONTAINERS)
    assert {s.function for s in stack.queue_sources} == {"PollFunction", "IngestFunction", DELIVER,
                                                          "S3TriggerFunction"}  # fmt: skip
    pumps = [t.name for t in threading.enumerate() if t.name.startswith("pump-")]
    for source in stack.queue_sources:
        assert len([name for name in pumps if name.startswith(f"pump-{source.queue}-")]) == (
            source.batches_at_once
        )


@pytest.mark.parametrize(
    ("worker_concurrency", "maximum_concurrency", "reserved", "at_once"),
    [
        (5, None, 5, 5),  # the template's default: reserved, so that many batches at once
        (3, None, 3, 3),  # read through the parameter, not assumed
        (3, 2, 3, 2),  # ScalingConfig below the reserved concurrency bounds the source
        (3, 10, 3, 3),  # ... and above it, the reserved concurrency still does
        (0, None, None, UNBOUNDED_SOURCE_BATCHES),  # unreserved: the condition leaves the property out
        (0, 8, None, 8),
    ],
)
def test_batches_at_once_follow_the_scaling_config_and_the_reserved_concurrency(
    worker_concurrency: int, maximum_concurrency: int | None, reserved: int | None, at_once: int
) -> None:
    template = copy.deepcopy(load_template())
    template["Parameters"]["WorkerConcurrency"]["Default"] = worker_concurrency
    function = template["Resources"][DELIVER]["Properties"]
    event = next(e["Properties"] for e in function["Events"].values() if e["Type"] == "SQS")
    event.pop("ScalingConfig", None)
    if maximum_concurrency is not None:
        event["ScalingConfig"] = {"MaximumConcurrency": maximum_concurrency}
    resources = LocalResources(template)
    assert reserved_concurrency(resources, function) == reserved
    assert batches_at_once(resources, function, event) == at_once
