"""P3 sweeper: turns on 1,000 in-flight tasks, measured; and what one sweep can do at 100,000, modelled.

Measured: moto's server and the Oxen simulator (a poll-only host that holds every job and answers each
status query after 50 ms) run in a process of their own (`benchmarks.services`); this process holds only
the gateway's code, as a Lambda container does.
- 1,000 tasks in flight and due, each with a real job at the simulator;
- listing them from the due index (`TaskStore.due`) and queuing them to the poll queue (`polls.dispatch`),
  each timed alone;
- one turn each (`sweep.take_turns`, the code the sweep and the poll worker run: claim, status query, write,
  release, and the next turn's message), at most `sweeper_concurrency` status queries out at once (their
  writes overlapped by the other turns in flight, `sweep.TURNS_PER_SLOT` a query slot): wall time vs the floor
  1000 x 50 ms / concurrency (goal <= 1.25x); status queries and AWS calls per task.

Modelled (printed as such): how many in-flight tasks one sweep could poll itself within its period (60 s)
and its timeout (120 s); and for 100,000 due at once, how long the sweep takes to list them and hand them
to the poll queue, and how many poll workers Lambda must run to poll them within one period. The model uses
AWS latencies stated below (moto's SQS slows as a queue grows, so its figures would say nothing of SQS).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks.report import Goal, line, note, progress, section
from benchmarks.services import serve_moto_and_oxen, server

TASKS = 1000
LATENCY = 0.05
PERIOD, TIMEOUT = 60, 120  # the sweeper's schedule and timeout (template.yaml)
AT_SCALE = 100_000


class CountingTransport(httpx.BaseTransport):
    """Counts the requests the engine sends to the provider."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.inner.handle_request(request)


def aws_calls() -> Callable[[], Counter[str]]:
    """Counts the AWS calls made from now on (botocore's own event hook); returns the count so far."""
    import boto3

    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.service_model.service_name + ":" + model.name] += 1

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call", count)
    return lambda: Counter(seen)


def in_flight(rt: Any) -> list[str]:
    """TASKS tasks submitted to the simulator (which holds them) and due now."""
    from i2v.models import Mode, Status, Task, VideoRequest
    from i2v.store import new_task_id

    provider = rt.providers["oxen"]
    request = VideoRequest(image_url="https://media.example/a.png", duration=5, resolution="720p")
    now = rt.now()
    ids = []
    for n in range(TASKS):
        job = provider.parse_submit(rt.client.send(provider.submit(request, Mode.FIRST_FRAME, None)))
        task = Task(
            id=new_task_id(),
            tenant="bench",
            status=Status.SUBMITTED,
            request=request,
            mode=Mode.FIRST_FRAME,
            providers=["oxen"],
            provider="oxen",
            provider_task_id=job,
            created_at=now,
            updated_at=now,
            deadline_at=now + 3600,
            next_poll_at=now - 1,
        )
        rt.tasks.create(task)
        ids.append(task.id)
        progress(n + 1, TASKS, "tasks in flight")
    return ids


def run() -> None:
    section(f"P3 sweeper: {TASKS} in-flight tasks, a poll-only host answering in {LATENCY * 1000:.0f} ms")
    saved = dict(os.environ)
    try:
        with server(serve_moto_and_oxen, LATENCY) as env:
            os.environ.update(env)
            measure()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure() -> None:
    from i2v.polls import dispatch
    from i2v.runtime import Runtime
    from i2v.sweep import take_turns

    calls = aws_calls()  # before any client exists: each copies the session's hooks when made
    rt = Runtime.from_environment()
    counter = CountingTransport()
    rt.client.transport = counter
    concurrency = rt.settings.sweeper_concurrency
    ids = in_flight(rt)
    start = time.perf_counter()
    listed = list(rt.tasks.due())
    list_seconds = time.perf_counter() - start
    start = time.perf_counter()
    queued = dispatch(rt, listed)
    dispatch_seconds = time.perf_counter() - start
    rt.sqs.purge_queue(QueueUrl=rt.settings.poll_queue_url)  # a worker takes them; moto's queue stays small

    before, calls_before = counter.requests, calls()
    start, cpu_start = time.perf_counter(), time.process_time()
    outcomes = take_turns(rt, ids)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # this process only: the gateway's code (moto is apart)
    polls, made = counter.requests - before, calls() - calls_before

    floor = TASKS * LATENCY / concurrency
    line(f"list the due index ({len(listed)} ids)", list_seconds, "s")
    line(f"queue them to the poll queue ({queued} messages)", dispatch_seconds, "s")
    line(
        f"one turn each, {concurrency} queries at a time",
        wall,
        "s",
        ratio=wall / floor,
        goal=Goal(at_most=1.25),
    )
    line(f"floor: {TASKS} x {LATENCY * 1000:.0f} ms / {concurrency}", floor, "s")
    line("status queries per task", polls / TASKS, "")
    line("AWS calls per turn", sum(made.values()) / TASKS, "")
    note(", ".join(f"{name} {count / TASKS:.2f}" for name, count in sorted(made.items())))
    line("the gateway's own CPU per turn (this machine)", cpu / TASKS * 1000, "ms")
    note(f"outcomes: {dict(outcomes)}")

    model(concurrency, wall * concurrency / TASKS - LATENCY, made, cpu_per_turn=cpu / TASKS)


# AWS latencies the model assumes (typical same-region figures for small requests, not guarantees):
DYNAMODB_CALL = 0.008  # a conditional UpdateItem or GetItem of a ~2 KB item
QUERY_PAGE = 0.015  # a KEYS_ONLY index page of 500 keys (~50 KB)
SQS_BATCH = 0.015  # SendMessageBatch of 10 small messages
# Lambda's CPU is in proportion to memory: 1,769 MB is one vCPU (AWS Lambda developer guide, "Configure
# Lambda function memory"). A turn's CPU, measured here, is taken to cost the same on a vCPU; the GIL keeps a
# sweep on one.
ONE_VCPU_MB = 1769


def sweeper_vcpu() -> tuple[int, float]:
    """The SweeperFunction's MemorySize in template.yaml, and the share of a vCPU it buys."""
    from i2v_local.aws import load_template

    template = load_template()
    default = template["Globals"]["Function"].get("MemorySize", 128)
    memory = int(template["Resources"]["SweeperFunction"]["Properties"].get("MemorySize", default))
    return memory, min(1.0, memory / ONE_VCPU_MB)


def pace(overhead: float, latency: float) -> float:
    """Seconds a query slot spends per turn: the query itself, while the turns in flight (TURNS_PER_SLOT a
    slot) cover their own writes meanwhile; else the turns, writes included, set the pace."""
    from i2v.sweep import TURNS_PER_SLOT

    return max(latency, (overhead + latency) / TURNS_PER_SLOT)


def model(
    concurrency: int, per_turn_overhead: float, calls_per_turn: Counter[str], cpu_per_turn: float
) -> None:
    dynamo = sum(n for name, n in calls_per_turn.items() if name.startswith("dynamodb")) / TASKS
    sqs = sum(n for name, n in calls_per_turn.items() if name.startswith("sqs")) / TASKS
    overhead = dynamo * DYNAMODB_CALL + sqs * SQS_BATCH
    section(
        f"P3 at scale, modelled: DynamoDB {DYNAMODB_CALL * 1000:.0f} ms a call, a due page of 500 "
        f"{QUERY_PAGE * 1000:.0f} ms, SendMessageBatch {SQS_BATCH * 1000:.0f} ms"
    )
    memory, vcpu = sweeper_vcpu()
    cpu = cpu_per_turn / vcpu  # a turn's CPU on the sweeper's share of a vCPU
    # The queries' pace, or the CPU's if slower; the first turns' claims and the last turns' results are
    # overlapped by no query: once each.
    wall = max(TASKS * pace(overhead, LATENCY) / concurrency, TASKS * cpu) + overhead
    line(
        f"{TASKS} turns, {concurrency} queries at a time, on these latencies",
        wall,
        "s",
        ratio=wall / (TASKS * LATENCY / concurrency),
        goal=Goal(at_most=1.25),
    )
    note(f"a turn's own AWS time: {overhead * 1000:.0f} ms ({dynamo:.1f} DynamoDB + {sqs:.2f} SQS calls),")
    note(f"and {cpu * 1000:.1f} ms of CPU at the sweeper's {memory} MB ({vcpu:.2f} vCPU), both overlapped by")
    note("the other turns in flight; a query slot's time per turn past")
    note(f"the query, measured here on moto: {per_turn_overhead * 1000:.0f} ms")
    for latency in (LATENCY, 1.0):
        turn = max(pace(overhead, latency), cpu * concurrency)
        line(f"one sweep itself, {latency:.2f} s/query: tasks per 60 s", concurrency * PERIOD / turn, "")
        line(f"one sweep itself, {latency:.2f} s/query: per {TIMEOUT} s", concurrency * TIMEOUT / turn, "")
    listing = AT_SCALE / 500 * QUERY_PAGE
    handing = AT_SCALE / 10 * SQS_BATCH / concurrency
    line(f"{AT_SCALE:,} due: list the due index (one page at a time)", listing, "s")
    line(f"{AT_SCALE:,} due: queue them ({concurrency} batches at a time)", handing, "s")
    line("  sweep total, vs its 60 s period", listing + handing, "s", ratio=(listing + handing) / PERIOD)
    for latency in (LATENCY, 1.0):
        turn = overhead + latency
        workers = AT_SCALE * turn / PERIOD
        line(f"poll workers busy to poll {AT_SCALE:,} per 60 s ({latency:.2f} s/query)", workers, "")
    note("One sweep alone cannot poll 100,000 in a period: it lists and queues them, and Lambda runs as many")
    note("poll workers as the queue needs (each takes 10 turns at once; account concurrency permitting).")
