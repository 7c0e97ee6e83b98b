"""Usage per tenant: a task's cost counts once in its tenant's day, however often (or at once) its after-end
step runs; a report reads only the days asked, for the tenant asking."""

from __future__ import annotations

import threading

from i2v import create, usage
from i2v.models import Status, Task, VideoRequest
from i2v.pricing import task_cost
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator


def ended_without_cost(rt: Runtime, tenant: str, sim: LocalSimulator) -> Task:
    """A task moved to failed by the bare terminal write, its after-end steps (the cost first) not done."""
    sim.faults.stall = True
    request = VideoRequest(
        image_url=f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png", duration=2, resolution="720p"
    )
    task, _ = create.create(rt, tenant, request)
    ended = rt.tasks.transition(task.id, Status.FAILED)
    assert ended is not None
    assert ended.cost is None
    return ended


def test_a_tasks_cost_counts_once_however_many_run_its_step_at_once(
    rt: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = ended_without_cost(rt, tenant, local_sim)
    cost = task_cost(rt.settings, task)
    barrier = threading.Barrier(5)
    results: list[Task | None] = []

    def run() -> None:
        barrier.wait()
        results.append(usage.record(rt, task, cost))

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    assert usage.record(rt, task, cost) is None  # and again later, after a crash: still once
    report = usage.report(rt, tenant, None, None, "status")
    assert [(g.key, g.tasks, g.client_charge) for g in report.groups] == [("failed", 1, 0.0)]
    assert rt.tasks.require(task.id).cost == cost


def test_a_report_is_the_asking_tenants_and_the_days_asked(
    rt: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    task = ended_without_cost(rt, tenant, local_sim)
    usage.record(rt, task, task_cost(rt.settings, task))
    assert usage.report(rt, "someone-else", None, None, "provider").groups == []
    today = usage.day_of(rt.now())
    assert usage.report(rt, tenant, "2020-01-01", "2020-01-31", "day").groups == []
    assert [g.key for g in usage.report(rt, tenant, today, today, "day").groups] == [today]
