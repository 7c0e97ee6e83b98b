"""Cost-aware routing on the local stack with an operator's price table: `routing: "cheapest"` orders the
capable, healthy providers by price for the request (unpriced last), `/v1/providers` shows each one's price
for a request shape, and a delivered task's cost is estimated from the table."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from i2v_local.stack import LocalStack
from tests.e2e.flows import create, finished, wait_for

pytestmark = pytest.mark.e2e

PRICES = {"oxen": {"720p": 0.20}, "local": {"720p": 0.10, "1080p": 0.30}, "novita": {"720p": 0.15}}
ORDER = "oxen,evolink,novita,local"


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> Iterator[LocalStack]:
    """This module's stack: its functions read the price table and the default order at their cold start."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("I2V_PRICES", json.dumps(PRICES))
        env.setenv("I2V_DEFAULT_PROVIDERS", ORDER)
        with LocalStack(aws_endpoint=moto_endpoint, sweep_every=0.5, poll_interval=1) as running:
            yield running


def routed(stack: LocalStack, body: dict[str, object], api: httpx.Client) -> list[str]:
    task = create(api, body)
    return stack.runtime().tasks.require(task["id"]).providers


def test_cheapest_routing_orders_the_providers_by_price_for_the_request(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    body = {"image_url": image_url, "resolution": "720p", "duration": 5, "routing": "cheapest"}
    order = routed(stack, body, api)
    priced = [name for name in order if name in PRICES]
    assert priced == ["local", "novita", "oxen"]  # 0.10, 0.15, 0.20 a second
    assert order[: len(priced)] == priced  # then the providers with no price, in the configured order
    assert routed(stack, {**body, "routing": "ordered"}, api)[0] == "oxen"  # the gateway's own order
    at_1080p = routed(stack, {**body, "resolution": "1080p"}, api)
    assert at_1080p[0] == "local"  # the only price at 1080p


def test_a_task_routed_by_price_is_costed_from_the_table(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    body = {"image_url": image_url, "resolution": "720p", "duration": 2, "routing": "cheapest"}
    task = create(api, body)
    assert finished(api, task["id"])["status"] == "succeeded"
    view = wait_for(lambda: (v := api.get(f"/v1/videos/{task['id']}").json())["cost"] and v)
    assert view["provider"] == "local"
    cost = view["cost"]
    assert cost["cost_source"] == "estimate"
    assert cost["provider_cost"] == pytest.approx(cost["billed_seconds"] * 0.10)
    assert cost["client_charge"] == cost["provider_cost"]


def test_providers_show_their_price_for_a_request_shape(api: httpx.Client) -> None:
    shown = {
        p["name"]: p for p in api.get("/v1/providers", params={"resolution": "720p", "duration": 4}).json()
    }
    assert (shown["local"]["price_per_second"], shown["local"]["price_for_request"]) == (0.10, 0.4)
    assert (shown["evolink"]["price_per_second"], shown["evolink"]["price_for_request"]) == (None, None)
    at_1080p = {p["name"]: p for p in api.get("/v1/providers", params={"resolution": "1080p"}).json()}
    assert at_1080p["local"]["price_for_request"] == pytest.approx(1.5)  # 0.30 x the default 5 s
    assert at_1080p["oxen"]["price_per_second"] is None


def test_under_a_budget_a_finished_task_keeps_only_its_charge_and_an_over_budget_create_is_a_402(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    records = stack.records
    records.set_budget(stack.tenant, 1.0)
    try:
        body = {"image_url": image_url, "resolution": "720p", "duration": 2, "routing": "cheapest"}
        task = create(api, body)
        assert finished(api, task["id"])["status"] == "succeeded"
        view = wait_for(lambda: (v := api.get(f"/v1/videos/{task['id']}").json())["cost"] and v)
        stored = stack.runtime().tasks.require(task["id"])
        assert stored.reserved_usd == pytest.approx(2 * 0.20)  # the worst case: oxen's 0.20 a second
        month = stack.runtime().tasks.table.get(f"BUDGET#{stack.tenant}#{stored.budget_period}")
        assert month is not None
        left = 1.0 - view["cost"]["client_charge"]
        assert float(month["remaining"]) == pytest.approx(left)

        refused = api.post("/v1/videos", json={**body, "duration": 15, "resolution": "1080p"})
        assert refused.status_code == 402  # 15 s x local's 0.30 at 1080p: up to 4.50
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert f"up to $4.5000; ${left:.4f} of your $1.00 budget" in refused.json()["detail"]
    finally:
        records.set_budget(stack.tenant, None)
