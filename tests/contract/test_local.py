"""The `local` adapter against its simulator: the contract every provider's test file follows."""

from __future__ import annotations

import httpx
import pytest

from i2v.models import VideoRequest
from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.local import LocalProvider
from i2v_local.sim_local import LocalSimulator
from tests.contract.drive import poll


@pytest.fixture
def sim() -> LocalSimulator:
    with LocalSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: LocalSimulator) -> LocalProvider:
    return LocalProvider(base_url=sim.base_url, api_key=sim.api_key)


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    task_id = adapter.parse_submit(client.send(adapter.submit(req, None), is_submit=True))
    seen = poll(adapter, client, task_id)
    assert seen[-1].state is ProviderState.SUCCEEDED
    assert seen[-1].progress == 100
    assert [s.progress for s in seen] == sorted(s.progress or 0 for s in seen)
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"


def test_render_failure_is_reported_with_the_providers_error(
    sim: LocalSimulator, adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image"
    task_id = adapter.parse_submit(client.send(adapter.submit(VideoRequest(image_url=sample_url), None)))
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.FAILED
    assert final.error_code == "render_failed"
    assert final.error_message == "the model refused this image"


def test_invalid_submit_is_rejected_with_the_providers_error_shape(
    adapter: LocalProvider, client: ProviderClient
) -> None:
    bad = adapter.request("POST", "/v1/tasks", {"duration": 5})
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(client.send(bad))
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_media"


def test_wrong_key_is_rejected(sim: LocalSimulator, client: ProviderClient, sample_url: str) -> None:
    wrong = LocalProvider(base_url=sim.base_url, api_key="not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(client.send(wrong.submit(VideoRequest(image_url=sample_url), None)))
    assert caught.value.status_code == 401


def test_cancel_stops_a_queued_task(
    sim: LocalSimulator, adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = adapter.parse_submit(client.send(adapter.submit(VideoRequest(image_url=sample_url), None)))
    cancel = adapter.cancel(task_id)
    assert cancel is not None
    assert client.send(cancel).status_code == 200
    assert adapter.parse_status(client.send(adapter.status(task_id))).state is ProviderState.CANCELLED


def test_429_waits_for_retry_after_then_succeeds(
    sim: LocalSimulator, adapter: LocalProvider, sample_url: str
) -> None:
    waits: list[float] = []
    client = ProviderClient(timeout=5, sleep=waits.append)
    sim.faults.rate_limit_submits, sim.faults.retry_after = 1, 2
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), None), is_submit=True)
    )
    assert task_id
    assert waits == [2.0]
    assert sim.submits == 2


def test_429_beyond_the_wait_budget_surfaces_retry_after(
    sim: LocalSimulator, adapter: LocalProvider, sample_url: str
) -> None:
    client = ProviderClient(timeout=5, sleep=lambda s: None, max_retry_after=1)
    sim.faults.rate_limit_submits, sim.faults.retry_after = 1, 30
    with pytest.raises(ProviderRateLimited) as caught:
        client.send(adapter.submit(VideoRequest(image_url=sample_url), None), is_submit=True)
    assert caught.value.retry_after == 30


def test_unknown_status_is_an_error_keeping_the_raw_value(
    sim: LocalSimulator, adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = adapter.parse_submit(client.send(adapter.submit(VideoRequest(image_url=sample_url), None)))
    sim.faults.unknown_status = "MELTING"
    with pytest.raises(UnknownProviderStatus) as caught:
        adapter.parse_status(client.send(adapter.status(task_id)))
    assert "MELTING" in caught.value.raw


def test_expired_result_url_answers_403(
    sim: LocalSimulator, adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url, duration=2), None))
    )
    final = poll(adapter, client, task_id)[-1]
    sim.faults.expire_results = True
    assert httpx.get(final.result_url or "").status_code == 403


def test_unknown_task_is_a_404_rejection(adapter: LocalProvider, client: ProviderClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_status(client.send(adapter.status("no-such-task")))
    assert caught.value.status_code == 404
