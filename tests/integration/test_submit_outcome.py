"""What a submit's answer proves: a success whose body names no job still made one, so it is reconciled like
a lost answer and never sent to the next provider."""

from __future__ import annotations

import httpx
import pytest

from i2v.create import create
from i2v.models import Status, VideoRequest
from i2v.providers.client import ProviderClient
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator
from tests.support import containers


@pytest.fixture
def oxen(tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Oxen configured at a host the test answers for."""
    monkeypatch.setenv("I2V_OXEN_BASE_URL", "https://oxen.example")
    monkeypatch.setenv("I2V_OXEN_API_KEY", "key")
    containers.clear()


def test_a_success_that_names_no_job_is_an_unknown_outcome_not_a_failover(
    oxen: None, local_sim: LocalSimulator, sample_url: str
) -> None:
    rt = Runtime.from_environment()
    oxen_answering: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "oxen.example":
            oxen_answering.append(request)
            return httpx.Response(200, json={"generations": []})  # no generation_id
        raise AssertionError(f"sent on to {request.url}")  # the local provider must not be asked

    rt.client = ProviderClient(transport=httpx.MockTransport(route))
    task, _ = create(rt, "demo", VideoRequest(image_url=sample_url, provider=["oxen", "local"]))
    assert task.status is Status.FAILED
    assert task.error is not None
    assert task.error.code == "submit_outcome_unknown"
    assert [(a.provider, a.outcome) for a in task.attempts] == [("oxen", "unknown")]
    assert len(oxen_answering) == 1
    assert local_sim.submits == 0
