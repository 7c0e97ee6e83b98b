"""The `aimlapi` adapter (AI/ML API, alibaba/wan-2-7-i2v): sans-I/O mappings, then against its simulator.
What every host shares (rate limits, retries, unknown words, expired links, lost answers) is in
test_engine.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import aimlapi
from i2v.providers.aimlapi import DEFAULT_BASE_URL, AimlapiProvider
from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v_local.sim_aimlapi import AimlapiSimulator
from tests.contract.drive import poll, wait_until

IMAGE = "https://example.com/cat.png"
AUDIO = "https://example.com/purr.mp3"
NANOID = re.compile(r"^[A-Za-z0-9_-]{21}$")

# Pasted from AI/ML API's docs:
# https://docs.aimlapi.com/api-references/video-models/alibaba-cloud/wan-2.7-image-to-video and the 4xx
# page (docs/errors-and-messages/errors-with-status-code-4xx.md in the aimlapi/api-docs repository).
COMPLETED = (
    '{"id": "6_slPtsld56BC5D7MSfaH", "status": "completed",'
    ' "video": {"url": "https://cdn.aimlapi.com/generations/alligator/1778022592892-....mp4"},'
    ' "error": null, "meta": {"usage": {"credits_used": 120000, "usd_spent": 0.06}}}'
)
BAD_KEY = (
    '{"message": "This request requires a valid API key. You can create a new API key on the Billing page:'
    ' https://aimlapi.com/app/keys", "path": "/v2/video/generations",'
    ' "requestId": "798b860e-98c2-4e8e-8c50-550bcfc2eccc", "statusCode": "401",'
    ' "timestamp": "2025-03-11T07:13:27.813Z"}'
)
TOO_MANY = (
    '{"message": "Too Many Requests", "path": "/v2/video/generations",'
    ' "requestId": "798b860e-98c2-4e8e-8c50-550bcfc2eccc", "statusCode": "429",'
    ' "timestamp": "2025-03-11T07:13:27.813Z"}'
)


def offline() -> AimlapiProvider:
    return aimlapi.PROVIDER.build(DEFAULT_BASE_URL, "k-123")


def answer(status: int, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, text=text, headers={"Content-Type": "application/json", **(headers or {})})


# -- sans-I/O: what the adapter builds -------------------------------------------------------------


def test_capabilities_are_first_frame_with_optional_audio_and_durations_5_10_15() -> None:
    caps = offline().capabilities
    assert caps.modes == frozenset({Mode.FIRST_FRAME})
    assert caps.durations == frozenset({5, 10, 15})
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert (caps.audio, caps.callback, caps.cancel) == (True, False, False)
    assert DEFAULT_BASE_URL == "https://api.aimlapi.com"
    assert (
        caps.refusal(VideoRequest(image_url=IMAGE, duration=7), Mode.FIRST_FRAME)
        == "supports durations 5, 10, 15, not 7"
    )
    assert caps.refusal(VideoRequest(image_url=IMAGE, audio_url=AUDIO), Mode.FIRST_FRAME) is None
    assert caps.refusal(VideoRequest(image_url=IMAGE), Mode.FIRST_LAST_FRAME) is not None


def test_submit_posts_the_documented_body_with_our_defaults_explicit() -> None:
    req = offline().submit(
        VideoRequest(prompt="a cat yawns", image_url=IMAGE, resolution="720p", prompt_extend=False),
        Mode.FIRST_FRAME,
        None,
    )
    assert req.method == "POST"
    assert str(req.url) == "https://api.aimlapi.com/v2/video/generations"
    assert req.headers["Authorization"] == "Bearer k-123"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {
        "model": "alibaba/wan-2-7-i2v",
        "prompt": "a cat yawns",
        "image_url": IMAGE,
        "resolution": "720p",  # their default is 1080p
        "duration": 5,  # their default is 10
        "enable_prompt_expansion": False,  # their default is true; the alias carries the same value
        "enhance_prompt": False,
        "watermark": False,
    }


def test_submit_maps_audio_negative_prompt_and_seed_and_ignores_the_callback_url() -> None:
    fields = {"prompt": "p", "image_url": IMAGE, "audio_url": AUDIO, "negative_prompt": "blur", "seed": 42}
    req = VideoRequest.model_validate(fields | {"duration": 15, "watermark": True, "resolution": "1080P"})
    body = json.loads(
        offline()
        .submit(req, req.resolved_mode(), "https://gw.example/v1/callbacks/aimlapi/t1?token=x")
        .content
    )
    assert body["audio_url"] == AUDIO
    assert (body["negative_prompt"], body["seed"], body["duration"], body["watermark"]) == (
        "blur",
        42,
        15,
        True,
    )
    assert body["resolution"] == "1080p"
    assert (body["enable_prompt_expansion"], body["enhance_prompt"]) == (True, True)
    assert not any("callback" in key or "webhook" in key for key in body)


def test_an_empty_prompt_is_still_sent_because_the_field_is_required() -> None:
    body = json.loads(offline().submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, None).content)
    assert body["prompt"] == ""


@pytest.mark.parametrize(
    "media",
    [
        {"last_frame_url": "https://example.com/end.png"},
        {"video_url": "https://example.com/clip.mp4", "image_url": None},
    ],
)
def test_routing_refuses_last_frame_and_clip_requests_which_the_body_validator_would_drop(
    media: dict[str, str | None],
) -> None:
    req = VideoRequest.model_validate({"image_url": IMAGE, **media})
    mode = req.resolved_mode()
    assert offline().capabilities.refusal(req, mode) == f"does not support mode {mode.value}"


def test_status_queries_by_generation_id_and_there_is_no_cancel() -> None:
    req = offline().status("6_slPtsld56BC5D7MSfaH")
    assert req.method == "GET"
    assert str(req.url) == "https://api.aimlapi.com/v2/video/generations?generation_id=6_slPtsld56BC5D7MSfaH"
    assert req.headers["Authorization"] == "Bearer k-123"
    assert offline().cancel("6_slPtsld56BC5D7MSfaH") is None


# -- sans-I/O: parsing the documented answers ------------------------------------------------------


def test_the_documented_completed_example_parses_to_success_with_the_video_url_and_its_spend() -> None:
    status = offline().parse_status(answer(200, COMPLETED))
    assert status == ProviderStatus(
        state=ProviderState.SUCCEEDED,
        raw_status="completed",
        result_url="https://cdn.aimlapi.com/generations/alligator/1778022592892-....mp4",
        cost_usd=0.06,  # meta.usage.usd_spent
    )


@pytest.mark.parametrize("usage", [None, {}, {"usd_spent": "0.06"}, {"usd_spent": -1}, {"usd_spent": True}])
def test_a_missing_or_malformed_spend_is_no_reported_cost(usage: object) -> None:
    body = {"id": "x", "status": "completed", "video": {"url": "https://c.example/v.mp4"}, "error": None}
    status = offline().parse_status(answer(200, json.dumps({**body, "meta": {"usage": usage}})))
    assert status.cost_usd is None


def test_the_submit_answer_shares_the_schema_and_yields_the_id() -> None:
    body = '{"id": "6_slPtsld56BC5D7MSfaH", "status": "queued", "video": null, "error": null, "meta": null}'
    assert offline().parse_submit(answer(200, body)) == "6_slPtsld56BC5D7MSfaH"


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("queued", ProviderState.QUEUED),
        ("generating", ProviderState.PROCESSING),
        ("completed", ProviderState.SUCCEEDED),
        ("error", ProviderState.FAILED),
    ],
)
def test_every_documented_status_word_is_mapped(word: str, state: ProviderState) -> None:
    body = {
        "id": "x",
        "status": word,
        "video": {"url": "https://cdn.example/v.mp4"} if word == "completed" else None,
    }
    parsed = offline().parse_status(answer(200, json.dumps(body)))
    assert (parsed.state, parsed.raw_status, parsed.progress, parsed.eta_seconds) == (state, word, None, None)


def test_an_error_status_carries_the_error_name_and_message() -> None:
    error = {"name": "GenerationError", "message": "NSFW input"}
    body = json.dumps({"id": "x", "status": "error", "video": None, "error": error})
    parsed = offline().parse_status(answer(200, body))
    assert (parsed.state, parsed.error_code, parsed.error_message) == (
        ProviderState.FAILED,
        "GenerationError",
        "NSFW input",
    )
    assert parsed.result_url is None


@pytest.mark.parametrize("word", ["failed", "cancelled", "COMPLETED", "None"])
def test_an_undocumented_status_is_an_error_keeping_the_raw_body(word: str) -> None:
    text = json.dumps({"id": "x", "status": word} if word != "None" else {"id": "x"})
    with pytest.raises(UnknownProviderStatus) as caught:
        offline().parse_status(answer(200, text))
    assert caught.value.code == "unknown_status"
    assert caught.value.raw == text


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Body validation error!\nduration: Invalid enum value. Expected 5 | 10 | 15, received 7"),
        (
            401,
            "This request requires a valid API key. You can create a new API key on the Billing page: https://aimlapi.com/app/keys",
        ),
        (
            403,
            "You've run out of credits. Please top up your balance or update your payment method to continue: https://aimlapi.com/app/billing/",
        ),
        (404, "Generation x not found"),
    ],
)
def test_documented_4xx_bodies_become_rejections_with_the_status_code_and_message(
    status: int, message: str
) -> None:
    text = json.loads(BAD_KEY) | {"message": message, "statusCode": str(status)}
    with pytest.raises(ProviderRejected) as caught:
        offline().parse_submit(answer(status, json.dumps(text)))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (status, str(status), message)


def test_the_documented_401_example_parses_as_a_rejection() -> None:
    with pytest.raises(ProviderRejected) as caught:
        offline().parse_status(answer(401, BAD_KEY))
    assert caught.value.code == "401"
    assert str(caught.value).startswith("This request requires a valid API key")


def test_the_documented_429_is_rate_limited() -> None:
    with pytest.raises(ProviderRateLimited) as caught:
        offline().parse_submit(answer(429, TOO_MANY, {"Retry-After": "3"}))
    assert caught.value.retry_after == 3


# -- against the simulator over loopback -----------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[AimlapiSimulator]:
    with AimlapiSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: AimlapiSimulator) -> AimlapiProvider:
    return aimlapi.PROVIDER.build(sim.base_url, sim.api_key)


def submit(adapter: AimlapiProvider, client: ProviderClient, req: VideoRequest) -> str:
    return adapter.parse_submit(client.send(adapter.submit(req, req.resolved_mode(), None), is_submit=True))


def test_submit_goes_queued_generating_completed_with_a_downloadable_mp4(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    raw = client.send(
        adapter.submit(
            VideoRequest(prompt="zoom", image_url=sample_url, resolution="720p"), Mode.FIRST_FRAME, None
        )
    )
    assert raw.status_code == 200
    assert set(raw.json()) == {"id", "status", "video", "error", "meta"}
    assert raw.json()["status"] == "queued"
    task_id = adapter.parse_submit(raw)
    assert NANOID.match(task_id)
    seen = poll(adapter, client, task_id)
    words = [s.raw_status for s in seen]
    assert "generating" in words
    assert words == sorted(words, key=["queued", "generating", "completed"].index)
    assert seen[-1].state is ProviderState.SUCCEEDED
    task = sim.tasks[task_id]
    assert (task.duration, task.short_side) == (5, 720)
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    usage = client.send(adapter.status(task_id)).json()["meta"]["usage"]
    assert set(usage) == {"credits_used", "usd_spent"}


def test_render_failure_is_an_error_status_with_name_and_message(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image"
    final = poll(adapter, client, submit(adapter, client, VideoRequest(image_url=sample_url)))[-1]
    assert final.state is ProviderState.FAILED
    assert final.raw_status == "error"
    assert (final.error_code, final.error_message) == ("GenerationError", "the model refused this image")
    assert final.result_url is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "model": "alibaba/wan-2-7-i2v",
                "prompt": "p",
                "image_url": "https://example.com/a.png",
                "duration": 7,
            },
            "duration",
        ),
        ({"model": "alibaba/wan-2-7-i2v", "image_url": "https://example.com/a.png"}, "prompt"),
        ({"model": "alibaba/wan-2-7-i2v", "prompt": "p"}, "image_url"),
        (
            {"model": "alibaba/wan-2-7-i2v", "prompt": "p", "image_url": "ftp://example.com/a.png"},
            "image_url",
        ),
        ({"model": "alibaba/wan-2-7-i2v", "prompt": 3, "image_url": "https://example.com/a.png"}, "prompt"),
        (
            {
                "model": "alibaba/wan-2-7-i2v",
                "prompt": "p",
                "image_url": "https://x.example/a.png",
                "resolution": "720P",
            },
            "resolution",
        ),
        (
            {
                "model": "alibaba/wan-2-7-i2v",
                "prompt": "p",
                "image_url": "https://x.example/a.png",
                "negative_prompt": "n" * 501,
            },
            "negative_prompt",
        ),
        ({"model": "alibaba/wan-2-6-i2v", "prompt": "p", "image_url": "https://example.com/a.png"}, "model"),
    ],
)
def test_invalid_body_is_a_400_body_validation_error(
    sim: AimlapiSimulator,
    adapter: AimlapiProvider,
    client: ProviderClient,
    body: dict[str, object],
    field: str,
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(client.send(adapter.request("POST", "/v2/video/generations", body)))
    assert (caught.value.status_code, caught.value.code) == (400, "400")
    first, *details = str(caught.value).split("\n")
    assert first == "Body validation error!"
    assert [line.split(":")[0] for line in details] == [field]
    error = json.loads(caught.value.raw)
    assert set(error) == {"message", "path", "requestId", "statusCode", "timestamp"}
    assert error["path"] == "/v2/video/generations"
    assert sim.tasks == {}


def test_the_docs_string_duration_and_unknown_fields_are_accepted_but_no_last_frame_is_used(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    body = {
        "model": "alibaba/wan-2-7-i2v",
        "prompt": "",
        "image_url": sample_url,
        "duration": "15",
        "last_frame_url": sample_url,
    }
    task_id = adapter.parse_submit(client.send(adapter.request("POST", "/v2/video/generations", body)))
    task = sim.tasks[task_id]
    assert task.duration == 15
    assert task.short_side == 1080  # documented default resolution
    assert set(task.inputs) == {"first_frame"}  # dropped, not refused: hence routing refuses such modes


def test_first_frame_with_audio_reaches_the_renderer_as_driving_audio(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    audio = sample_url.replace("sample.png", "purr.mp3")
    task_id = submit(
        adapter, client, VideoRequest(image_url=sample_url, audio_url=audio, duration=10, seed=7)
    )
    task = sim.tasks[task_id]
    assert task.inputs == {"first_frame": sample_url, "audio": audio}
    assert (task.duration, task.seed) == (10, 7)
    assert task.request["enable_prompt_expansion"] is True


def test_wrong_key_is_a_401_with_the_documented_message(
    sim: AimlapiSimulator, client: ProviderClient, sample_url: str
) -> None:
    wrong = aimlapi.PROVIDER.build(sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(
            client.send(wrong.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
        )
    assert (caught.value.status_code, caught.value.code) == (401, "401")
    assert "requires a valid API key" in str(caught.value)


def test_out_of_credits_is_a_403_rejection(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.out_of_credits = True
    with pytest.raises(ProviderRejected) as caught:
        submit(adapter, client, VideoRequest(image_url=sample_url))
    assert (caught.value.status_code, caught.value.code) == (403, "403")
    assert "run out of credits" in str(caught.value)


def test_rate_limits_and_outages_come_in_aimlapis_error_body(
    sim: AimlapiSimulator, adapter: AimlapiProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.rate_limit_polls, sim.faults.retry_after, sim.faults.fail_submits = 1, 30, 1
    limited = client.http.send(adapter.status("AAAAAAAAAAAAAAAAAAAAA"))  # the bare answer, before any retry
    outage = client.http.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    assert (limited.status_code, limited.headers["Retry-After"], outage.status_code) == (429, "30", 503)
    assert (limited.json()["message"], limited.json()["statusCode"]) == ("Too Many Requests", "429")
    fields = {"message", "path", "requestId", "statusCode", "timestamp"}
    assert limited.json().keys() == outage.json().keys() == fields


def test_callback_fields_are_dropped_and_nothing_calls_back(
    sim: AimlapiSimulator,
    adapter: AimlapiProvider,
    client: ProviderClient,
    sample_url: str,
    media_server: tuple[Path, str],
) -> None:
    sim.faults.fail_render = "quick"
    hook = f"{media_server[1]}/callback"
    body = {"model": "alibaba/wan-2-7-i2v", "prompt": "p", "image_url": sample_url, "duration": 5}
    req = adapter.request("POST", "/v2/video/generations", body | {"callback_url": hook, "webhook_url": hook})
    task_id = adapter.parse_submit(client.send(req))
    assert poll(adapter, client, task_id)[-1].raw_status == "error"
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(task_id, "no callback URL")]
    assert sim.callbacks_sent == []
