"""The callback function answers the provider within seconds whatever its status API does: the status query
has a short total budget (`callback_status_budget_seconds`), and one that runs out leaves the task to the
sweeper rather than holding the provider's callback open past its patience."""

from __future__ import annotations

import json
import time

import pytest

from i2v.create import create
from i2v.models import Status, VideoRequest
from i2v.runtime import Runtime
from i2v.submit import callback_token
from i2v_local.sim_local import LocalSimulator
from tests.support import containers, invoke, load_event

BUDGET = 1.0  # seconds; deployed it is 3
SLACK = 1.0  # the writes around the query, and the handler's own work


@pytest.fixture
def budget(tenant: str, monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("I2V_CALLBACK_STATUS_BUDGET_SECONDS", str(BUDGET))
    containers.clear()  # the callback function's next container reads it
    return BUDGET


def test_a_status_api_that_does_not_answer_leaves_the_task_to_the_sweeper_within_the_budget(
    rt: Runtime, local_sim: LocalSimulator, budget: float, sample_url: str
) -> None:
    local_sim.faults.stall = True  # the job stays queued; no callback of its own
    task, _ = create(rt, "demo", VideoRequest(image_url=sample_url, provider="local"))
    assert task.status is Status.SUBMITTED
    local_sim.faults.delay_polls = 60  # the status API takes a minute (released when the simulator stops)
    event = load_event("callback.json")
    token = callback_token(rt, task.id)
    event.update(path=f"/v1/callbacks/local/{task.id}", body=json.dumps({"id": task.provider_task_id}))
    event["pathParameters"] = {"provider": "local", "task_id": task.id}
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    started = time.monotonic()
    answer = invoke("callback", event)
    took = time.monotonic() - started
    assert answer["statusCode"] == 200
    assert took < budget + SLACK  # three 10 s tries would have been 30 s
    after = rt.tasks.require(task.id)
    assert after.status is Status.SUBMITTED  # nothing learnt, nothing changed but when to ask again
    assert after.next_poll_at is not None
    assert after.next_poll_at > rt.now()  # the sweeper asks later
