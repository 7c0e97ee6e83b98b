"""Budgets that hold under concurrency: a create's worst case is reserved in the transaction that stores it,
so concurrent creates cannot overspend; a refused one is a 402 saying what remains; a task's end settles its
reservation to what it actually cost."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from i2v import cancel, create
from i2v.models import RequestProblem, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator

PRICE = 0.10  # USD a second at 720p, the local provider's in these tests


@pytest.fixture
def priced(monkeypatch: pytest.MonkeyPatch, aws: Any, local_sim: LocalSimulator) -> Runtime:
    monkeypatch.setenv("I2V_PRICES", json.dumps({"local": {"720p": PRICE}}))
    local_sim.faults.stall = True  # jobs are accepted and stay queued: only the reservations matter here
    return Runtime.from_environment()


def request(rt: Runtime, tenant: str, duration: int = 2, **more: Any) -> VideoRequest:
    image = f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png"
    return VideoRequest(image_url=image, duration=duration, resolution="720p", **more)


def remaining(rt: Runtime, tenant: str, task: Task | None = None) -> float:
    period = task.budget_period if task else None
    items = rt.tasks.table.resource.scan()["Items"]  # a test's view of the few items there are
    found = [
        i for i in items if str(i["pk"]).startswith(f"BUDGET#{tenant}#") and (not period or period in i["pk"])
    ]
    assert len(found) == 1
    return float(found[0]["remaining"])


def test_100_concurrent_creates_take_exactly_what_the_budget_allows_then_settle(
    priced: Runtime, tenant: str
) -> None:
    rt = priced
    rt.records.set_budget(tenant, 1.0)  # 5 creates of 2 s at 0.10 a second
    barrier = threading.Barrier(100)
    accepted: list[Task] = []
    refused: list[RequestProblem] = []

    def one() -> None:
        barrier.wait()
        try:
            accepted.append(create.create(rt, tenant, request(rt, tenant))[0])
        except RequestProblem as problem:
            refused.append(problem)

    threads = [threading.Thread(target=one) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 5
    assert len(refused) == 95
    assert {p.status for p in refused} == {402}
    assert all("$0.0000 of your $1.00 budget" in (p.detail or "") for p in refused)
    assert remaining(rt, tenant) == pytest.approx(0.0)  # reserved in full, never past it
    assert [t.reserved_usd for t in accepted] == [pytest.approx(2 * PRICE)] * 5
    for task in accepted:  # ended unbilled: each reservation comes back whole
        assert cancel.cancel(rt, tenant, task.id).status is Status.CANCELLED
    assert remaining(rt, tenant) == pytest.approx(1.0)


def test_a_tenant_without_a_budget_is_never_blocked(priced: Runtime, tenant: str) -> None:
    task, _ = create.create(priced, tenant, request(priced, tenant, duration=15))
    assert task.status is Status.SUBMITTED
    assert task.reserved_usd is None


def test_a_request_whose_worst_case_is_more_than_the_whole_budget_is_refused_and_writes_nothing(
    priced: Runtime, tenant: str
) -> None:
    priced.records.set_budget(tenant, 1.0)
    with pytest.raises(RequestProblem) as refused:
        create.create(priced, tenant, request(priced, tenant, duration=15))  # 1.50
    assert refused.value.status == 402
    assert "may cost up to $1.5000" in (refused.value.detail or "")
    assert priced.tasks.list_for_tenant(tenant, 10, None)[0] == []


def test_under_a_budget_a_provider_without_a_price_is_not_used_unless_the_operator_allows_it(
    monkeypatch: pytest.MonkeyPatch, priced: Runtime, tenant: str
) -> None:
    monkeypatch.setenv("I2V_PRICES", json.dumps({"oxen": {"720p": PRICE}}))  # none for local
    rt = Runtime.from_environment()
    rt.records.set_budget(tenant, 1.0)
    with pytest.raises(RequestProblem) as refused:
        create.create(rt, tenant, request(rt, tenant))
    assert (refused.value.status, refused.value.title) == (402, "No priced provider")
    monkeypatch.setenv("I2V_ALLOW_UNPRICED_UNDER_BUDGET", "true")
    allowed = Runtime.from_environment()
    task, _ = create.create(allowed, tenant, request(allowed, tenant))
    assert task.status is Status.SUBMITTED


def test_changing_a_budget_moves_what_remains_by_the_change(priced: Runtime, tenant: str) -> None:
    priced.records.set_budget(tenant, 1.0)
    task, _ = create.create(priced, tenant, request(priced, tenant))
    assert remaining(priced, tenant, task) == pytest.approx(0.8)
    priced.records.set_budget(tenant, 3.0)
    assert remaining(priced, tenant, task) == pytest.approx(2.8)
    assert priced.records.budget(tenant) == 3.0
