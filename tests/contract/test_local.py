"""The `local` adapter against its simulator: what is particular to its plain task API. What every host
shares (rate limits, retries, unknown words, expired links, lost answers, cancel) is in test_engine.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import av
import httpx
import numpy as np
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import local
from i2v.providers.base import ProviderRejected, ProviderState
from i2v.providers.client import ProviderClient
from i2v.providers.local import LocalProvider
from i2v_local.sim_local import MAX_SEED, LocalSimulator
from tests.contract.drive import poll


@pytest.fixture
def sim() -> Iterator[LocalSimulator]:
    with LocalSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: LocalSimulator) -> LocalProvider:
    return local.PROVIDER.build(sim.base_url, sim.api_key)


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
    wrong = local.PROVIDER.build(sim.base_url, "not-the-key")
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


# -- the request shows in the video ---------------------------------------------------------------------


def test_submit_sends_the_prompts_the_seed_and_the_options() -> None:
    offline = local.PROVIDER.build("https://renderer.invalid", "k")
    req = VideoRequest(
        prompt="a fox",
        negative_prompt="blur",
        image_url="https://media.invalid/fox.png",
        seed=42,
        prompt_extend=False,
        watermark=True,
    )

    body = json.loads(offline.submit(req, Mode.FIRST_FRAME, None).content)

    assert {k: body[k] for k in ("prompt", "negative_prompt", "seed", "prompt_extend", "watermark")} == {
        "prompt": "a fox",
        "negative_prompt": "blur",
        "seed": 42,
        "prompt_extend": False,
        "watermark": True,
    }


def _video(adapter: LocalProvider, client: ProviderClient, req: VideoRequest) -> np.ndarray:
    """Submit, wait, download and decode: the frames as (frame, row, column, rgb)."""
    task_id = adapter.parse_submit(client.send(adapter.submit(req, req.resolved_mode(), None)))
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.SUCCEEDED, final
    with av.open(io.BytesIO(httpx.get(final.result_url or "").content), mode="r") as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames).astype(np.int16)


def test_two_prompts_give_two_videos_with_the_same_picture_above_their_captions(
    adapter: LocalProvider, client: ProviderClient, sample_url: str
) -> None:
    shared = VideoRequest(image_url=sample_url, duration=2, resolution="720p", seed=11)
    fox = _video(adapter, client, shared.model_copy(update={"prompt": "a red fox in the snow"}))
    storm = _video(adapter, client, shared.model_copy(update={"prompt": "a lighthouse in a storm"}))

    rows = np.abs(fox - storm).mean(axis=(0, 2, 3))
    assert rows[-12:].mean() > 5.0  # the caption band at the bottom
    assert rows[: round(len(rows) * 0.8)].max() < 2.0  # the picture: the same up to encoder noise


def _task_json(sim: LocalSimulator, client: ProviderClient, body: dict[str, object]) -> dict[str, object]:
    adapter = local.PROVIDER.build(sim.base_url, sim.api_key)
    task_id = adapter.parse_submit(client.send(adapter.request("POST", "/v1/tasks", body)))
    answer: dict[str, object] = client.send(adapter.status(task_id)).json()
    return answer


def test_a_task_without_a_seed_gets_a_random_one_and_reports_it(
    sim: LocalSimulator, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True  # nothing needs rendering to see the seed
    chosen = _task_json(sim, client, {"image_url": sample_url, "seed": 5})
    drawn = [_task_json(sim, client, {"image_url": sample_url}) for _ in range(2)]

    assert chosen["seed"] == 5
    seeds = [task["seed"] for task in drawn]
    assert all(isinstance(seed, int) and 0 <= seed <= MAX_SEED for seed in seeds)
    assert seeds[0] != seeds[1]  # a 1 in 2**31 chance of a false alarm


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, "7", True, 1.5])
def test_a_seed_outside_the_models_range_is_refused(
    adapter: LocalProvider, client: ProviderClient, sample_url: str, seed: object
) -> None:
    bad = adapter.request("POST", "/v1/tasks", {"image_url": sample_url, "seed": seed})
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(client.send(bad))
    assert (caught.value.status_code, caught.value.code) == (400, "invalid_seed")
