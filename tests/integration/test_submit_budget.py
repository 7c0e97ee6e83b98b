"""A create call never outlives API Gateway's 29 s: past its budget, failover is left to the sweeper."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from i2v.create import create
from i2v.models import Status, VideoRequest
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator
from i2v_local.sim_oxen import OxenSimulator
from tests.support import containers


@pytest.fixture
def oxen(tenant: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OxenSimulator]:
    with OxenSimulator() as sim:
        monkeypatch.setenv("I2V_OXEN_BASE_URL", sim.base_url)
        monkeypatch.setenv("I2V_OXEN_API_KEY", sim.api_key)
        containers.clear()  # new containers read the new environment
        yield sim  # type: ignore[misc]


class SlowClock:
    """Each reading is 10 s after the last, as if every provider call were slow."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 10
        return self.now


def test_slow_failing_first_provider_leaves_the_next_one_to_the_sweeper(
    rt: Runtime, local_sim: LocalSimulator, oxen: OxenSimulator, media_server: tuple[Path, str]
) -> None:
    local_sim.faults.fail_submits = 99
    slow = Runtime.from_environment()
    slow.clock = SlowClock(time.time())
    req = VideoRequest(image_url=f"{media_server[1]}/sample.png", provider=["local", "oxen"])
    task, _ = create(slow, "demo", req)
    assert task.status is Status.ACCEPTED
    assert [(a.provider, a.outcome) for a in task.attempts] == [("local", "rejected")]
    assert oxen.submits == 0  # not tried within the call...
    stored = rt.tasks.get(task.id)
    assert stored is not None
    assert stored.next_poll_at is not None  # ...but due for the sweeper, which will
