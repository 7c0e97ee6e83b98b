"""A stateful property: whatever order callbacks, polls, duplicates, cancels, time-outs, ingests and the
provider's own finish come in (one at a time, or two at once), a task's status only moves forward and ends
once, a `succeeded` task has exactly its video in the bucket and an ended one nothing else, the end is
announced once (one event, one webhook message), and the provider was paid once.

Each run of the machine is one task, made through `create` with a real image URL (probed) on the `local`
simulator, stalled so the job waits for the machine's rules to finish it. Time is the runtime's clock,
frozen per run and moved only by the rules, so leases and deadlines lapse only when a rule says so. The
races rely on moto's item writes being one at a time, as DynamoDB's are (`i2v_local.aws.moto_server`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from i2v import cancel, complete, create, ingest, layout, pacing, sweep
from i2v.messages import DeliveryMessage, IngestMessage
from i2v.models import RequestProblem, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v.submit import callback_token
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from i2v_local.simulator import SimTask
from tests.support import copy_bus_to_queue

HOOK = "http://127.0.0.1:9/hook"  # never called here: the deliver function is not run, its queue is counted
RANK = {Status.ACCEPTED: 0, Status.SUBMITTED: 1, Status.PROCESSING: 2}  # every terminal status ranks 3
ACTIONS = ("ingest", "cancel", "callback", "poll", "sweep")
DEADLINE = 3601  # as `sweep_after` seconds: past the task's deadline, however much time had passed

MACHINE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,  # the same runs on every CI run; what differs is only how threads interleave
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def rank(status: Status) -> int:
    return 3 if status.terminal else RANK[status]


class Clock:
    """The gateway's clock: frozen, moved by the rules."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Video:
    path: Path
    size: int
    sha256: str


@pytest.fixture(scope="session")
def result_video(tmp_path_factory: pytest.TempPathFactory) -> Video:
    """One tiny valid MP4, rendered once, that the simulator hands out as every finished job's result."""
    import av
    import numpy as np

    path = tmp_path_factory.mktemp("result") / "result.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=8, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(8):
            pixels = np.full((64, 64, 3), i * 30, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    data = path.read_bytes()
    assert data[4:8] == b"ftyp"
    return Video(path, len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def events_queue(aws: LocalResources) -> str:
    """Every event put on the gateway's bus, copied to a queue this test reads."""
    return copy_bus_to_queue(aws.refs["EventBus"], "lifecycle-bus-copy")


@dataclass
class World:
    """What every run of the machine shares within one test: the stack, the simulator, the clock."""

    rt: Runtime
    clock: Clock
    sim: LocalSimulator
    tenant: str
    media_base: str
    video: Video
    events_queue: str
    s3: Any = field(default_factory=lambda: boto3.client("s3"))
    sqs: Any = field(default_factory=lambda: boto3.client("sqs"))

    def drain(self, queue_url: str) -> Iterator[str]:
        """Bodies of every message on a queue now (each deleted as read)."""
        while True:
            got = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            for message in messages:
                yield str(message["Body"])


def together(*actions: Callable[[], str]) -> list[str]:
    """Run the actions on threads of their own, released at once by a barrier; their outcomes in order."""
    barrier = threading.Barrier(len(actions))
    results: list[str | BaseException] = ["not run"] * len(actions)

    def run(index: int, action: Callable[[], str]) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = action()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, a), daemon=True) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "an action never returned"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [str(r) for r in results]


class Lifecycle(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.w = world
        self.rt = world.rt
        world.clock.now = float(int(time.time()))
        # A URL of its own (the media server ignores the query) tells this run's provider jobs apart.
        self.image_url = f"{world.media_base}/sample.png?run={secrets.token_hex(6)}"
        self.submits_before = world.sim.submits
        request = VideoRequest(image_url=self.image_url, duration=2, resolution="720p", webhook_url=HOOK)
        task, created = create.create(self.rt, world.tenant, request)
        assert created
        assert task.status is Status.SUBMITTED, task
        assert task.provider == "local"
        assert task.provider_task_id in world.sim.tasks
        self.task_id = task.id
        self.job: SimTask = world.sim.tasks[task.provider_task_id]
        self.history: list[Status] = [task.status]
        self.ended: tuple[Any, ...] | None = None  # (output, error, finished_at) when first seen ended
        self.events: list[str] = []  # statuses of the events seen for this task
        self.deliveries = 0
        self.settled = True  # the last step and its checks completed (teardown checks only then)

    # -- helpers ----------------------------------------------------------------------------------
    def task(self) -> Task:
        return self.rt.tasks.require(self.task_id)

    def step(self, what: str) -> None:
        self.settled = False
        note(f"{what}: task {self.task().status.value}, job {self.job.state}")

    def do_callback(self) -> str:
        body = json.dumps(self.w.sim.task_json(self.job)).encode()
        token = callback_token(self.rt, self.task_id)
        return complete.on_callback(self.rt, "local", self.task_id, token, body).status.value

    def do_poll(self) -> str:
        return complete.refresh(self.rt, self.task()).status.value

    def do_cancel(self) -> str:
        try:
            return cancel.cancel(self.rt, self.w.tenant, self.task_id).status.value
        except RequestProblem as exc:
            problem = exc
        assert problem.status == 409, problem
        return f"409 {problem.title}"

    def do_ingest(self) -> str:
        url = self.w.sim.result_url(self.job)
        if url is None:
            return "no result yet"
        outcome = ingest.ingest(self.rt, IngestMessage(task_id=self.task_id, result_url=url))
        # The clock stands still during a step, so no ingest lease lapses: an ingest that lost its lease
        # means something else ended the task while the ingest held it.
        assert outcome in ("succeeded", "duplicate"), f"ingest: {outcome}"
        return outcome

    def do_sweep(self) -> str:
        return str(dict(sweep.sweep(self.rt)))

    def run(self, action: str) -> str:
        """One action; its outcome (noted by the caller: hypothesis takes notes on the test's thread)."""
        return {
            "callback": self.do_callback,
            "poll": self.do_poll,
            "cancel": self.do_cancel,
            "ingest": self.do_ingest,
            "sweep": self.do_sweep,
        }[action]()

    def act(self, action: str) -> str:
        outcome = self.run(action)
        note(f"  {action} -> {outcome}")
        return outcome

    def past_deadline(self) -> None:
        """The deadline passes, and the sweeper's next turn at the task comes (a poll may have set it a
        little past the deadline: the task times out at that turn)."""
        task = self.task()
        self.w.clock.now = max(self.w.clock.now, float(task.deadline_at + 1), float(task.next_poll_at or 0))

    # -- the rules --------------------------------------------------------------------------------
    # Hypothesis orders rules by their number of arguments, then name, and leans to the first rule and
    # the first value of each `sampled_from`: so the ones that take a task to `succeeded` come first.
    @precondition(lambda self: self.job.state == "succeeded")
    @rule(copy=st.sampled_from(["result", "cancelled_meanwhile", "duplicate", "queued"]))
    def ingest_message(self, copy: str) -> None:
        """An ingest message: with the provider's real result URL (whether or not the gateway asked yet),
        that same message twice at once and then once more, what the gateway itself queued after a poll
        or callback saw the job done, or the message just as the client cancels (whoever is first wins
        outright)."""
        self.step(f"ingest_message({copy})")
        before = self.task()
        if copy == "result":
            outcome = self.act("ingest")
            assert outcome == ("duplicate" if before.status.terminal else "succeeded"), outcome
        elif copy == "duplicate":
            outcomes = together(self.do_ingest, self.do_ingest)
            note(f"  two ingests at once -> {outcomes}")
            assert set(outcomes) <= {"succeeded", "duplicate"}, outcomes
            assert outcomes.count("succeeded") == (0 if before.status.terminal else 1), outcomes
            assert self.act("ingest") == "duplicate"
        elif copy == "cancelled_meanwhile":
            outcomes = together(lambda: self.run("cancel"), lambda: self.run("ingest"))
            note(f"  cancel, ingest at once -> {outcomes}")
            if before.status.terminal:
                assert outcomes == ["409 Task already finished", "duplicate"], outcomes
            else:
                assert outcomes in (
                    ["cancelled", "duplicate"],  # the cancel first: no ingest may start
                    ["409 Task is finishing", "succeeded"],  # the ingest first: it holds the task to its end
                    ["409 Task already finished", "succeeded"],  # the ingest first, done before the cancel
                ), outcomes
        else:
            for body in self.w.drain(self.rt.settings.ingest_queue_url):
                message = IngestMessage.model_validate_json(body)
                if message.task_id == self.task_id:
                    outcome = ingest.ingest(self.rt, message)
                    note(f"  queued ingest -> {outcome}")
                    assert outcome in ("succeeded", "duplicate"), f"ingest: {outcome}"

    @precondition(lambda self: self.job.state in ("queued", "processing"))
    @rule()
    def provider_renders(self) -> None:
        """The provider's job finishes: its video (the pre-rendered MP4) is at its result URL."""
        self.step("provider_renders")
        with self.w.sim.lock:
            self.job.video = self.w.video.path
            self.job.progress = 100
            self.job.finished_at = time.time()
            self.job.state = "succeeded"

    @precondition(lambda self: self.job.state == "queued")
    @rule()
    def provider_starts(self) -> None:
        """The provider's job starts rendering."""
        self.step("provider_starts")
        with self.w.sim.lock:
            self.job.state = "processing"

    @precondition(lambda self: self.job.state in ("queued", "processing"))
    @rule(outcome=st.sampled_from(["failed", "queued", "cancelled"]))
    def provider(self, outcome: str) -> None:
        """Otherwise the provider's job fails, goes back to its queue (a host requeues a job whose worker
        died), or is cancelled on the host's side (its console), which no API request announces."""
        self.step(f"provider({outcome})")
        if outcome == "cancelled":
            assert self.w.sim.cancel_task(self.job)
            return
        with self.w.sim.lock:
            if outcome == "failed":
                self.job.error = "the render broke"
                self.job.finished_at = time.time()
            else:
                self.job.progress = 0
            self.job.state = outcome

    @rule(how=st.sampled_from(["poll", "stale_poll", "callback", "duplicate_callback"]))
    def report(self, how: str) -> None:
        """The gateway learns where the job is: a sweep's poll, a poll answered late (the status API
        says "queued", as a lagging replica of it would, whatever the job did since), the job's callback
        (valid token), or that callback delivered twice at once."""
        self.step(f"report({how})")
        before = self.task()
        state = self.job.state
        if how == "duplicate_callback":
            outcomes = together(self.do_callback, self.do_callback)
            note(f"  two callbacks at once -> {outcomes}")
            after = self.task().status
        elif how == "stale_poll":
            state, self.w.sim.faults.unknown_status = "queued", "queued"
            try:
                after = Status(self.act("poll"))
            finally:
                self.w.sim.faults.unknown_status = None
        else:
            after = Status(self.act(how))
        self.expect_report(before, after, state)

    @rule(seconds=st.sampled_from([15, 130, 700, DEADLINE]))
    def sweep_after(self, seconds: int) -> None:
        """Time passes (a poll interval, the ingest re-check, an ingest lease, the deadline), then the
        sweeper runs."""
        self.step(f"sweep_after({seconds})")
        before = self.task()
        if seconds == DEADLINE:
            self.past_deadline()
        else:
            self.w.clock.now += seconds
        self.act("sweep")
        if not before.status.terminal and self.rt.now() >= before.deadline_at:
            assert self.task().status is Status.TIMED_OUT  # no ingest holds its lease between steps

    @rule(times=st.sampled_from([1, 2]))
    def user_cancels(self, times: int) -> None:
        """The client cancels (or cancels twice: a second click)."""
        self.step(f"user_cancels({times})")
        before = self.task()
        outcomes = [self.act("cancel") for _ in range(times)]
        if before.status.terminal:
            assert outcomes[0] == "409 Task already finished", outcomes
        else:  # nothing holds the ingest lease between steps, so a cancel of a running task wins
            assert outcomes[0] == Status.CANCELLED.value, outcomes
        assert outcomes[1:] in ([], ["409 Task already finished"]), outcomes

    @rule(
        first=st.sampled_from(ACTIONS),
        second=st.sampled_from(ACTIONS),
        deadline_passed=st.booleans(),
    )
    def race(self, first: str, second: str, deadline_passed: bool) -> None:
        """Two of the gateway's actions at once (after the deadline, if it passed)."""
        self.step(f"race({first}, {second}, deadline_passed={deadline_passed})")
        if deadline_passed:
            self.past_deadline()
        outcomes = together(lambda: self.run(first), lambda: self.run(second))
        note(f"  race -> {outcomes}")
        by_action = dict(zip((first, second), outcomes, strict=True))
        if "cancel" in by_action and "ingest" in by_action:
            assert not (by_action["cancel"] == "cancelled" and by_action["ingest"] == "succeeded"), outcomes

    # -- what must hold after every step ----------------------------------------------------------
    @invariant()
    def lifecycle_holds(self) -> None:
        self.settled = False
        task = self.task()
        self.check_status(task)
        self.check_output(task)
        self.check_announcements(task)
        self.check_submits()
        self.settled = True

    def check_status(self, task: Task) -> None:
        last = self.history[-1]
        if last.terminal:
            assert task.status is last, f"an ended task changed: {self.history} then {task.status}"
            assert (task.output, task.error, task.finished_at) == self.ended, "an ended task's fields changed"
        else:
            assert rank(task.status) >= rank(last), f"went backwards: {self.history} then {task.status}"
        if task.status is not last:
            self.history.append(task.status)
        if task.status.terminal and self.ended is None:
            self.ended = (task.output, task.error, task.finished_at)
        ends = {s for s in self.history if s.terminal}
        assert len(ends) <= 1, f"more than one end: {self.history}"

    def check_output(self, task: Task) -> None:
        bucket, key = self.rt.settings.bucket_name, layout.output_key(task)
        listed = self.w.s3.list_objects_v2(Bucket=bucket, Prefix=f"{layout.OUTPUTS}/{task.tenant}/{task.id}")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert len(keys) <= 1, keys
        uploads = self.w.s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
        assert not uploads, f"an unfinished multipart upload was left: {uploads}"
        if task.status is Status.SUCCEEDED:
            assert keys == [key], f"succeeded without its video: {keys}"
            assert task.output is not None
            got = self.w.s3.get_object(Bucket=bucket, Key=key)
            data = got["Body"].read()
            assert got["Metadata"].get("task-id") == task.id
            assert (task.output.size, task.output.sha256) == (len(data), hashlib.sha256(data).hexdigest())
            assert (task.output.size, task.output.sha256) == (self.w.video.size, self.w.video.sha256)
        elif not task.status.terminal:
            # Between steps no ingest is under way: a stored video would already have ended the task.
            assert not keys, f"a running task ({task.status.value}) has an output: {keys}"
        elif not task.outbox:
            assert not keys, f"a {task.status.value} task kept an output: {keys}"

    def check_announcements(self, task: Task) -> None:
        for body in self.w.drain(self.w.events_queue):
            detail = json.loads(body)["detail"]
            if detail["id"] == self.task_id:
                self.events.append(detail["status"])
        for body in self.w.drain(self.rt.settings.delivery_queue_url):
            if DeliveryMessage.model_validate_json(body).task_id == self.task_id:
                self.deliveries += 1
        assert len(self.events) <= 1, f"announced more than once: {self.events}"
        assert self.deliveries <= 1, f"{self.deliveries} webhook messages"
        if not task.status.terminal:
            assert (self.events, self.deliveries) == ([], 0), "announced before it ended"
        elif not task.outbox:
            assert self.events == [task.status.value], f"ended {task.status.value}, events {self.events}"
            assert self.deliveries == 1, f"ended with its outbox done, {self.deliveries} webhook messages"

    def check_submits(self) -> None:
        jobs = [t for t in list(self.w.sim.tasks.values()) if t.inputs.get("first_frame") == self.image_url]
        assert len(jobs) == 1, f"{len(jobs)} provider jobs for one task"
        assert self.w.sim.submits - self.submits_before == 1

    def expect_report(self, before: Task, after: Status, state: str) -> None:
        """What a callback or poll must do to a task given the job's `state` the provider reported
        (nothing holds a lease between steps)."""
        if before.status.terminal:
            assert after is before.status
            return
        expected = {
            "queued": before.status,
            "processing": Status.PROCESSING,
            "succeeded": before.status,  # the result goes to ingest; the task ends when it is stored
            "failed": Status.FAILED,
            "cancelled": Status.CANCELLED,
        }[state]
        assert after is expected, f"provider said {state}: task {before.status.value} -> {after.value}"
        if state == "succeeded":
            assert self.task().result_url == self.w.sim.result_url(self.job)

    # -- the end of a run -------------------------------------------------------------------------
    def teardown(self) -> None:
        """Bring the task to its end with nothing owed (so later runs' sweeps never see it), and check
        the end was announced once."""
        for _ in range(6):
            task = self.task()
            if task.status.terminal and not task.outbox:
                break
            if task.status.terminal:
                self.w.clock.now += pacing.OUTBOX_RETRY_SECONDS + pacing.FINISH_LEASE_SECONDS
            else:
                self.past_deadline()
            sweep.sweep(self.rt)
        if self.settled:  # a failing step is reported as it is, not as a teardown failure
            self.lifecycle_holds()
            task = self.task()
            assert task.status.terminal, f"never ended: {task.status.value}"
            assert not task.outbox, f"its outbox was never done: {task.outbox}"


def test_any_interleaving_moves_forward_ends_once_and_is_announced_once(
    rt: Runtime,
    tenant: str,
    local_sim: LocalSimulator,
    media_server: tuple[Path, str],
    result_video: Video,
    events_queue: str,
) -> None:
    local_sim.faults.stall = True  # a job stays queued until a rule finishes it
    local_sim.faults.drop_callbacks = True  # the rules are the callbacks; the simulator sends none itself
    clock = Clock()
    machine_rt = Runtime(settings=rt.settings, clock=clock, client=rt.client)
    world = World(machine_rt, clock, local_sim, tenant, media_server[1], result_video, events_queue)

    class TaskLifecycle(Lifecycle):  # the machine on this test's stack
        def __init__(self) -> None:
            super().__init__(world)

    run_state_machine_as_test(TaskLifecycle, settings=MACHINE_SETTINGS)
