"""The `evolink` adapter: its requests and its parsing of EvoLink's documented bodies, then the adapter
against its simulator over loopback (submit, poll, errors, callbacks). What every host shares (rate limits,
retries, unknown words, expired links, lost answers) is in test_engine.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from i2v.models import MAX_SEED, Mode, VideoRequest
from i2v.providers import evolink
from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.evolink import DEFAULT_BASE_URL, EvolinkProvider
from i2v_local.sim_evolink import EvolinkSimulator
from tests.contract.drive import Receiver, poll, wait_until

MEDIA_FIELDS = ("image_start", "image_end", "video_urls", "audio_urls")
IMG, LAST, CLIP, AUDIO = (
    "https://cdn.example.com/first.png",
    "https://cdn.example.com/last.png",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/voice.mp3",
)

# The documented examples (https://docs.evolink.ai/en/api-manual/video-series/wan2.7/wan2.7-image-to-video ,
# https://docs.evolink.ai/en/api-manual/task-management/get-task-detail).
SUBMIT_EXAMPLE = {
    "created": 1757169743,
    "id": "task-unified-1757169743-7cvnl5zw",
    "model": "wan2.7-image-to-video",
    "object": "video.generation.task",
    "progress": 0,
    "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 120},
    "type": "video",
    "usage": {"billing_rule": "per_call", "credits_reserved": 5, "user_group": "default"},
}
COMPLETED_EXAMPLE = {
    "created": 1756817821,
    "id": "task-unified-1756817821-4x3rx6ny",
    "model": "wan2.7-image-to-video",
    "object": "video.generation.task",
    "progress": 100,
    "results": ["http://example.com/video.mp4"],
    "status": "completed",
    "task_info": {"can_cancel": False},
    "type": "video",
}
FAILED_EXAMPLE = {
    "created": 1756817821,
    "id": "task-unified-1756817821-4x3rx6ny",
    "model": "wan2.7-image-to-video",
    "object": "video.generation.task",
    "progress": 0,
    "status": "failed",
    "task_info": {"can_cancel": False},
    "type": "video",
    "error": {
        "code": "invalid_parameters",
        "message": "image dimensions must be between 240 and 7680",
        "type": "task_error",
    },
}


@pytest.fixture
def offline() -> EvolinkProvider:
    return evolink.PROVIDER.build(DEFAULT_BASE_URL, "k-123")


@pytest.fixture
def sim() -> Iterator[EvolinkSimulator]:
    with EvolinkSimulator(render_scale=0.34) as running:
        running.callback_retries = (0.05, 0.1, 0.2)  # the documented 1/2/4 s, shortened for tests
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: EvolinkSimulator) -> EvolinkProvider:
    return evolink.PROVIDER.build(sim.base_url, sim.api_key)


@pytest.fixture(scope="module")
def stalled() -> Iterator[tuple[EvolinkProvider, ProviderClient]]:
    """One simulator that never renders, shared by the many request-validation cases to keep them fast."""
    with EvolinkSimulator() as running:
        running.faults.stall = True
        client = ProviderClient(timeout=5, sleep=lambda s: None)
        yield evolink.PROVIDER.build(running.base_url, running.api_key), client
        client.close()


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def submit(
    adapter: EvolinkProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), callback), is_submit=True)
    )


# -- the adapter, sans I/O --------------------------------------------------------------------------


def test_capabilities_are_what_evolink_documents(offline: EvolinkProvider) -> None:
    caps = offline.capabilities
    assert offline.name == "evolink"
    assert DEFAULT_BASE_URL == "https://api.evolink.ai"
    assert caps.modes == frozenset(Mode)
    assert caps.durations == frozenset(range(2, 16))
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert caps.audio
    assert caps.callback
    assert not caps.cancel


def test_submit_sends_mode_quality_duration_and_prompt_extend_explicitly(offline: EvolinkProvider) -> None:
    req = VideoRequest(prompt="a cat plays piano", image_url=IMG)
    built = offline.submit(
        req, req.resolved_mode(), "https://gw.example.com/v1/callbacks/evolink/vid_1?token=t"
    )
    assert built.method == "POST"
    assert str(built.url) == "https://api.evolink.ai/v1/videos/generations"
    assert built.headers["Authorization"] == "Bearer k-123"
    assert built.headers["Content-Type"] == "application/json"
    assert json.loads(built.content) == {
        "model": "wan2.7-image-to-video",
        "generation_mode": "first_frame",
        "prompt": "a cat plays piano",
        "image_start": IMG,
        "quality": "1080p",  # our default; EvoLink's would be 720p
        "duration": 5,
        "prompt_extend": True,  # our default; EvoLink's would be false
        "callback_url": "https://gw.example.com/v1/callbacks/evolink/vid_1?token=t",
    }


def test_submit_sends_false_prompt_extend_720p_seed_and_negative_prompt(offline: EvolinkProvider) -> None:
    req = VideoRequest.model_validate(  # "720P" as a client may spell it
        {
            "image_url": IMG,
            "resolution": "720P",
            "duration": 12,
            "prompt_extend": False,
            "seed": 42,
            "negative_prompt": "blurry",
        }
    )
    body = json.loads(offline.submit(req, req.resolved_mode(), None).content)
    assert body["quality"] == "720p"
    assert body["duration"] == 12
    assert body["prompt_extend"] is False
    assert body["seed"] == 42
    assert body["negative_prompt"] == "blurry"
    assert "callback_url" not in body
    assert "watermark" not in body  # not an EvoLink field
    assert "prompt" not in body  # empty prompts are left out


@pytest.mark.parametrize(
    ("media", "mode", "fields"),
    [
        ({"image_url": IMG}, "first_frame", {"image_start": IMG}),
        ({"image_url": IMG, "audio_url": AUDIO}, "first_frame", {"image_start": IMG, "audio_urls": [AUDIO]}),
        (
            {"image_url": IMG, "last_frame_url": LAST},
            "first_last_frame",
            {"image_start": IMG, "image_end": LAST},
        ),
        (
            {"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO},
            "first_last_frame",
            {"image_start": IMG, "image_end": LAST, "audio_urls": [AUDIO]},
        ),
        ({"video_url": CLIP}, "video_continuation", {"video_urls": [CLIP]}),
        (
            {"video_url": CLIP, "last_frame_url": LAST},
            "video_continuation",
            {"video_urls": [CLIP], "image_end": LAST},
        ),
    ],
)
def test_each_media_combination_maps_to_evolinks_fields(
    offline: EvolinkProvider, media: dict[str, str], mode: str, fields: dict[str, Any]
) -> None:
    req = VideoRequest.model_validate(media)
    body = json.loads(offline.submit(req, Mode(mode), None).content)
    assert body["generation_mode"] == mode
    media_fields = {k: v for k, v in body.items() if k in MEDIA_FIELDS}
    assert media_fields == fields


@pytest.mark.parametrize("seed", [1, MAX_SEED])
def test_seeds_in_evolinks_range_are_sent(offline: EvolinkProvider, seed: int) -> None:
    assert (
        json.loads(offline.submit(VideoRequest(image_url=IMG, seed=seed), Mode.FIRST_FRAME, None).content)[
            "seed"
        ]
        == seed
    )


def test_routing_refuses_seed_zero_rather_than_the_adapter_rewriting_it(offline: EvolinkProvider) -> None:
    refusal = offline.capabilities.refusal(VideoRequest(image_url=IMG, seed=0), Mode.FIRST_FRAME)
    assert refusal == "accepts seeds from 1, not 0"


def test_routing_refuses_a_watermark_as_evolink_has_no_such_option(offline: EvolinkProvider) -> None:
    refusal = offline.capabilities.refusal(VideoRequest(image_url=IMG, watermark=True), Mode.FIRST_FRAME)
    assert refusal == "has no watermark option"


def test_status_and_cancel_requests(offline: EvolinkProvider) -> None:
    built = offline.status("task-unified-1757169743-7cvnl5zw")
    assert built.method == "GET"
    assert str(built.url) == "https://api.evolink.ai/v1/tasks/task-unified-1757169743-7cvnl5zw"
    assert built.headers["Authorization"] == "Bearer k-123"
    assert offline.cancel("task-unified-1757169743-7cvnl5zw") is None


def test_parses_the_documented_submit_answer(offline: EvolinkProvider) -> None:
    assert offline.parse_submit(response(SUBMIT_EXAMPLE)) == "task-unified-1757169743-7cvnl5zw"


def test_parses_the_documented_pending_answer_with_its_eta(offline: EvolinkProvider) -> None:
    status = offline.parse_status(response(SUBMIT_EXAMPLE))
    assert status.state is ProviderState.QUEUED
    assert status.raw_status == "pending"
    assert status.progress == 0
    assert status.eta_seconds == 120


def test_parses_the_documented_completed_answer(offline: EvolinkProvider) -> None:
    status = offline.parse_status(response(COMPLETED_EXAMPLE))
    assert status.state is ProviderState.SUCCEEDED
    assert status.progress == 100
    assert status.result_url == "http://example.com/video.mp4"
    assert status.eta_seconds is None
    assert status.error_code is None


def test_parses_a_failed_task_with_its_business_error(offline: EvolinkProvider) -> None:
    status = offline.parse_status(response(FAILED_EXAMPLE))
    assert status.state is ProviderState.FAILED
    assert status.error_code == "invalid_parameters"
    assert status.error_message == "image dimensions must be between 240 and 7680"
    assert status.result_url is None


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("pending", ProviderState.QUEUED),
        ("processing", ProviderState.PROCESSING),
        ("completed", ProviderState.SUCCEEDED),
        ("failed", ProviderState.FAILED),
        ("cancelled", ProviderState.CANCELLED),  # named by the callback docs, absent from the enum
    ],
)
def test_every_status_word_maps(offline: EvolinkProvider, word: str, state: ProviderState) -> None:
    body = {**COMPLETED_EXAMPLE, "status": word, "progress": 40}
    assert offline.parse_status(response(body)).state is state


def test_failed_with_request_cancelled_means_cancelled(offline: EvolinkProvider) -> None:
    error = {"code": "request_cancelled", "message": "cancelled", "type": "task_error"}
    body = {**FAILED_EXAMPLE, "error": error}
    status = offline.parse_status(response(body))
    assert status.state is ProviderState.CANCELLED
    assert status.raw_status == "failed"
    assert status.error_code == "request_cancelled"


def test_unknown_status_word_is_an_error_keeping_the_raw_body(offline: EvolinkProvider) -> None:
    with pytest.raises(UnknownProviderStatus) as caught:
        offline.parse_status(response({**COMPLETED_EXAMPLE, "status": "canceled"}))
    assert caught.value.code == "unknown_status"
    assert '"canceled"' in caught.value.raw


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_request"),
        (400, "invalid_task_id"),
        (401, "unauthorized"),
        (402, "insufficient_quota"),
        (403, "model_access_denied"),
        (404, "task_not_found"),
    ],
)
def test_http_errors_become_rejections_with_evolinks_code(
    offline: EvolinkProvider, status: int, code: str
) -> None:
    body = {"error": {"code": code, "message": f"{code} happened", "type": "some_error", "param": None}}
    with pytest.raises(ProviderRejected) as caught:
        offline.parse_status(response(body, status))
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert str(caught.value) == f"{code} happened"


def test_server_errors_and_rate_limits_are_not_rejections(offline: EvolinkProvider) -> None:
    body = {"error": {"code": "internal_error", "message": "x", "type": "api_error"}}
    with pytest.raises(ProviderUnavailable):
        offline.parse_submit(response(body, 500))
    with pytest.raises(ProviderRateLimited) as caught:
        offline.parse_submit(response({"error": {"code": "rate_limit_exceeded"}}, 429, {"Retry-After": "3"}))
    assert caught.value.retry_after == 3


# -- against the simulator --------------------------------------------------------------------------


def test_submit_answer_follows_the_documented_shape(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    answer = client.send(
        adapter.submit(VideoRequest(image_url=sample_url, duration=4), Mode.FIRST_FRAME, None), is_submit=True
    )
    body = answer.json()
    assert answer.status_code == 200
    assert re.fullmatch(r"task-unified-\d{10}-[a-z0-9]{8}", body["id"])
    assert body["object"] == "video.generation.task"
    assert body["model"] == "wan2.7-image-to-video"
    assert body["status"] == "pending"
    assert body["progress"] == 0
    assert body["type"] == "video"
    assert body["task_info"]["can_cancel"] is True
    assert body["task_info"]["estimated_time"] > 0
    assert set(body["usage"]) == {"billing_rule", "credits_reserved", "user_group"}
    assert adapter.parse_status(answer).eta_seconds == body["task_info"]["estimated_time"]
    stored = sim.tasks[body["id"]]
    assert (stored.short_side, stored.duration) == (1080, 4)
    assert stored.request["prompt_extend"] is True


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    adapter: EvolinkProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p", seed=7)
    task_id = submit(adapter, client, req)
    seen = poll(adapter, client, task_id)
    assert seen[0].state in (ProviderState.QUEUED, ProviderState.PROCESSING)
    assert seen[-1].state is ProviderState.SUCCEEDED
    assert seen[-1].raw_status == "completed"
    assert seen[-1].progress == 100
    assert [s.progress for s in seen] == sorted(s.progress or 0 for s in seen)
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"


def test_result_links_live_24_hours(sim: EvolinkSimulator) -> None:
    assert sim.result_ttl_seconds == 24 * 3600


def test_render_failure_is_reported_with_a_task_error(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image under the content policy"
    task_id = submit(adapter, client, VideoRequest(image_url=sample_url))
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.FAILED
    assert final.error_code == "content_policy_violation"
    assert final.error_message == "the model refused this image under the content policy"
    body = client.send(adapter.status(task_id)).json()
    assert body["error"]["type"] == "task_error"
    assert "results" not in body


def test_unreachable_input_fails_the_task_with_resource_not_found(
    adapter: EvolinkProvider, client: ProviderClient, media_server: tuple[Path, str]
) -> None:
    task_id = submit(adapter, client, VideoRequest(image_url=f"{media_server[1]}/missing.png"))
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.FAILED
    assert final.error_code == "resource_not_found"


@pytest.mark.parametrize(
    "media",
    [
        {"image_url": IMG},
        {"image_url": IMG, "audio_url": AUDIO},
        {"image_url": IMG, "last_frame_url": LAST},
        {"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO},
        {"video_url": CLIP},
        {"video_url": CLIP, "last_frame_url": LAST},
    ],
)
def test_the_simulator_accepts_each_valid_combination(
    stalled: tuple[EvolinkProvider, ProviderClient], media: dict[str, str]
) -> None:
    adapter, client = stalled
    assert submit(adapter, client, VideoRequest.model_validate(media)).startswith("task-unified-")


@pytest.mark.parametrize(
    "media",
    [
        {"image_start": IMG},
        {"image_start": IMG, "audio_urls": [AUDIO]},
        {"image_start": IMG, "image_end": LAST},
        {"image_start": IMG, "image_end": LAST, "audio_urls": [AUDIO]},
        {"video_urls": [CLIP]},
        {"video_urls": [CLIP], "image_end": LAST},
    ],
)
def test_generation_mode_may_be_omitted_for_the_six_combinations(
    stalled: tuple[EvolinkProvider, ProviderClient], media: dict[str, Any]
) -> None:
    adapter, client = stalled
    raw = adapter.request("POST", "/v1/videos/generations", {"model": "wan2.7-image-to-video", **media})
    assert adapter.parse_submit(client.send(raw)).startswith("task-unified-")


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"generation_mode": None, "image_start": None}, None),  # no material at all
        ({"generation_mode": None, "video_urls": [CLIP]}, None),  # first frame + clip is no combination
        ({"generation_mode": None, "image_start": None, "image_end": LAST}, None),  # last frame alone
        ({"generation_mode": None, "image_start": None, "video_urls": [CLIP], "audio_urls": [AUDIO]}, None),
        ({"generation_mode": "first_frame", "image_end": LAST}, "image_end"),
        ({"generation_mode": "first_frame", "image_start": None}, "image_start"),
        ({"generation_mode": "first_last_frame"}, "image_end"),
        ({"generation_mode": "first_last_frame", "image_end": LAST, "video_urls": [CLIP]}, "video_urls"),
        ({"generation_mode": "video_continuation"}, "video_urls"),
        (
            {
                "generation_mode": "video_continuation",
                "image_start": None,
                "video_urls": [CLIP],
                "audio_urls": [AUDIO],
            },
            "audio_urls",
        ),
        ({"generation_mode": "video_continuation", "video_urls": [CLIP]}, "image_start"),
        ({"generation_mode": "sideways"}, "generation_mode"),
        ({"model": "wan2.6-image-to-video"}, "model"),
        ({"video_urls": [CLIP, CLIP]}, "video_urls"),
        ({"audio_urls": [AUDIO, AUDIO]}, "audio_urls"),
        ({"quality": "720P"}, "quality"),
        ({"quality": "4k"}, "quality"),
        ({"duration": 1}, "duration"),
        ({"duration": 16}, "duration"),
        ({"duration": "5"}, "duration"),
        ({"seed": 0}, "seed"),
        ({"seed": MAX_SEED + 1}, "seed"),
        ({"prompt_extend": "yes"}, "prompt_extend"),
        ({"image_start": "ftp://example.com/a.png"}, "image_start"),
        ({"callback_url": "http://gw.example.com/cb"}, "callback_url"),  # HTTPS only
        ({"callback_url": "https://10.0.0.5/cb"}, "callback_url"),  # internal IPs refused
        ({"callback_url": "https://192.168.1.20/cb"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2048}, "callback_url"),
    ],
)
def test_invalid_submits_are_400_invalid_request(
    stalled: tuple[EvolinkProvider, ProviderClient], changes: dict[str, Any], param: str | None
) -> None:
    adapter, client = stalled
    body = {"model": "wan2.7-image-to-video", "generation_mode": "first_frame", "image_start": IMG, **changes}
    sent = {k: v for k, v in body.items() if v is not None}
    raw = client.send(adapter.request("POST", "/v1/videos/generations", sent))
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert (error["code"], error["type"]) == ("invalid_request", "invalid_request_error")
    assert error["param"] == param
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(raw)
    assert caught.value.code == "invalid_request"
    assert str(caught.value) == error["message"]


def test_long_prompts_are_truncated_not_refused(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    body = {
        "model": "wan2.7-image-to-video",
        "image_start": IMG,
        "prompt": "p" * 6000,
        "negative_prompt": "n" * 600,
    }
    task_id = adapter.parse_submit(client.send(adapter.request("POST", "/v1/videos/generations", body)))
    assert len(sim.tasks[task_id].request["prompt"]) == 5000
    assert len(sim.tasks[task_id].request["negative_prompt"]) == 500


def test_wrong_key_is_a_401_unauthorized(
    sim: EvolinkSimulator, client: ProviderClient, sample_url: str
) -> None:
    wrong = evolink.PROVIDER.build(sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(
            client.send(wrong.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
        )
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")
    assert json.loads(caught.value.raw)["error"]["type"] == "authentication_error"


def test_exhausted_quota_and_denied_model_are_402_and_403(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient
) -> None:
    sim.quota_exhausted = True
    with pytest.raises(ProviderRejected) as caught:
        submit(adapter, client, VideoRequest(image_url=IMG))
    assert (caught.value.status_code, caught.value.code) == (402, "insufficient_quota")
    sim.quota_exhausted, sim.model_access_denied = False, True
    with pytest.raises(ProviderRejected) as caught:
        submit(adapter, client, VideoRequest(image_url=IMG))
    assert (caught.value.status_code, caught.value.code) == (403, "model_access_denied")


def test_task_ids_without_the_prefix_are_invalid_and_unknown_ones_not_found(
    adapter: EvolinkProvider, client: ProviderClient
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_status(client.send(adapter.status("0385dc79-5ff8")))
    assert (caught.value.status_code, caught.value.code) == (400, "invalid_task_id")
    assert "task-unified-" in str(caught.value)
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_status(client.send(adapter.status("task-unified-1757169743-zzzzzzzz")))
    assert (caught.value.status_code, caught.value.code) == (404, "task_not_found")


def test_rate_limits_and_server_errors_come_in_evolinks_error_body(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient
) -> None:
    sim.faults.rate_limit_polls, sim.faults.retry_after, sim.faults.fail_submits = 1, 30, 1
    limited = client.http.send(adapter.status("task-unified-1757169743-zzzzzzzz"))  # before any retry
    outage = client.http.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    assert (limited.status_code, limited.headers["Retry-After"], outage.status_code) == (429, "30", 500)
    assert limited.json()["error"] == {
        "code": "rate_limit_exceeded",
        "message": "Rate limit exceeded, please slow down",
        "type": "rate_limit_error",
        "param": None,
    }
    assert (outage.json()["error"]["code"], outage.json()["error"]["type"]) == ("internal_error", "api_error")


def test_there_is_no_cancel_endpoint_but_a_cancelled_task_reads_as_cancelled(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    task_id = submit(adapter, client, VideoRequest(image_url=IMG))
    assert adapter.cancel(task_id) is None
    assert client.send(adapter.request("POST", f"/v1/tasks/{task_id}/cancel")).status_code in (404, 405)
    assert sim.cancel_task(sim.tasks[task_id])  # cancelled on EvoLink's side (console, support)
    status = adapter.parse_status(client.send(adapter.status(task_id)))
    assert status.state is ProviderState.CANCELLED
    assert (status.raw_status, status.error_code) == ("failed", "request_cancelled")


# -- callbacks ------------------------------------------------------------------------------------


def test_callback_defaults_are_the_documented_ones() -> None:
    assert EvolinkSimulator.callback_retries == (1, 2, 4)
    assert EvolinkSimulator.callback_timeout == 10.0


def test_completed_callback_posts_the_task_object(
    adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    task_id = submit(adapter, client, req, receiver.url)
    body = receiver.wait_for(1)[0]
    # "Callback response format is consistent with the task query API response"
    assert body == client.send(adapter.status(task_id)).json()
    task_fields = {"id", "object", "created", "model", "status", "progress", "results", "type", "task_info"}
    assert set(body) >= task_fields
    status = adapter.parse_status(response(body))
    assert status.state is ProviderState.SUCCEEDED
    assert httpx.get(status.result_url or "").content[4:8] == b"ftyp"


def test_failed_callback_carries_the_error_and_no_results(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.fail_render = "first_frame is not a readable image"
    submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    body = receiver.wait_for(1)[0]
    assert body["status"] == "failed"
    assert "results" not in body
    assert body["error"] == {
        "code": "image_processing_error",
        "message": "first_frame is not a readable image",
        "type": "task_error",
    }


def test_cancelled_tasks_get_a_callback_too(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    task_id = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[task_id])
    body = receiver.wait_for(1)[0]
    assert adapter.parse_status(response(body)).state is ProviderState.CANCELLED


def test_non_2xx_callbacks_are_retried_three_times_then_given_up(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    receiver.answers = [500, 502, 404, 500, 500]
    task_id = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[task_id])
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(task_id, "gave up")]
    assert len(receiver.bodies) == 4  # the first try and 3 retries
    assert [code for _, code in sim.callbacks_sent] == [500, 502, 404, 500]


def test_a_2xx_ends_the_retries(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    receiver.answers = [503, 204]
    task_id = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[task_id])
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(task_id, "delivered")]
    assert [code for _, code in sim.callbacks_sent] == [503, 204]


def test_duplicate_callbacks_carry_the_same_body(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    sim.faults.duplicate_callbacks = 2
    task_id = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[task_id])
    first, second = receiver.wait_for(2)[:2]
    assert first == second
    assert first["id"] == task_id


def test_dropped_callbacks_leave_polling_to_find_the_outcome(
    sim: EvolinkSimulator, adapter: EvolinkProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.drop_callbacks = True
    sim.faults.fail_render = "generation failed"
    task_id = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    assert poll(adapter, client, task_id)[-1].state is ProviderState.FAILED
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(task_id, "dropped")]
    assert receiver.bodies == []
