"""The `oxen` adapter: its requests and parsing of Oxen's documented bodies, then against OxenSimulator.
What every host shares (rate limits, retries, unknown words, expired links, lost answers, cancel) is in
test_engine.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import oxen
from i2v.providers.base import (
    ALL_DURATIONS,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    SubmitOutcomeUnknown,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.oxen import DEFAULT_BASE_URL, OxenProvider
from i2v_local.sim_oxen import OxenSimulator
from tests.contract.drive import poll

IMAGE = "https://example.com/first.png"
LAST = "https://example.com/last.png"
CLIP = "https://example.com/clip.mp4"
AUDIO = "https://example.com/voice.mp3"

# Pasted from Oxen's docs: https://docs.oxen.ai/inference-api/reference/async_queue and
# inference-api/overview.mdx (Oxen-AI/docs@edc2a51, the source of docs.oxen.ai).
ENQUEUED = {"generations": [{"generation_id": "bb8f5eb7-361e-4e13-ab73-67457bc8057e", "status": "queued"}]}
SUCCEEDED = {
    "generation_id": "7cf9b23a-1234-5678-9abc-def012345678",
    "model_name": "kling-video-o3-pro-reference-to-video",
    "prompt": "An astronaut walking on Mars",
    "media_type": "video",
    "status": "succeeded",
    "result_url": "https://hub.oxen.ai/api/repos/...",
    "error_message": None,
    "enqueued_at": 1775091431,
    "started_at": 1775091432,
    "completed_at": 1775091590,
    "aspect_ratio": "16:9",
    "duration": 10,
}
FAILED = {**SUCCEEDED, "status": "failed", "result_url": None, "error_message": "Insufficient credits"}
PROCESSING = {**SUCCEEDED, "status": "processing", "result_url": None, "completed_at": None}
NOT_FOUND = {
    "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
    "status": "error",
    "status_message": "resource_not_found",
}
INVALID_PARAMS = {
    "error": {
        "type": "invalid_params",
        "title": "Invalid parameters supplied, please check your request and try again.",
        "detail": "Specific error details",
    },
    "status": "error",
    "status_message": "invalid_params",
}
MODEL_NOT_FOUND = {"error": {"message": "Model not found: bad-model-name"}}


def response(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", DEFAULT_BASE_URL))


@pytest.fixture
def offline() -> OxenProvider:
    return oxen.PROVIDER.build(DEFAULT_BASE_URL, "ox-key")


# -- sans-I/O: what the adapter builds --------------------------------------------------------------


def test_submit_enqueues_the_model_with_every_value_explicit(offline: OxenProvider) -> None:
    req = VideoRequest(
        prompt="a cat turns its head",
        negative_prompt="blur",
        image_url=IMAGE,
        resolution="720p",
        duration=7,
        prompt_extend=False,
        watermark=True,
        seed=42,
    )
    built = offline.submit(
        req, req.resolved_mode(), "https://gateway.example/v1/callbacks/oxen/vid_1?token=t"
    )
    assert built.method == "POST"
    assert str(built.url) == "https://hub.oxen.ai/api/ai/queue"
    assert built.headers["Authorization"] == "Bearer ox-key"
    assert built.headers["Content-Type"] == "application/json"
    assert json.loads(built.content) == {
        "model": "wan-v2-7-image-to-video",
        "num_generations": 1,
        "prompt": "a cat turns its head",
        "negative_prompt": "blur",
        "input_image": IMAGE,
        "resolution": "720P",
        "duration": 7,
        "prompt_extend": False,
        "watermark": True,
        "seed": 42,
    }


def test_submit_sends_our_defaults_rather_than_oxens_and_no_callback(offline: OxenProvider) -> None:
    body = json.loads(
        offline.submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, "https://gateway.example/cb").content
    )
    assert body["resolution"] == "1080P"
    assert body["duration"] == 5
    assert body["prompt_extend"] is True
    assert body["watermark"] is False
    assert body["prompt"] == ""
    assert not {"seed", "negative_prompt", "callback_url", "webhook_url"} & body.keys()


@pytest.mark.parametrize(
    ("media", "fields"),
    [
        ({"image_url": IMAGE}, {"input_image": IMAGE}),
        ({"image_url": IMAGE, "audio_url": AUDIO}, {"input_image": IMAGE, "audio_url": AUDIO}),
        ({"image_url": IMAGE, "last_frame_url": LAST}, {"input_image": IMAGE, "end_image_url": LAST}),
        (
            {"image_url": IMAGE, "last_frame_url": LAST, "audio_url": AUDIO},
            {"input_image": IMAGE, "end_image_url": LAST, "audio_url": AUDIO},
        ),
        ({"video_url": CLIP}, {"input_video": CLIP}),
        ({"video_url": CLIP, "last_frame_url": LAST}, {"input_video": CLIP, "end_image_url": LAST}),
    ],
)
def test_each_media_combination_maps_to_oxens_fields(
    offline: OxenProvider, media: dict[str, str], fields: dict[str, str]
) -> None:
    req = VideoRequest.model_validate(media)
    body = json.loads(offline.submit(req, req.resolved_mode(), None).content)
    media_fields = ("input_image", "end_image_url", "input_video", "audio_url")
    assert {k: body[k] for k in media_fields if k in body} == fields


def test_status_and_cancel_address_the_generation(offline: OxenProvider) -> None:
    status = offline.status("bb8f5eb7-361e-4e13-ab73-67457bc8057e")
    assert (status.method, str(status.url)) == (
        "GET",
        "https://hub.oxen.ai/api/ai/queue/bb8f5eb7-361e-4e13-ab73-67457bc8057e",
    )
    cancel = offline.cancel("bb8f5eb7-361e-4e13-ab73-67457bc8057e")
    assert cancel is not None
    assert (cancel.method, str(cancel.url)) == (
        "DELETE",
        "https://hub.oxen.ai/api/ai/queue/bb8f5eb7-361e-4e13-ab73-67457bc8057e",
    )


def test_capabilities_are_what_oxen_documents(offline: OxenProvider) -> None:
    caps = offline.capabilities
    assert caps.modes == frozenset(Mode)
    assert caps.durations == ALL_DURATIONS
    assert caps.resolutions == {"720p", "1080p"}
    assert (caps.audio, caps.callback, caps.cancel) == (True, False, True)


# -- sans-I/O: parsing Oxen's documented answers ----------------------------------------------------


def test_parse_submit_reads_the_first_generation_id(offline: OxenProvider) -> None:
    assert offline.parse_submit(response(ENQUEUED)) == "bb8f5eb7-361e-4e13-ab73-67457bc8057e"


def test_parse_status_of_the_documented_success(offline: OxenProvider) -> None:
    assert offline.parse_status(response(SUCCEEDED)) == ProviderStatus(
        state=ProviderState.SUCCEEDED, raw_status="succeeded", result_url="https://hub.oxen.ai/api/repos/..."
    )


def test_parse_status_of_the_documented_failure(offline: OxenProvider) -> None:
    parsed = offline.parse_status(response(FAILED))
    assert parsed.state is ProviderState.FAILED
    assert parsed.error_message == "Insufficient credits"
    assert parsed.error_code is None  # Oxen gives no code; the service supplies its own
    assert parsed.result_url is None


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("queued", ProviderState.QUEUED),
        ("processing", ProviderState.PROCESSING),
        ("succeeded", ProviderState.SUCCEEDED),
        ("failed", ProviderState.FAILED),
        ("cancelled", ProviderState.CANCELLED),
    ],
)
def test_every_documented_status_word_maps(offline: OxenProvider, word: str, state: ProviderState) -> None:
    parsed = offline.parse_status(response({**PROCESSING, "status": word}))
    assert (parsed.state, parsed.raw_status, parsed.progress) == (state, word, None)


def test_unknown_status_word_is_an_error(offline: OxenProvider) -> None:
    with pytest.raises(UnknownProviderStatus) as caught:
        offline.parse_status(response({**PROCESSING, "status": "canceled"}))
    assert caught.value.code == "unknown_status"
    assert '"canceled"' in caught.value.raw


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (404, NOT_FOUND, "resource_not_found", "The requested resource could not be found"),
        (400, INVALID_PARAMS, "invalid_params", "Specific error details"),
        (404, MODEL_NOT_FOUND, None, "Model not found: bad-model-name"),
    ],
)
def test_both_documented_error_formats_become_rejections(
    offline: OxenProvider, status: int, body: dict[str, Any], code: str | None, message: str
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        offline.parse_status(response(body, status))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (status, code, message)


# -- against the simulator over loopback ------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[OxenSimulator]:
    with OxenSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: OxenSimulator) -> OxenProvider:
    return oxen.PROVIDER.build(sim.base_url, sim.api_key)


def enqueue(adapter: OxenProvider, client: ProviderClient, body: dict[str, Any]) -> str:
    """Send a raw enqueue body, as Oxen would receive it from any client."""
    return adapter.parse_submit(client.send(adapter.request("POST", "/api/ai/queue", body)))


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(prompt="a slow zoom", image_url=sample_url, duration=2, resolution="720p", seed=7)
    task_id = adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), None), is_submit=True)
    )
    assert uuid.UUID(task_id).version == 4
    seen = poll(adapter, client, task_id)
    assert seen[0].state in (ProviderState.QUEUED, ProviderState.PROCESSING)
    assert seen[-1].state is ProviderState.SUCCEEDED
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    assert sim.callbacks_sent == []  # no webhooks at Oxen


def test_generation_body_has_the_documented_fields_and_echoes_parameters(
    adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(prompt="a slow zoom", image_url=sample_url, duration=2, resolution="720p")
    task_id = adapter.parse_submit(client.send(adapter.submit(req, req.resolved_mode(), None)))
    poll(adapter, client, task_id)
    body = client.send(adapter.status(task_id)).json()
    assert body["generation_id"] == task_id
    assert (body["model_name"], body["prompt"], body["media_type"]) == (
        "wan-v2-7-image-to-video",
        "a slow zoom",
        "video",
    )
    assert body["error_message"] is None
    assert body["enqueued_at"] <= body["started_at"] <= body["completed_at"]
    assert (body["input_image"], body["resolution"], body["duration"]) == (sample_url, "720P", 2)
    assert "num_generations" not in body


def test_queued_generation_reports_nulls_until_it_runs(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    body = client.send(adapter.status(task_id)).json()
    assert body["status"] == "queued"
    assert body["result_url"] is None
    assert body["error_message"] is None
    assert body["started_at"] is None
    assert body["completed_at"] is None


def test_render_failure_is_reported_as_failed_with_the_error_message(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image"
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.FAILED
    assert final.error_message == "the model refused this image"
    assert final.result_url is None


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ({"duration": 20}, "duration"),
        ({"resolution": "4K"}, "resolution"),
        ({"input_video": "https://example.com/clip.mp4"}, "mutually exclusive"),
        ({"input_image": None}, "one of input_image or input_video"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_bad_parameters_are_accepted_then_fail_when_the_generation_runs(
    adapter: OxenProvider, client: ProviderClient, sample_url: str, bad: dict[str, Any], complaint: str
) -> None:
    body = {"model": "wan-v2-7-image-to-video", "prompt": "p", "input_image": sample_url, **bad}
    task_id = enqueue(adapter, client, {k: v for k, v in body.items() if v is not None})
    final = poll(adapter, client, task_id)[-1]
    assert final.state is ProviderState.FAILED
    assert complaint in (final.error_message or "")


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"model": "bad-model-name"}, 404, None, "Model not found: bad-model-name"),
        ({"model": "claude-sonnet-4-6"}, 400, None, ":unsupported_media_type"),
        (
            {"model": "wan-v2-7-image-to-video", "num_generations": 5},
            400,
            "invalid_params",
            "num_generations must be an integer between 1 and 4",
        ),
        ({"model": "wan-v2-7-image-to-video", "target_namespace": "someone-else"}, 403, "forbidden", None),
    ],
)
def test_enqueue_checks_only_model_count_and_account(
    adapter: OxenProvider,
    client: ProviderClient,
    body: dict[str, Any],
    status: int,
    code: str | None,
    message: str | None,
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        enqueue(adapter, client, {"prompt": "p", **body})
    assert (caught.value.status_code, caught.value.code) == (status, code)
    if message:
        assert str(caught.value) == message


def test_enqueue_without_credits_is_a_402(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient
) -> None:
    sim.out_of_credits = True
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(
            client.send(adapter.submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, None))
        )
    assert (caught.value.status_code, caught.value.code) == (402, "insufficient_credits")


def test_num_generations_enqueues_that_many_generations(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    resp = client.send(
        adapter.request(
            "POST", "/api/ai/queue", {"model": "wan-v2-7-image-to-video", "prompt": "p", "num_generations": 3}
        )
    )
    generations = resp.json()["generations"]
    assert [g["status"] for g in generations] == ["queued"] * 3
    assert len({g["generation_id"] for g in generations}) == 3


def test_wrong_key_is_rejected_as_unauthenticated(sim: OxenSimulator, client: ProviderClient) -> None:
    wrong = oxen.PROVIDER.build(sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(client.send(wrong.submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, None)))
    assert (caught.value.status_code, caught.value.code) == (401, "unauthenticated")


def test_cancel_answers_with_oxens_documented_body(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    cancel = adapter.cancel(task_id)
    assert cancel is not None
    answer = client.send(cancel)
    assert (answer.status_code, answer.json()) == (200, {"status": "success", "generation_id": task_id})
    assert adapter.parse_status(client.send(adapter.status(task_id))).error_message is None


def test_cancel_of_a_finished_generation_has_no_effect(
    sim: OxenSimulator, adapter: OxenProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "boom"
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    poll(adapter, client, task_id)
    cancel = adapter.cancel(task_id)
    assert cancel is not None
    assert client.send(cancel).status_code == 200
    assert sim.cancels == [task_id]  # received, and documented to have no effect
    assert adapter.parse_status(client.send(adapter.status(task_id))).state is ProviderState.FAILED


def test_cancel_of_an_unknown_generation_is_the_documented_404(
    adapter: OxenProvider, client: ProviderClient
) -> None:
    cancel = adapter.cancel(str(uuid.uuid4()))
    assert cancel is not None
    answer = client.send(cancel)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


def test_a_generation_whose_enqueue_answer_was_lost_is_in_the_listing(
    sim: OxenSimulator, adapter: OxenProvider
) -> None:
    sim.faults.stall = True
    sim.faults.hang_submit_after_accept = True
    with pytest.raises(SubmitOutcomeUnknown):
        ProviderClient(timeout=0.3).send(
            adapter.submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, None), is_submit=True
        )
    listing = ProviderClient(timeout=5).send(adapter.request("GET", "/api/ai/queue")).json()
    assert listing["count"] == 1
    assert listing["generations"][0]["status"] == "queued"
