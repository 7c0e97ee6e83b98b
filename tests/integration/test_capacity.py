"""Provider capacity: slots that never overfill or leak, a fair queue, and a gateway that adapts to the host.

The gateway runs in-process on moto (as a function's container would), against the local simulator or a host
the test answers for; the sweeper is called as its schedule would call it. Time is the runtime's clock, moved
by the test where a wait (a lease, a backoff, a deadline) is the point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from i2v import capacity
from i2v.cancel import cancel
from i2v.create import create
from i2v.lifecycle import Work
from i2v.models import Status, Task, VideoRequest
from i2v.providers.client import ProviderClient
from i2v.runtime import Runtime
from i2v.store import Claim
from i2v.sweep import sweep
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.support import containers, drive_until_ended


class Clock:
    """The runtime's time, moved on by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gateway(
    monkeypatch: pytest.MonkeyPatch, caps: dict[str, int], clock: Callable[[], float] = time.time
) -> Runtime:
    """A runtime whose providers have these caps (jobs at once); inputs are not probed (not the point)."""
    monkeypatch.setenv(
        "I2V_PROVIDER_SETTINGS", json.dumps({name: {"max_in_flight": cap} for name, cap in caps.items()})
    )
    monkeypatch.setenv("I2V_PROBE_MEDIA", "false")
    containers.clear()
    rt = Runtime.from_environment()
    rt.clock = clock
    return rt


def request(sample_url: str, **fields: Any) -> VideoRequest:
    return VideoRequest(image_url=sample_url, duration=2, resolution="720p", **fields)


def holders(rt: Runtime, tasks: list[Task], provider: str) -> list[str]:
    """The tasks that hold a slot of `provider`, read back from the table."""
    return [t.id for t in (rt.tasks.require(t.id) for t in tasks) if t.slot == provider]


def in_flight(rt: Runtime, provider: str) -> int:
    return capacity.provider_record(rt, provider).in_flight


def test_the_cap_holds_under_200_concurrent_creates_and_the_rest_wait_with_a_place(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True  # no job ever ends: every slot stays taken
    rt = gateway(monkeypatch, {"local": 5})
    with ThreadPoolExecutor(max_workers=24) as pool:
        made = list(pool.map(lambda _: create(rt, tenant, request(sample_url))[0], range(200)))
    statuses = [rt.tasks.require(t.id).status for t in made]
    assert statuses.count(Status.SUBMITTED) == 5
    assert statuses.count(Status.ACCEPTED) == 195
    # Measured at the host, and counted by the gateway: both exactly the cap.
    assert local_sim.submits == 5
    assert len(local_sim.tasks) == 5
    assert in_flight(rt, "local") == 5
    assert len(holders(rt, made, "local")) == 5
    # Every waiting task has its own place, the first one next.
    places = [capacity.place(rt, rt.tasks.require(t.id)) for t in made]
    positions = sorted(p.position for p in places if p is not None)
    assert positions == list(range(1, 196))
    first = next(p for p in places if p is not None and p.position == 1)
    assert first.ahead == 0
    assert first.waiting_for == "capacity at local"


def test_a_freed_slot_goes_at_once_to_the_head_of_the_queue(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    rt = gateway(monkeypatch, {"local": 2})
    made = [create(rt, tenant, request(sample_url))[0] for _ in range(5)]
    running, waiting = made[:2], made[2:]
    assert [t.status for t in running] == [Status.SUBMITTED] * 2
    assert all(t.status is Status.ACCEPTED and t.queue_sk for t in waiting)

    cancel(rt, tenant, running[0].id)  # its job stops at the host; its slot is the next task's

    head = rt.tasks.require(waiting[0].id)
    assert head.slot == "local"
    assert head.queue_sk is None
    assert head.next_poll_at is not None
    assert head.next_poll_at <= rt.now()
    assert [rt.tasks.require(t.id).queue_sk is not None for t in waiting[1:]] == [True, True]
    assert in_flight(rt, "local") == 2
    # The poll queue carries the dispatched task's turn (deployed, a poll worker takes it at once).
    assert sweep(rt)["submitted"] == 1
    assert rt.tasks.require(head.id).status is Status.SUBMITTED
    assert local_sim.submits == 3


def test_a_second_tenants_first_task_goes_within_two_slot_releases_of_300_waiting(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    rt = gateway(monkeypatch, {"local": 3})
    rt.records.put_api_key("key-of-b", "second")
    with ThreadPoolExecutor(max_workers=16) as pool:
        a_tasks = list(pool.map(lambda _: create(rt, tenant, request(sample_url))[0], range(303)))
    a_running = [t for t in a_tasks if t.status is Status.SUBMITTED]
    assert len(a_running) == 3
    b_task, _ = create(rt, "second", request(sample_url))
    assert b_task.status is Status.ACCEPTED
    place = capacity.place(rt, b_task)
    assert place is not None
    assert place.position <= 2

    released = 0
    for running in a_running[:2]:
        cancel(rt, tenant, running.id)
        released += 1
        if rt.tasks.require(b_task.id).slot == "local":
            break
    assert rt.tasks.require(b_task.id).slot == "local", "B still waits after two releases"
    assert released <= 2


def test_a_waiting_tenant_keeps_its_order(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    rt = gateway(monkeypatch, {"local": 1})
    made = [create(rt, tenant, request(sample_url, prompt=f"shot {n}"))[0] for n in range(6)]
    order = []
    for _ in range(5):
        holder = next(t for t in made if rt.tasks.require(t.id).slot == "local")
        order.append(holder.request.prompt)
        cancel(rt, tenant, holder.id)
    assert order == [f"shot {n}" for n in range(5)]


def test_cancelling_a_waiting_task_frees_nothing_and_never_reaches_the_provider(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    rt = gateway(monkeypatch, {"local": 1})
    running, _ = create(rt, tenant, request(sample_url))
    waiting, _ = create(rt, tenant, request(sample_url))
    assert waiting.status is Status.ACCEPTED

    ended = cancel(rt, tenant, waiting.id)

    assert ended.status is Status.CANCELLED
    assert rt.tasks.require(waiting.id).queue_sk is None  # left the queue
    assert rt.tasks.require(running.id).slot == "local"  # the running one keeps its slot
    assert in_flight(rt, "local") == 1
    assert local_sim.submits == 1
    assert local_sim.cancels == []
    assert capacity.waiting_by_provider(rt) == {}


def test_a_waiting_task_times_out_at_its_deadline_saying_it_waited_for_capacity(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    clock = Clock()
    rt = gateway(monkeypatch, {"local": 1}, clock)
    create(rt, tenant, request(sample_url))
    waiting, _ = create(rt, tenant, request(sample_url))

    clock.advance(rt.settings.task_deadline_seconds - 60)
    sweep(rt)
    assert rt.tasks.require(waiting.id).status is Status.ACCEPTED  # not failed for capacity before then
    clock.advance(61)
    sweep(rt)

    ended = rt.tasks.require(waiting.id)
    assert ended.status is Status.TIMED_OUT
    assert ended.error is not None
    assert "capacity at local" in ended.error.message
    assert ended.queue_sk is None
    assert local_sim.submits == 1


def test_a_crash_between_taking_a_slot_and_sending_leaks_nothing(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    rt = gateway(monkeypatch, {"local": 1}, clock)
    task, _ = holding_a_slot(rt, tenant, sample_url)
    # ...and the function died here: nothing was sent.
    assert in_flight(rt, "local") == 1

    clock.advance(rt.settings.submit_grace_seconds + 1)  # its submit lease ends
    sweep(rt)

    sent = rt.tasks.require(task.id)
    assert sent.status is Status.SUBMITTED  # sent with the slot it held: no second slot, no leak
    assert sent.slot == "local"
    assert in_flight(rt, "local") == 1
    assert local_sim.submits == 1


def test_a_crash_after_sending_fails_the_task_and_gives_its_slot_back(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    rt = gateway(monkeypatch, {"local": 1}, clock)
    task, claim = holding_a_slot(rt, tenant, sample_url)
    sent = [{"provider": "local", "at": "2026-12-07T00:00:00+00:00", "outcome": "sent"}]
    assert rt.tasks.update(task.id, {Status.ACCEPTED}, holding=claim, attempts=sent)
    # ...and the function died while the request was out: the job may exist, so it is never sent again.

    clock.advance(rt.settings.submit_grace_seconds + 1)
    sweep(rt)

    ended = rt.tasks.require(task.id)
    assert ended.status is Status.FAILED
    assert ended.slot is None
    assert in_flight(rt, "local") == 0
    assert local_sim.submits == 0


def test_a_crash_between_a_jobs_end_and_its_slots_release_leaks_nothing_after_a_sweep(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.faults.stall = True
    rt = gateway(monkeypatch, {"local": 1})
    running, _ = create(rt, tenant, request(sample_url))
    waiting, _ = create(rt, tenant, request(sample_url))
    # The job failed at the host and the task's end was written, outbox and all; the writer died before
    # doing the outbox, so the slot is still held.
    ended = rt.tasks.transition(running.id, Status.FAILED)
    assert ended is not None
    assert ended.slot == "local"
    assert in_flight(rt, "local") == 1

    sweep(rt)

    assert rt.tasks.require(running.id).slot is None
    assert rt.tasks.require(running.id).outbox == []
    # The slot went to the waiting task, which the same sweep sent.
    assert rt.tasks.require(waiting.id).slot == "local"
    assert in_flight(rt, "local") == 1


def holding_a_slot(rt: Runtime, tenant: str, sample_url: str) -> tuple[Task, Claim]:
    """A task as a create has it just before its send: stored, its submit lease held, a slot of `local`."""
    task = stored_accepted(rt, tenant, sample_url)
    claim = rt.tasks.claim(task.id, Work.SUBMIT, rt.settings.submit_grace_seconds, {Status.ACCEPTED})
    assert claim is not None
    assert capacity.take(rt, task.id, "local", holding=claim) is capacity.Take.TAKEN
    return task, claim


def stored_accepted(rt: Runtime, tenant: str, sample_url: str) -> Task:
    """A task as a create stores it (accepted, its submit lease held by the create), then let go."""
    from i2v.models import Mode
    from i2v.store import new_task_id

    now = rt.now()
    task = Task(
        id=new_task_id(),
        tenant=tenant,
        status=Status.ACCEPTED,
        request=request(sample_url),
        mode=Mode.FIRST_FRAME,
        providers=["local"],
        created_at=now,
        updated_at=now,
        deadline_at=now + rt.settings.task_deadline_seconds,
        next_poll_at=now + rt.settings.submit_grace_seconds,
    )
    rt.tasks.create(task)
    return task


def test_five_faults_in_a_row_open_the_circuit_and_tasks_spill_to_the_next_provider(
    aws: LocalResources, tenant: str, sample_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_LOCAL_BASE_URL", "https://down.example")  # answers 503: no job made
    monkeypatch.setenv("I2V_OXEN_BASE_URL", "https://oxen.example")
    monkeypatch.setenv("I2V_OXEN_API_KEY", "key")
    clock = Clock()
    rt = gateway(monkeypatch, {"local": 5, "oxen": 50}, clock)
    asked: list[str] = []

    def host(req: httpx.Request) -> httpx.Response:
        asked.append(req.url.host)
        if req.url.host == "down.example":
            return httpx.Response(503, json={"error": "service unavailable"})
        return httpx.Response(200, json={"generations": [{"generation_id": f"gen-{len(asked)}"}]})

    rt.client = ProviderClient(transport=httpx.MockTransport(host), attempts=1)
    made = []
    for _ in range(8):
        made.append(create(rt, tenant, request(sample_url, provider=["local", "oxen"]))[0])
        clock.advance(10)  # past each backoff (1, 2, 4, 8 s), inside the cooldown

    assert asked.count("down.example") == 5  # then the circuit opened: no more sends there
    assert all(t.status is Status.SUBMITTED and t.provider == "oxen" for t in made)
    assert [a.outcome for a in made[-1].attempts] == ["full", "accepted"]  # passed over, recorded
    record = capacity.provider_record(rt, "local")
    assert record.circuit_open(rt.now())
    assert in_flight(rt, "local") == 0

    clock.advance(capacity.CIRCUIT_COOLDOWN_SECONDS)  # after the cooldown, one task tries it again
    create(rt, tenant, request(sample_url, provider=["local", "oxen"]))
    assert asked.count("down.example") == 6


def test_fastest_routing_tries_the_provider_whose_recent_jobs_were_shortest_first(
    aws: LocalResources, tenant: str, sample_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from i2v.create import route

    monkeypatch.setenv("I2V_OXEN_BASE_URL", "https://oxen.example")
    monkeypatch.setenv("I2V_OXEN_API_KEY", "key")
    monkeypatch.setenv("I2V_DEFAULT_PROVIDERS", "local,oxen")
    rt = gateway(monkeypatch, {"local": 5, "oxen": 5})
    ordered = request(sample_url)
    assert route(rt, ordered, ordered.resolved_mode()) == ["local", "oxen"]
    fastest = request(sample_url, routing="fastest")
    assert route(rt, fastest, fastest.resolved_mode()) == ["local", "oxen"]  # no times yet: the order

    # Jobs as they end: local's took 90 s from submit to done, oxen's 30 s (the last few kept, no Scan).
    for provider, seconds in (("local", 90), ("oxen", 40), ("oxen", 30), ("oxen", 20)):
        job = stored_accepted(rt, tenant, sample_url).model_copy(
            update={"provider": provider, "submitted_at": rt.now() - seconds}
        )
        capacity.finished_job(rt, job)

    assert route(rt, fastest, fastest.resolved_mode()) == ["oxen", "local"]
    assert capacity.p50(capacity.provider_record(rt, "oxen")) == 30
    assert route(rt, ordered, ordered.resolved_mode()) == ["local", "oxen"]


def test_a_host_that_runs_fewer_jobs_than_configured_brings_the_cap_down_to_its_own_and_loses_nothing(
    aws: LocalResources,
    tenant: str,
    local_sim: LocalSimulator,
    sample_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_sim.capacity.max_in_flight = 4  # the host's real cap: it answers 429 beyond it
    local_sim.capacity.job_seconds = 1.0
    monkeypatch.setenv("I2V_POLL_INTERVAL_SECONDS", "1")
    rt = gateway(monkeypatch, {"local": 10})  # configured too high, as for an account shared with others
    made = [create(rt, tenant, request(sample_url))[0] for _ in range(30)]

    ended = drive_until_ended(rt, aws, [t.id for t in made], seconds=240)

    assert [t.status for t in ended] == [Status.SUCCEEDED] * 30  # none lost, none failed for capacity
    assert local_sim.peak_in_flight <= 4
    assert len(local_sim.tasks) == 30  # one job each: a refused submit made none, and none went twice
    refused = local_sim.refusals["in_flight"]
    assert 1 <= refused <= 6, f"{refused} refusals for 30 jobs: the cap did not settle"
    record = capacity.provider_record(rt, "local")
    assert record.eff_cap in (4, 5)  # the host's cap (5: raised by one after a run of successes, to probe)
    assert record.refused == refused
    assert record.in_flight == 0
