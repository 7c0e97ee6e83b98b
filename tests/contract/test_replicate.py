"""The `replicate` adapter: its requests and its parsing of Replicate's prediction objects, its Standard
Webhooks signature check, then the adapter against its simulator over loopback (modes, errors, Cancel-After,
cancel, signed webhooks). What every host shares (rate limits, retries, unknown words, expired links, lost
answers) is in test_engine.py."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import replicate
from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    SubmitOutcomeUnknown,
)
from i2v.providers.client import ProviderClient
from i2v.providers.replicate import CANCEL_AFTER, DEFAULT_BASE_URL, ReplicateProvider
from i2v_local.sim_replicate import SIM_WEBHOOK_SECRET, ReplicateSimulator, sign
from tests.contract.drive import Receiver, poll, wait_until

IMG, LAST, CLIP, AUDIO = (
    "https://cdn.example.com/first.png",
    "https://cdn.example.com/last.png",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/voice.mp3",
)
CALLBACK = "https://gw.example.com/v1/callbacks/replicate/vid_1?token=t"
NOW = 1_765_000_000.0


@pytest.fixture
def offline() -> ReplicateProvider:
    return replicate.PROVIDER.build(DEFAULT_BASE_URL, "r8_key", SIM_WEBHOOK_SECRET)  # type: ignore[return-value]


@pytest.fixture
def sim() -> Iterator[ReplicateSimulator]:
    with ReplicateSimulator(render_scale=0.34) as running:
        running.callback_retries = (0.05, 0.1, 0.2)  # shortened for tests
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: ReplicateSimulator) -> ReplicateProvider:
    return replicate.PROVIDER.build(sim.base_url, sim.api_key, sim.webhook_secret)  # type: ignore[return-value]


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def submit(
    adapter: ReplicateProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), callback), is_submit=True)
    )


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "rrr4z55ocneqzikepnug6xezpe", "status": status, "output": None, "error": None, **fields}


def signed(
    body: bytes, stamp: float = NOW, msg_id: str = "msg_1", secret: str = SIM_WEBHOOK_SECRET
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp)),
        "webhook-signature": sign(secret, msg_id, str(int(stamp)), body),
    }


def no_fetch(url: str) -> Any:
    raise AssertionError(f"Replicate's scheme fetches nothing, not {url}")


# -- the declaration and the requests, sans I/O -----------------------------------------------------


def test_the_declaration_is_what_replicate_documents(offline: ReplicateProvider) -> None:
    caps = offline.capabilities
    assert offline.name == "replicate"
    assert DEFAULT_BASE_URL == "https://api.replicate.com"
    assert caps.modes == frozenset(Mode)
    assert caps.durations == frozenset(range(2, 16))
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert caps.audio
    assert caps.callback
    assert caps.cancel
    assert caps.seed
    assert caps.negative_prompt
    assert caps.prompt_extend
    assert caps.submit_not_created == frozenset()
    # 600 creates a minute is a rate, not a number of predictions at once.
    assert replicate.PROVIDER.max_in_flight is None
    assert dict(replicate.PROVIDER.price) == {"720p": 0.10, "1080p": 0.15}
    assert replicate.PROVIDER.auth.headers("r8_key") == {"Authorization": "Bearer r8_key"}


def test_submit_creates_a_prediction_of_the_official_model_with_a_completed_only_webhook(
    offline: ReplicateProvider,
) -> None:
    req = VideoRequest(prompt="a cat plays piano", image_url=IMG)
    built = offline.submit(req, req.resolved_mode(), CALLBACK)
    assert built.method == "POST"
    assert str(built.url) == "https://api.replicate.com/v1/models/wan-video/wan-2.7-i2v/predictions"
    assert built.headers["Authorization"] == "Bearer r8_key"
    assert built.headers["Cancel-After"] == CANCEL_AFTER == "20m"
    assert "Prefer" not in built.headers  # async: a video outlasts the 60 s sync wait
    assert json.loads(built.content) == {
        "input": {
            "prompt": "a cat plays piano",
            "first_frame": IMG,
            "resolution": "1080p",
            "duration": 5,
            "enable_prompt_expansion": True,
        },
        "webhook": CALLBACK,
        "webhook_events_filter": ["completed"],
    }


def test_submit_sends_every_option_it_is_given(offline: ReplicateProvider) -> None:
    req = VideoRequest.model_validate(
        {
            "image_url": IMG,
            "resolution": "720P",
            "duration": 15,
            "prompt_extend": False,
            "seed": 0,
            "negative_prompt": "blurry",
        }
    )
    body = json.loads(offline.submit(req, req.resolved_mode(), None).content)
    assert body == {
        "input": {
            "first_frame": IMG,
            "resolution": "720p",
            "duration": 15,
            "enable_prompt_expansion": False,
            "seed": 0,
            "negative_prompt": "blurry",
        }
    }  # no webhook without a callback URL, and no empty prompt


@pytest.mark.parametrize(
    ("media", "fields"),
    [
        ({"image_url": IMG}, {"first_frame": IMG}),
        ({"image_url": IMG, "audio_url": AUDIO}, {"first_frame": IMG, "audio": AUDIO}),
        ({"image_url": IMG, "last_frame_url": LAST}, {"first_frame": IMG, "last_frame": LAST}),
        (
            {"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO},
            {"first_frame": IMG, "last_frame": LAST, "audio": AUDIO},
        ),
        ({"video_url": CLIP}, {"first_clip": CLIP}),
        # Sent, not dropped: the host says whether it takes a last frame after a clip.
        ({"video_url": CLIP, "last_frame_url": LAST}, {"first_clip": CLIP, "last_frame": LAST}),
    ],
)
def test_each_media_combination_maps_to_replicates_inputs(
    offline: ReplicateProvider, media: dict[str, str], fields: dict[str, str]
) -> None:
    req = VideoRequest.model_validate(media)
    given = json.loads(offline.submit(req, req.resolved_mode(), None).content)["input"]
    media_fields = {
        k: v for k, v in given.items() if k in ("first_frame", "last_frame", "first_clip", "audio")
    }
    assert media_fields == fields


def test_routing_refuses_a_watermark_naming_it(offline: ReplicateProvider) -> None:
    req = VideoRequest(image_url=IMG, watermark=True)
    assert offline.capabilities.refusal(req, Mode.FIRST_FRAME) == "has no watermark option"
    assert offline.capabilities.refusal(VideoRequest(image_url=IMG, seed=0), Mode.FIRST_FRAME) is None


def test_status_and_cancel_name_the_prediction_in_one_escaped_segment(offline: ReplicateProvider) -> None:
    assert str(offline.status("abc123").url) == "https://api.replicate.com/v1/predictions/abc123"
    cancel = offline.cancel("abc123")
    assert cancel is not None
    assert (cancel.method, str(cancel.url)) == (
        "POST",
        "https://api.replicate.com/v1/predictions/abc123/cancel",
    )
    assert str(offline.status("a/b").url).endswith("/v1/predictions/a%2Fb")


# -- parsing prediction objects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("starting", ProviderState.QUEUED),
        ("processing", ProviderState.PROCESSING),
        ("succeeded", ProviderState.SUCCEEDED),
        ("failed", ProviderState.FAILED),
        ("canceled", ProviderState.CANCELLED),
        ("aborted", ProviderState.CANCELLED),
    ],
)
def test_every_status_word_maps(offline: ReplicateProvider, word: str, state: ProviderState) -> None:
    assert offline.parse_status(response(prediction(word))).state is state


def test_the_output_is_a_single_uri_read_only_on_success(offline: ReplicateProvider) -> None:
    done = offline.parse_status(response(prediction("succeeded", output="https://replicate.delivery/x.mp4")))
    assert done.result_url == "https://replicate.delivery/x.mp4"
    running = offline.parse_status(response(prediction("processing", output="https://partial/x.mp4")))
    assert running.result_url is None


def test_a_failed_prediction_carries_its_error_text(offline: ReplicateProvider) -> None:
    failed = offline.parse_status(response(prediction("failed", error="CUDA out of memory")))
    assert (failed.state, failed.error_code, failed.error_message) == (
        ProviderState.FAILED,
        "prediction_failed",
        "CUDA out of memory",
    )


def test_an_aborted_prediction_says_its_deadline_passed_before_it_started(offline: ReplicateProvider) -> None:
    aborted = offline.parse_status(response(prediction("aborted")))
    assert aborted.state is ProviderState.CANCELLED
    assert aborted.error_code == "aborted"
    assert "Cancel-After" in (aborted.error_message or "")


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (
            401,
            {
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
                "status": 401,
            },
            "unauthenticated",
            "You did not pass a valid authentication token",
        ),
        (404, {"detail": "Not found."}, "not_found", "Not found."),
        (402, {"title": "Insufficient credit", "status": 402}, "payment_required", "Insufficient credit"),
        (
            422,
            {
                "title": "Input validation failed",
                "detail": "- input: duration must be an integer between 2 and 15\n",
                "status": 422,
                "invalid_fields": [
                    {"type": "number_one_of", "field": "duration", "description": "must be between 2 and 15"}
                ],
            },
            "invalid_input",
            "- input: duration must be an integer between 2 and 15 (duration: must be between 2 and 15)",
        ),
    ],
)
def test_error_bodies_become_rejections_with_their_detail(
    offline: ReplicateProvider, status: int, body: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        offline.parse_submit(response(body, status))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (status, code, message)


def test_the_documented_429_is_a_rate_limit_with_its_retry_after(offline: ReplicateProvider) -> None:
    body = {"detail": "Request was throttled. Your rate limit resets in ~30s."}
    with pytest.raises(ProviderRateLimited) as caught:
        offline.parse_submit(response(body, 429, {"Retry-After": "30"}))
    assert caught.value.retry_after == 30


# -- the webhook signature --------------------------------------------------------------------------


def test_a_webhook_signed_with_the_accounts_secret_holds(offline: ReplicateProvider) -> None:
    body = json.dumps(prediction("succeeded")).encode()
    assert offline.callback_refusal(signed(body), body, NOW + 299, no_fetch) is None
    assert offline.callback_task_id(body) == "rrr4z55ocneqzikepnug6xezpe"


def test_any_matching_entry_of_a_signature_list_holds(offline: ReplicateProvider) -> None:
    body = b'{"id": "x"}'
    headers = signed(body)
    headers["webhook-signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]  # a rotated secret's entry
    assert offline.callback_refusal(headers, body, NOW, no_fetch) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b'{"id": "other"}'}, "no webhook-signature entry matches"),
        ({"secret": "whsec_" + "QUJD" * 8}, "no webhook-signature entry matches"),
        ({"msg_id": "msg_2"}, "no webhook-signature entry matches"),
        ({"now": NOW + 301}, "webhook-timestamp is more than 300 s from now"),
        ({"now": NOW - 301}, "webhook-timestamp is more than 300 s from now"),
        ({"drop": "webhook-signature"}, "missing webhook-id, webhook-timestamp or webhook-signature"),
        ({"drop": "webhook-id"}, "missing webhook-id, webhook-timestamp or webhook-signature"),
    ],
)
def test_a_forged_or_stale_webhook_is_refused_with_a_reason(
    offline: ReplicateProvider, change: dict[str, Any], reason: str
) -> None:
    sent = b'{"id": "rrr4z55ocneqzikepnug6xezpe", "status": "succeeded"}'
    headers = signed(sent, msg_id="msg_1", secret=change.get("secret", SIM_WEBHOOK_SECRET))
    if "msg_id" in change:
        headers["webhook-id"] = change["msg_id"]
    headers.pop(change.get("drop", ""), None)
    body = change.get("body", sent)
    assert offline.callback_refusal(headers, body, change.get("now", NOW), no_fetch) == reason


def test_without_a_configured_secret_the_signature_is_not_checked() -> None:
    unsigned = replicate.PROVIDER.build(DEFAULT_BASE_URL, "r8_key")
    assert unsigned.callback_refusal({}, b"{}", NOW, no_fetch) is None


# -- against the simulator --------------------------------------------------------------------------


def test_the_create_answer_is_a_prediction_object(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    req = VideoRequest(image_url=sample_url, duration=4)
    answer = client.send(adapter.submit(req, Mode.FIRST_FRAME, None), is_submit=True)
    body = answer.json()
    assert answer.status_code == 201
    assert re.fullmatch(r"[a-z0-9]{26}", body["id"])
    assert body["status"] == "starting"
    assert body["model"] == "wan-video/wan-2.7-i2v"
    assert body["urls"]["get"] == f"{sim.base_url}/v1/predictions/{body['id']}"
    assert body["urls"]["cancel"] == f"{sim.base_url}/v1/predictions/{body['id']}/cancel"
    assert body["input"]["first_frame"] == sample_url
    assert adapter.parse_submit(answer) == body["id"]
    assert (sim.tasks[body["id"]].short_side, sim.tasks[body["id"]].duration) == (1080, 4)


@pytest.mark.parametrize(
    "media",
    [
        {"image_url": "sample.png"},
        {"image_url": "sample.png", "audio_url": "voice.wav"},
        {"image_url": "sample.png", "last_frame_url": "last.png"},
        {"image_url": "sample.png", "last_frame_url": "last.png", "audio_url": "voice.wav"},
        {"video_url": "clip.mp4"},
    ],
)
def test_each_mode_renders_to_a_downloadable_mp4(
    sim: ReplicateSimulator,
    adapter: ReplicateProvider,
    client: ProviderClient,
    media_server: tuple[Any, str],
    media: dict[str, str],
) -> None:
    urls = {field: f"{media_server[1]}/{name}" for field, name in media.items()}
    req = VideoRequest.model_validate({**urls, "duration": 2, "resolution": "720p"})
    job = submit(adapter, client, req)
    final = poll(adapter, client, job, seconds=60)[-1]
    assert (final.state, final.raw_status) == (ProviderState.SUCCEEDED, "succeeded")
    assert httpx.get(final.result_url or "").content[4:8] == b"ftyp"
    roles = {
        "image_url": "first_frame",
        "last_frame_url": "last_frame",
        "video_url": "clip",
        "audio_url": "audio",
    }
    assert set(sim.tasks[job].inputs) == {roles[field] for field in media}


def test_the_simulator_refuses_a_last_frame_after_a_clip_naming_it(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    req = VideoRequest(video_url=CLIP, last_frame_url=LAST)
    with pytest.raises(ProviderRejected) as caught:
        submit(adapter, client, req)
    assert (caught.value.status_code, caught.value.code) == (422, "invalid_input")
    assert "last_frame" in str(caught.value)
    assert submit(adapter, client, VideoRequest(video_url=CLIP))  # a clip alone is a continuation


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"first_frame": IMG, "duration": 16}, "duration"),
        ({"first_frame": IMG, "resolution": "480p"}, "resolution"),
        ({"first_frame": IMG, "seed": "7"}, "seed"),
        ({"first_frame": IMG, "watermark": True}, "watermark"),
        ({"prompt": "no media"}, "first_frame"),
        ({"first_frame": IMG, "first_clip": CLIP}, "first_clip"),
        ({"first_clip": CLIP, "audio": AUDIO}, "audio"),
    ],
)
def test_the_simulator_answers_invalid_inputs_with_a_422_naming_the_field(
    sim: ReplicateSimulator,
    adapter: ReplicateProvider,
    client: ProviderClient,
    given: dict[str, Any],
    field: str,
) -> None:
    sim.faults.stall = True
    answer = client.send(adapter.request("POST", replicate.CREATE_PATH, {"input": given}), is_submit=True)
    assert answer.status_code == 422
    assert answer.json()["invalid_fields"][0]["field"] == field
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(answer)
    assert field in str(caught.value)
    assert sim.tasks == {}


def test_a_wrong_token_gets_the_401_problem(sim: ReplicateSimulator, client: ProviderClient) -> None:
    stranger = replicate.PROVIDER.build(sim.base_url, "r8_wrong")
    with pytest.raises(ProviderRejected) as caught:
        stranger.parse_status(client.send(stranger.status(ReplicateSimulator.never_issued)))
    assert (caught.value.status_code, caught.value.code) == (401, "unauthenticated")


def test_a_create_without_credit_is_a_402_rejection(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient
) -> None:
    sim.payment_required = True
    with pytest.raises(ProviderRejected) as caught:
        submit(adapter, client, VideoRequest(image_url=IMG))
    assert (caught.value.status_code, caught.value.code) == (402, "payment_required")
    assert sim.tasks == {}


def test_the_429_carries_the_documented_detail_and_retry_after(
    sim: ReplicateSimulator, adapter: ReplicateProvider
) -> None:
    sim.faults.rate_limit_submits = 1
    sim.faults.retry_after = 7
    no_waiting = ProviderClient(timeout=5, sleep=lambda s: None)  # 7 s is past its 5 s wait budget
    with pytest.raises(ProviderRateLimited) as caught:
        submit(adapter, no_waiting, VideoRequest(image_url=IMG))
    assert caught.value.retry_after == 7
    assert json.loads(caught.value.raw) == {"detail": "Request was throttled. Your rate limit resets in ~7s."}
    assert sim.tasks == {}


def test_a_lost_create_answer_is_unknown_and_the_prediction_can_be_cancelled(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    sim.faults.hang_submit_after_accept = True
    with pytest.raises(SubmitOutcomeUnknown):
        submit(adapter, ProviderClient(timeout=0.3, sleep=lambda s: None), VideoRequest(image_url=IMG))
    [job] = sim.tasks
    sim.faults.hang_submit_after_accept = False
    cancel = adapter.cancel(job)
    assert cancel is not None
    assert client.send(cancel).is_success
    assert adapter.parse_status(client.send(adapter.status(job))).raw_status == "canceled"


def test_cancel_after_ends_a_prediction_that_never_started_as_aborted(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    built = adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None)
    built.headers["Cancel-After"] = "1s"
    job = adapter.parse_submit(client.send(built, is_submit=True))
    wait_until(lambda: sim.tasks[job].state == "cancelled")
    status = adapter.parse_status(client.send(adapter.status(job)))
    assert (status.state, status.raw_status, status.error_code) == (
        ProviderState.CANCELLED,
        "aborted",
        "aborted",
    )


def test_cancel_after_cancels_a_running_prediction(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.hold_progress = 40
    built = adapter.submit(VideoRequest(image_url=sample_url, duration=2), Mode.FIRST_FRAME, None)
    built.headers["Cancel-After"] = "2s"
    job = adapter.parse_submit(client.send(built, is_submit=True))
    wait_until(lambda: sim.tasks[job].state == "processing")  # started (held at 40%) before the deadline
    wait_until(lambda: sim.tasks[job].state == "cancelled")
    status = adapter.parse_status(client.send(adapter.status(job)))
    assert (status.state, status.raw_status) == (ProviderState.CANCELLED, "canceled")


def test_a_malformed_cancel_after_is_refused(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient
) -> None:
    built = adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None)
    built.headers["Cancel-After"] = "soon"
    with pytest.raises(ProviderRejected):
        adapter.parse_submit(client.send(built, is_submit=True))


def test_cancelling_an_ended_prediction_leaves_it_as_it_ended(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, sample_url: str
) -> None:
    job = submit(adapter, client, VideoRequest(image_url=sample_url, duration=2, resolution="720p"))
    assert poll(adapter, client, job)[-1].state is ProviderState.SUCCEEDED
    cancel = adapter.cancel(job)
    assert cancel is not None
    assert client.send(cancel).json()["status"] == "succeeded"


def test_outputs_are_removed_an_hour_after_the_prediction_ends(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, sample_url: str
) -> None:
    assert sim.result_ttl_seconds == 3600
    job = submit(adapter, client, VideoRequest(image_url=sample_url, duration=2, resolution="720p"))
    assert poll(adapter, client, job)[-1].result_url
    sim.tasks[job].finished_at = time.time() - 3601  # an hour later
    body = client.send(adapter.status(job)).json()
    assert (body["data_removed"], body["output"]) == (True, None)


# -- signed webhooks from the simulator -------------------------------------------------------------


def test_the_completed_webhook_is_the_signed_prediction_object_and_the_adapter_accepts_it(
    adapter: ReplicateProvider, client: ProviderClient, receiver: Receiver, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    job = submit(adapter, client, req, receiver.url)
    receiver.wait_for(1)
    [delivery] = receiver.deliveries
    body = delivery.json()
    assert body["id"] == job
    assert body["status"] == "succeeded"
    assert body == client.send(adapter.status(job)).json()
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["webhook-signature"].startswith("v1,")
    assert adapter.callback_refusal(headers, delivery.body, time.time(), no_fetch) is None
    assert adapter.callback_task_id(delivery.body) == job
    assert adapter.callback_refusal(headers, delivery.body + b" ", time.time(), no_fetch)  # tampered
    assert adapter.callback_refusal(headers, delivery.body, time.time() + 600, no_fetch)  # replayed late


def test_retries_carry_the_same_webhook_id(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    receiver.answers = [500]
    job = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[job])
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(job, "delivered")]
    first, second = receiver.deliveries
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"]
    assert second.json()["status"] == "canceled"


def test_a_filter_without_completed_gets_no_webhook_at_the_end(
    sim: ReplicateSimulator, adapter: ReplicateProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    built = adapter.request(
        "POST",
        replicate.CREATE_PATH,
        {"input": {"first_frame": IMG}, "webhook": receiver.url, "webhook_events_filter": ["logs"]},
    )
    job = adapter.parse_submit(client.send(built, is_submit=True))
    sim.cancel_task(sim.tasks[job])
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(job, "no callback URL")]
    assert receiver.deliveries == []
