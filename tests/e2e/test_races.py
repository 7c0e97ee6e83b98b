"""Once-only on the whole local stack: a cancel reaches the provider's job, once, for every host that can
be asked to stop one."""

from __future__ import annotations

import httpx
import pytest

from i2v.providers import registry
from i2v.runtime import Runtime
from i2v_local.simulator import Simulator
from tests.e2e.flows import bus_events, create, wait_for

pytestmark = pytest.mark.e2e

# Hosts with a cancel endpoint, as their adapters say (the others' jobs run to the end whatever we do).
CANCELLABLE = sorted(
    name
    for name, entry in registry.PROVIDERS.items()
    if entry.build("http://127.0.0.1", "key").capabilities.cancel
)


@pytest.mark.parametrize("provider", CANCELLABLE)
def test_cancel_reaches_the_providers_job_exactly_once(
    provider: str,
    rt: Runtime,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    events_queue: str,
) -> None:
    sim = sims[provider]
    sim.faults.stall = True  # the job stays queued at the host: it would run, and bill, unless stopped
    task = create(api, {"image_url": image_url, "resolution": "720p", "duration": 2, "provider": provider})
    assert task["status"] == "submitted"
    job = task["attempts"][-1]["provider_task_id"]
    assert job in sim.tasks

    resp = api.post(f"/v1/videos/{task['id']}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"

    wait_for(lambda: job in sim.cancels, seconds=10)
    # Once every step the end owed is done (the event is its last but one), nothing asks the host again.
    assert [e["detail"]["status"] for e in bus_events(rt, events_queue, task["id"])] == ["cancelled"]
    assert sim.cancels.count(job) == 1
