"""The `local` adapter against its simulator: what is particular to its plain task API. What every host
shares (rate limits, retries, unknown words, expired links, lost answers, cancel) is in test_engine.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers.base import ProviderRejected, ProviderState
from i2v.providers.client import ProviderClient
from i2v.providers.local import LocalProvider
from i2v_local.sim_local import LocalSimulator
from tests.contract.drive import poll


@pytest.fixture
def sim() -> Iterator[LocalSimulator]:
    with LocalSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: LocalSimulator) -> LocalProvider:
    return LocalProvider(base_url=sim.base_url, api_key=sim.api_key)


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    task_id = adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), None), is_submit=True)
    )
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
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
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
        wrong.parse_submit(
            client.send(wrong.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
        )
    assert caught.value.status_code == 401


def test_cancel_of_a_finished_task_is_a_409_not_cancellable(
    sim: LocalSimulator, adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "refused"
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    assert poll(adapter, client, task_id)[-1].state is ProviderState.FAILED
    cancel = adapter.cancel(task_id)
    assert cancel is not None
    answer = client.send(cancel)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_cancellable")
    assert adapter.parse_status(client.send(adapter.status(task_id))).state is ProviderState.FAILED
