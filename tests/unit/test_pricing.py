"""What a task cost: the provider's report first, else the operator's price table, else null with a reason;
the client is charged nothing for a task that did not succeed."""

from __future__ import annotations

import pytest

from i2v.config import Settings
from i2v.models import Mode, Output, Status, Task, VideoRequest
from i2v.pricing import price_per_second, task_cost

PRICES = {"oxen": {"720p": 0.10, "1080p": 0.15, "720p+audio": 0.12}}


def settings(prices: dict[str, dict[str, float]] | None = None) -> Settings:
    return Settings(table_name="t", bucket_name="b", prices=prices if prices is not None else PRICES)


def task(status: Status = Status.SUCCEEDED, duration: float | None = 5.04, **changes: object) -> Task:
    request = VideoRequest(image_url="https://media.example/a.png", resolution="720p", duration=5)
    fields: dict[str, object] = {
        "id": "vid_1",
        "tenant": "acme",
        "status": status,
        "request": request,
        "mode": Mode.FIRST_FRAME,
        "providers": ["oxen"],
        "provider": "oxen",
        "provider_task_id": "job-1",
        "created_at": 1,
        "updated_at": 1,
        "deadline_at": 2,
    }
    if status is Status.SUCCEEDED:
        fields["output"] = Output(key="k", size=1, sha256="0", content_type="video/mp4", duration=duration)
    return Task.model_validate({**fields, **changes})


def test_a_succeeded_task_is_estimated_from_the_stored_seconds_and_the_price_table() -> None:
    cost = task_cost(settings(), task())
    assert cost.billed_seconds == 5.04
    assert cost.provider_cost == pytest.approx(0.504)
    assert cost.cost_source == "estimate"
    assert cost.client_charge == cost.provider_cost  # pass-through


def test_the_providers_own_figure_wins_over_the_table() -> None:
    cost = task_cost(settings(), task(reported_cost_usd=0.06))
    assert (cost.provider_cost, cost.cost_source, cost.client_charge) == (0.06, "reported", 0.06)


def test_without_a_price_or_a_report_the_cost_stays_null_and_says_why() -> None:
    cost = task_cost(settings({}), task())
    assert (cost.provider_cost, cost.cost_source, cost.client_charge) == (None, "no_price", None)
    assert cost.billed_seconds == 5.04


def test_a_delivered_video_whose_duration_could_not_be_read_is_not_estimated_at_zero() -> None:
    cost = task_cost(settings(), task(duration=None))
    assert (cost.billed_seconds, cost.provider_cost, cost.cost_source) == (0.0, None, "unmeasured")
    assert cost.client_charge is None


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED, Status.TIMED_OUT])
def test_a_task_that_did_not_succeed_charges_the_client_nothing(status: Status) -> None:
    cost = task_cost(settings(), task(status))
    assert (cost.billed_seconds, cost.client_charge, cost.cost_source) == (0.0, 0.0, "not_billed")
    charged = task_cost(settings(), task(status, reported_cost_usd=0.06))  # the host billed it anyway
    assert (charged.provider_cost, charged.client_charge) == (0.06, 0.0)


def test_a_task_no_provider_accepted_charges_nothing() -> None:
    cost = task_cost(settings(), task(Status.FAILED, provider=None, provider_task_id=None))
    assert (cost.provider_cost, cost.client_charge) == (None, 0.0)


def test_audio_has_its_own_price_where_the_host_prices_it() -> None:
    assert price_per_second(settings(), "oxen", "720p", audio=True) == 0.12
    assert price_per_second(settings(), "oxen", "1080p", audio=True) == 0.15  # no audio price: the plain one
    assert price_per_second(settings(), "novita", "720p", audio=False) is None


@pytest.fixture
def oxen_publishes_a_price(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if oxen's module declared the price its host publishes."""
    from dataclasses import replace

    from i2v.providers.registry import PROVIDERS

    monkeypatch.setitem(PROVIDERS, "oxen", replace(PROVIDERS["oxen"], price={"720p": 0.2, "1080p": 0.3}))


@pytest.mark.usefixtures("oxen_publishes_a_price")
def test_without_an_operator_price_the_hosts_published_price_is_used_and_said() -> None:
    assert price_per_second(settings({}), "oxen", "720p", audio=False) == 0.2
    cost = task_cost(settings({}), task())
    assert (cost.provider_cost, cost.cost_source) == (pytest.approx(5.04 * 0.2), "list_price")


@pytest.mark.usefixtures("oxen_publishes_a_price")
def test_the_operators_price_wins_over_the_published_one() -> None:
    assert price_per_second(settings(), "oxen", "720p", audio=False) == 0.10
    assert task_cost(settings(), task()).cost_source == "estimate"
