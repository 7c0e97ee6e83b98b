"""The `openrouter` adapter: its requests and its parsing of OpenRouter's documented bodies, then the adapter
against its simulator over loopback (modes, errors, the keyed content download, signed callbacks, expired
jobs). What every host shares (rate limits, retries, unknown words, lost answers) is in test_engine.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import openrouter
from i2v.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderUnavailable,
    SubmitOutcomeUnknown,
)
from i2v.providers.client import ProviderClient
from i2v.providers.openrouter import DEFAULT_BASE_URL, OpenRouterProvider
from i2v_local.sim_openrouter import OpenRouterSimulator
from tests.contract.drive import Receiver, poll, wait_until

IMG, LAST, CLIP, AUDIO = (
    "https://cdn.example.com/first.png",
    "https://cdn.example.com/last.png",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/voice.mp3",
)
CALLBACK = "https://gw.example.com/v1/callbacks/openrouter/vid_1?token=t"
SECRET = "whsec-test"

# The documented examples (https://openrouter.ai/docs/api/api-reference/videos , openapi.yaml of
# github.com/OpenRouterTeam/docs, https://openrouter.ai/docs/cookbook/video-generation/video-generation-webhooks).
SUBMIT_EXAMPLE = {
    "id": "job-abc123",
    "generation_id": "gen-xyz789",
    "polling_url": "/api/v1/videos/job-abc123",
    "status": "pending",
}
COMPLETED_EXAMPLE = {
    "id": "abc123",
    "generation_id": "gen-1234567890-abcdef",
    "polling_url": "https://openrouter.ai/api/v1/videos/abc123",
    "status": "completed",
    "unsigned_urls": ["https://openrouter.ai/api/v1/videos/abc123/content?index=0"],
    "usage": {"cost": 0.25, "is_byok": False},
}
WEBHOOK_EXAMPLE = {
    "type": "video.generation.completed",
    "created_at": "2026-04-24T12:00:00.000Z",
    "data": {
        "id": "abc123",
        "status": "completed",
        "generation_id": "gen-xyz789",
        "model": "alibaba/wan-2.7",
        "unsigned_urls": ["https://openrouter.ai/api/v1/videos/abc123/content?index=0"],
        "usage": {"cost": 0.5, "is_byok": False},
    },
}


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def signed(body: bytes, secret: str, stamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{stamp},".encode() + body, hashlib.sha256).hexdigest()
    return {"x-openrouter-signature": f"t={stamp},v1={digest}"}


def no_fetch(url: str) -> Any:
    raise AssertionError("OpenRouter's signature needs no published keys")


@pytest.fixture
def offline() -> OpenRouterProvider:
    return openrouter.PROVIDER.build(DEFAULT_BASE_URL, "k-123")  # type: ignore[return-value]


@pytest.fixture
def sim() -> Iterator[OpenRouterSimulator]:
    with OpenRouterSimulator(render_scale=0.34) as running:
        running.callback_retries = (0.05, 0.1, 0.2)  # not documented; shortened for tests
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: OpenRouterSimulator) -> OpenRouterProvider:
    return openrouter.PROVIDER.build(sim.base_url, sim.api_key, sim.webhook_secret)  # type: ignore[return-value]


def submit(
    adapter: OpenRouterProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), callback), is_submit=True)
    )


# -- the adapter, sans I/O --------------------------------------------------------------------------


def test_capabilities_are_what_openrouter_documents(offline: OpenRouterProvider) -> None:
    caps = offline.capabilities
    assert offline.name == "openrouter"
    assert DEFAULT_BASE_URL == "https://openrouter.ai"
    assert caps.modes == frozenset({Mode.FIRST_FRAME, Mode.FIRST_LAST_FRAME})
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert caps.callback
    assert not caps.cancel
    assert caps.seed
    assert not caps.audio
    assert not caps.negative_prompt
    assert not caps.prompt_extend
    assert openrouter.PROVIDER.max_in_flight is None
    assert openrouter.PROVIDER.price == {"720p": 0.10}


@pytest.mark.parametrize(
    ("req", "named"),
    [
        (VideoRequest(video_url=CLIP), "video_continuation"),
        (VideoRequest(image_url=IMG, audio_url=AUDIO), "audio_url"),
        (VideoRequest(image_url=IMG, negative_prompt="blur"), "negative_prompt"),
        (VideoRequest(image_url=IMG, prompt_extend=False), "prompt_extend"),
        (VideoRequest(image_url=IMG, watermark=True), "watermark"),
    ],
    ids=["continuation", "audio", "negative_prompt", "prompt_extend", "watermark"],
)
def test_what_openrouter_has_no_field_for_is_refused_by_name(
    offline: OpenRouterProvider, req: VideoRequest, named: str
) -> None:
    refusal = offline.capabilities.refusal(req, req.resolved_mode())
    assert refusal is not None
    assert named in refusal


def test_a_first_frame_is_a_frame_image_with_duration_resolution_and_seed_explicit(
    offline: OpenRouterProvider,
) -> None:
    req = VideoRequest(prompt="a cat plays piano", image_url=IMG, duration=7, resolution="720p", seed=0)
    built = offline.submit(req, req.resolved_mode(), CALLBACK)
    assert (built.method, str(built.url)) == ("POST", "https://openrouter.ai/api/v1/videos")
    assert built.headers["Authorization"] == "Bearer k-123"
    assert json.loads(built.content) == {
        "model": "alibaba/wan-2.7",
        "frame_images": [
            {"type": "image_url", "image_url": {"url": IMG}, "frame_type": "first_frame"},
        ],
        "duration": 7,
        "resolution": "720p",
        "prompt": "a cat plays piano",
        "seed": 0,
        "callback_url": CALLBACK,
    }


def test_first_and_last_frames_are_two_frame_images_and_nothing_is_sent_unasked(
    offline: OpenRouterProvider,
) -> None:
    req = VideoRequest(image_url=IMG, last_frame_url=LAST)
    body = json.loads(offline.submit(req, Mode.FIRST_LAST_FRAME, None).content)
    assert [(f["frame_type"], f["image_url"]["url"]) for f in body["frame_images"]] == [
        ("first_frame", IMG),
        ("last_frame", LAST),
    ]
    assert set(body) == {"model", "frame_images", "duration", "resolution"}  # no prompt, seed or callback
    assert body["resolution"] == "1080p"


@pytest.mark.parametrize(
    "polling", ["/api/v1/videos/job-abc123", "https://openrouter.ai/api/v1/videos/job-abc123", None]
)
def test_the_submit_answer_names_the_job_and_its_polling_url_is_the_one_we_poll(
    offline: OpenRouterProvider, polling: str | None
) -> None:
    body = {**SUBMIT_EXAMPLE, "polling_url": polling}
    assert offline.parse_submit(response(body, 202)) == "job-abc123"
    assert str(offline.status("job-abc123").url) == "https://openrouter.ai/api/v1/videos/job-abc123"


def test_a_base_url_behind_a_proxy_still_follows_the_documented_polling_url() -> None:
    proxied = openrouter.PROVIDER.build("https://proxy.example/openrouter", "k")
    assert proxied.parse_submit(response(SUBMIT_EXAMPLE, 202)) == "job-abc123"
    assert (
        str(proxied.status("job-abc123").url) == "https://proxy.example/openrouter/api/v1/videos/job-abc123"
    )


@pytest.mark.parametrize(
    "body",
    [
        {**SUBMIT_EXAMPLE, "polling_url": "/api/v2/jobs/job-abc123"},
        {**SUBMIT_EXAMPLE, "polling_url": "https://elsewhere.example/api/v1/videos/job-abc123"},
        {**SUBMIT_EXAMPLE, "id": "../admin"},
        {"status": "pending"},
    ],
    ids=["other path", "other host", "hostile id", "no id"],
)
def test_a_submit_answer_we_cannot_follow_is_an_error_keeping_it(
    offline: OpenRouterProvider, body: dict[str, Any]
) -> None:
    with pytest.raises(ProviderError) as caught:
        offline.parse_submit(response(body, 202))
    assert json.loads(caught.value.raw) == body


def test_the_documented_completed_answer_gives_the_content_url_and_cost(offline: OpenRouterProvider) -> None:
    status = offline.parse_status(response(COMPLETED_EXAMPLE))
    assert status.state is ProviderState.SUCCEEDED
    assert status.result_url == "https://openrouter.ai/api/v1/videos/abc123/content?index=0"
    assert status.cost_usd == 0.25


def test_a_signed_storage_url_is_preferred_to_the_keyed_content_url(offline: OpenRouterProvider) -> None:
    signed_url = "https://storage.example.com/v.mp4?X-Goog-Signature=abc"
    status = offline.parse_status(response({**COMPLETED_EXAMPLE, "urls": [signed_url]}))
    assert status.result_url == signed_url


@pytest.mark.parametrize(
    ("raw", "state", "code", "error"),
    [
        ("pending", ProviderState.QUEUED, None, None),
        ("in_progress", ProviderState.PROCESSING, None, None),
        ("failed", ProviderState.FAILED, "failed", "Provider returned error"),
        ("cancelled", ProviderState.CANCELLED, None, "Job was cancelled"),
        ("expired", ProviderState.FAILED, "expired", "Job exceeded maximum time to live"),
    ],
)
def test_every_documented_status_word_has_its_meaning(
    offline: OpenRouterProvider, raw: str, state: ProviderState, code: str | None, error: str | None
) -> None:
    body = {"id": "abc123", "polling_url": "/api/v1/videos/abc123", "status": raw, "error": error}
    status = offline.parse_status(response(body))
    assert (status.state, status.raw_status, status.error_code, status.error_message) == (
        state,
        raw,
        code,
        error,
    )
    assert status.result_url is None


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "frame_images[].frame_type must be first_frame or last_frame", ProviderRejected),
        (401, "No auth credentials found", ProviderRejected),
        (
            402,
            "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            ProviderRejected,
        ),
        (404, "Video generation job not found", ProviderRejected),
        (500, "Internal Server Error", ProviderUnavailable),
        (502, "Provider returned error", ProviderUnavailable),
    ],
)
def test_documented_error_bodies_become_the_right_provider_error(
    offline: OpenRouterProvider, status: int, message: str, kind: type[ProviderError]
) -> None:
    body = {"error": {"code": status, "message": message, "metadata": {"provider_name": "Alibaba"}}}
    with pytest.raises(kind) as caught:
        offline.parse_submit(response(body, status))
    assert caught.value.status_code == status
    if kind is ProviderRejected:
        assert (str(caught.value), caught.value.code) == (message, str(status))


def test_a_429_keeps_its_retry_after(offline: OpenRouterProvider) -> None:
    body = {"error": {"code": 429, "message": "Rate limit exceeded"}}
    with pytest.raises(ProviderRateLimited) as caught:
        offline.parse_status(response(body, 429, {"Retry-After": "12"}))
    assert caught.value.retry_after == 12


def test_there_is_no_cancel_call(offline: OpenRouterProvider) -> None:
    assert offline.cancel("job-abc123") is None


def test_the_callback_names_the_job_in_its_data(offline: OpenRouterProvider) -> None:
    assert offline.callback_task_id(json.dumps(WEBHOOK_EXAMPLE).encode()) == "abc123"
    assert offline.callback_task_id(b'{"id": "abc123"}') is None
    assert offline.callback_task_id(b"not json") is None


# -- webhook signatures ----------------------------------------------------------------------------


def test_with_a_workspace_secret_a_signature_within_300_s_holds() -> None:
    adapter = openrouter.PROVIDER.build(DEFAULT_BASE_URL, "k", SECRET)
    body = json.dumps(WEBHOOK_EXAMPLE).encode()
    now = time.time()
    for age in (0, 299, -299):
        headers = signed(body, SECRET, int(now) - age)
        assert adapter.callback_refusal(headers, body, now, no_fetch) is None


@pytest.mark.parametrize(
    "case", ["forged body", "other secret", "stale", "from the future", "missing", "malformed"]
)
def test_with_a_workspace_secret_a_bad_or_stale_signature_is_refused(case: str) -> None:
    adapter = openrouter.PROVIDER.build(DEFAULT_BASE_URL, "k", SECRET)
    body = json.dumps(WEBHOOK_EXAMPLE).encode()
    now = time.time()
    headers = {
        "forged body": signed(b'{"data": {"id": "other"}}', SECRET, int(now)),
        "other secret": signed(body, "not-the-secret", int(now)),
        "stale": signed(body, SECRET, int(now) - 301),
        "from the future": signed(body, SECRET, int(now) + 301),
        "missing": {},
        "malformed": {"x-openrouter-signature": "v1=abc"},
    }[case]
    assert adapter.callback_refusal(headers, body, now, no_fetch)


def test_without_a_workspace_secret_unsigned_callbacks_are_what_openrouter_sends(
    offline: OpenRouterProvider,
) -> None:
    assert offline.callback_refusal({}, json.dumps(WEBHOOK_EXAMPLE).encode(), time.time(), no_fetch) is None


# -- against the simulator -------------------------------------------------------------------------


@pytest.mark.parametrize("with_last", [False, True], ids=["first_frame", "first_last_frame"])
def test_each_mode_renders_and_the_content_download_needs_the_key(
    sim: OpenRouterSimulator,
    adapter: OpenRouterProvider,
    client: ProviderClient,
    sample_url: str,
    with_last: bool,
) -> None:
    req = VideoRequest(
        image_url=sample_url, last_frame_url=sample_url if with_last else None, duration=2, resolution="720p"
    )
    job = submit(adapter, client, req)
    assert job.startswith("job-")
    [task] = sim.tasks.values()
    assert set(task.inputs) == ({"first_frame", "last_frame"} if with_last else {"first_frame"})
    final = poll(adapter, client, job)[-1]
    assert final.state is ProviderState.SUCCEEDED
    assert final.cost_usd == pytest.approx(0.2)
    link = final.result_url or ""
    assert link == f"{sim.base_url}/api/v1/videos/{job}/content?index=0"
    assert httpx.get(link).status_code == 401  # a plain GET, as the gateway's ingest makes, is refused
    keyed = httpx.get(link, headers={"Authorization": f"Bearer {sim.api_key}"})
    assert keyed.content[4:8] == b"ftyp"


def test_with_storage_urls_on_the_result_is_a_signed_link_needing_no_key(
    sim: OpenRouterSimulator, adapter: OpenRouterProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.storage_urls = True
    final = poll(adapter, client, submit(adapter, client, VideoRequest(image_url=sample_url, duration=2)))[-1]
    assert httpx.get(final.result_url or "").content[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"frame_images": [{"type": "image_url", "image_url": {"url": IMG}, "frame_type": "middle"}]},
            "frame_type",
        ),
        ({"resolution": "4K"}, "resolution"),
        ({"duration": 16}, "duration"),
        ({"seed": "7"}, "seed"),
        ({"callback_url": "http://gw.example.com/cb"}, "HTTPS"),
        ({"provider": {"options": {"alibaba": {"negative_prompt": "x"}}}}, "passthrough"),
    ],
)
def test_the_simulator_refuses_what_the_request_schema_refuses_with_openrouters_error_body(
    sim: OpenRouterSimulator,
    offline: OpenRouterProvider,
    client: ProviderClient,
    change: dict[str, Any],
    message: str,
) -> None:
    sim.faults.stall = True
    req = VideoRequest(image_url=IMG, duration=5)
    built = offline.submit(req, req.resolved_mode(), None)
    body = {**json.loads(built.content), **change}
    resp = client.send(
        httpx.Request(
            "POST", f"{sim.base_url}/api/v1/videos", json=body, headers={"Authorization": "Bearer sim-key"}
        ),
        is_submit=True,
    )
    with pytest.raises(ProviderRejected) as caught:
        offline.parse_submit(resp)
    assert (caught.value.status_code, caught.value.code) == (400, "400")
    assert message in str(caught.value)
    assert not sim.tasks


def test_a_wrong_key_and_no_credits_are_refusals_with_the_documented_bodies(
    sim: OpenRouterSimulator, client: ProviderClient
) -> None:
    req = VideoRequest(image_url=IMG)
    wrong = openrouter.PROVIDER.build(sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        submit(wrong, client, req)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    sim.credits_exhausted = True
    with pytest.raises(ProviderRejected) as caught:
        submit(openrouter.PROVIDER.build(sim.base_url, sim.api_key), client, req)  # type: ignore[arg-type]
    assert (caught.value.status_code, caught.value.code) == (402, "402")
    assert "Insufficient credits" in str(caught.value)
    assert not sim.tasks


def test_a_finished_job_calls_back_signed_with_its_envelope_and_idempotency_key(
    sim: OpenRouterSimulator,
    adapter: OpenRouterProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    job = submit(adapter, client, VideoRequest(image_url=sample_url, duration=2), receiver.url)
    [body] = receiver.wait_for(1)
    delivery = receiver.deliveries[0]
    assert body["type"] == "video.generation.completed"
    assert (body["data"]["id"], body["data"]["status"]) == (job, "completed")
    assert body["data"]["unsigned_urls"] == [f"{sim.base_url}/api/v1/videos/{job}/content?index=0"]
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["x-openrouter-idempotency-key"] == f"{job}-completed"
    assert adapter.callback_task_id(delivery.body) == job
    assert adapter.callback_refusal(headers, delivery.body, time.time(), no_fetch) is None
    forged = delivery.body.replace(b"completed", b"failed")
    assert adapter.callback_refusal(headers, forged, time.time(), no_fetch)
    assert adapter.callback_refusal(headers, delivery.body, time.time() + 301, no_fetch)


def test_a_workspace_without_a_secret_gets_unsigned_callbacks(
    client: ProviderClient, receiver: Receiver, sample_url: str
) -> None:
    with OpenRouterSimulator(render_scale=0.34) as sim:
        sim.webhook_secret = ""
        adapter = openrouter.PROVIDER.build(sim.base_url, sim.api_key)
        submit(adapter, client, VideoRequest(image_url=sample_url, duration=2), receiver.url)  # type: ignore[arg-type]
        receiver.wait_for(1)
    headers = {k.lower(): v for k, v in receiver.deliveries[0].headers.items()}
    assert "x-openrouter-signature" not in headers
    assert adapter.callback_refusal(headers, receiver.deliveries[0].body, time.time(), no_fetch) is None


@pytest.mark.parametrize(
    ("end", "raw", "state", "error"),
    [
        ("expire", "expired", ProviderState.FAILED, "Job exceeded maximum time to live"),
        ("cancel_task", "cancelled", ProviderState.CANCELLED, "Job was cancelled"),
    ],
)
def test_a_job_ended_on_openrouters_side_reports_and_calls_back_its_end(
    sim: OpenRouterSimulator,
    adapter: OpenRouterProvider,
    client: ProviderClient,
    receiver: Receiver,
    end: str,
    raw: str,
    state: ProviderState,
    error: str,
) -> None:
    sim.faults.stall = True
    job = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    getattr(sim, end)(sim.tasks[job])
    status = adapter.parse_status(client.send(adapter.status(job)))
    assert (status.state, status.raw_status, status.error_message, status.result_url) == (
        state,
        raw,
        error,
        None,
    )
    [body] = receiver.wait_for(1)
    assert body["type"] == f"video.generation.{raw}"
    assert body["data"]["error"] == error
    assert "unsigned_urls" not in body["data"]


def test_a_lost_submit_answer_leaves_a_job_whose_callback_names_it(
    sim: OpenRouterSimulator, adapter: OpenRouterProvider, receiver: Receiver, sample_url: str
) -> None:
    sim.faults.hang_submit_after_accept = True
    req = VideoRequest(image_url=sample_url, duration=2)
    with pytest.raises(SubmitOutcomeUnknown):
        submit(adapter, ProviderClient(timeout=0.3, sleep=lambda s: None), req, receiver.url)
    [job] = sim.tasks
    wait_until(lambda: len(receiver.deliveries) >= 1, seconds=20)
    assert adapter.callback_task_id(receiver.deliveries[0].body) == job
    assert sim.submits == 1
