"""Routing by provider health: a host failing right now is tried last, and first again once it recovers.

Two providers are configured in the order [local, oxen], each behind its simulator; the health records are
written as submits write them (`Records.record_provider_outcome`), and each create goes through the API
function, so the simulators' submit counts say which host was asked first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from i2v.records import Records
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator
from i2v_local.sim_oxen import OxenSimulator
from tests.support import api_call, containers


@pytest.fixture
def hosts(tenant: str, local_sim: LocalSimulator) -> Iterator[tuple[LocalSimulator, OxenSimulator]]:
    """local, then oxen, as the gateway's default order; neither renders (a submit is all a test needs)."""
    with OxenSimulator() as oxen, pytest.MonkeyPatch.context() as env:
        env.setenv("I2V_OXEN_BASE_URL", oxen.base_url)
        env.setenv("I2V_OXEN_API_KEY", oxen.api_key)
        env.setenv("I2V_DEFAULT_PROVIDERS", "local,oxen")
        containers.clear()  # new containers read this configuration
        local_sim.faults.stall = oxen.faults.stall = True
        yield local_sim, oxen  # type: ignore[misc]
        containers.clear()


def create(sample_url: str) -> dict[str, Any]:
    status, task = api_call("POST", "/v1/videos", {"image_url": sample_url, "duration": 2})
    assert status == 202, task
    assert task["status"] == "submitted"
    return dict(task)


def submits(hosts: tuple[LocalSimulator, OxenSimulator]) -> tuple[int, int]:
    return hosts[0].submits, hosts[1].submits


def fail(records: Records, provider: str, times: int) -> None:
    for _ in range(times):
        records.record_provider_outcome(provider, ok=False, error="HTTP 503: service unavailable")


def test_degraded_provider_is_tried_last_and_first_again_once_it_succeeds(
    rt: Runtime, hosts: tuple[LocalSimulator, OxenSimulator], sample_url: str
) -> None:
    healthy = create(sample_url)
    assert healthy["provider"] == "local"
    assert rt.tasks.require(healthy["id"]).providers == ["local", "oxen"]
    assert submits(hosts) == (1, 0)

    fail(rt.records, "local", 3)  # three submits in a row failed just now: degraded
    around = create(sample_url)
    assert around["provider"] == "oxen"
    assert rt.tasks.require(around["id"]).providers == ["oxen", "local"]  # still there, as a last resort
    assert submits(hosts) == (1, 1)  # oxen got the submit, local none

    rt.records.record_provider_outcome("local", ok=True)  # one success clears it
    recovered = create(sample_url)
    assert recovered["provider"] == "local"
    assert rt.tasks.require(recovered["id"]).providers == ["local", "oxen"]
    assert submits(hosts) == (2, 1)


@pytest.mark.parametrize(
    ("failures", "seconds_ago"),
    [(2, 0), (3, 301)],
    ids=["two-recent-failures", "three-failures-over-five-minutes-ago"],
)
def test_a_few_or_old_failures_keep_the_configured_order(
    rt: Runtime,
    hosts: tuple[LocalSimulator, OxenSimulator],
    sample_url: str,
    failures: int,
    seconds_ago: int,
) -> None:
    fail(Records(rt.tasks.table, clock=lambda: time.time() - seconds_ago), "local", failures)
    task = create(sample_url)
    assert task["provider"] == "local"
    assert rt.tasks.require(task["id"]).providers == ["local", "oxen"]
    assert submits(hosts) == (1, 0)


def test_tenants_see_a_providers_coarse_health_never_another_tenants_times_or_errors(
    rt: Runtime, hosts: tuple[LocalSimulator, OxenSimulator]
) -> None:
    def listed() -> dict[str, dict[str, Any]]:
        status, answer = api_call("GET", "/v1/providers")
        assert status == 200, answer
        return {p["name"]: p for p in answer}

    rt.records.record_provider_outcome("oxen", ok=True)
    secret = "HTTP 500: tenant acme's job job_123 for s3://acme-private/cat.png failed"
    fail(rt.records, "local", 3)
    assert (listed()["local"]["status"], listed()["oxen"]["status"]) == ("degraded", "ok")
    fail(rt.records, "local", 7)
    shown = listed()
    assert shown["local"]["status"] == "down"
    rt.records.record_provider_outcome("local", ok=False, error=secret)
    text = repr(listed())
    for leak in ("acme", "job_123", "last_success", "last_error", "consecutive", str(rt.now())[:8]):
        assert leak not in text, (leak, text)
