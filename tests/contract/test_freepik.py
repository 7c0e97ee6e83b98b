"""The `freepik` adapter: its requests and its parsing of Freepik's documented bodies, then the adapter
against its simulator over loopback (modes, upper-case resolutions, error bodies, webhooks on every status
change and their signatures). What every host shares (rate-limit waits, unknown words, expired links, lost
answers) is in test_engine.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import freepik
from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    SubmitOutcomeUnknown,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.freepik import DEFAULT_BASE_URL, FreepikProvider
from i2v_local.sim_freepik import FreepikSimulator
from tests.contract.drive import Delivery, Receiver, poll, wait_until

IMG, LAST, CLIP, AUDIO = (
    "https://cdn.example.com/first.png",
    "https://cdn.example.com/last.png",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/voice.mp3",
)
PATH = "/v1/ai/image-to-video/wan-2-7"
OFFLINE_SECRET = "whsecret"  # the offline adapter's webhook secret
CALLBACK = "https://gw.example.com/v1/callbacks/freepik/vid_1?token=t"
# The documented create answer (https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate).
CREATE_EXAMPLE = {
    "data": {"generated": [], "task_id": "046b6c7f-0b8a-43b9-b35d-6489e6daee91", "status": "CREATED"}
}


def NO_FETCH(url: str) -> Any:  # callback_refusal's fetch_json, which an HMAC check never needs
    raise AssertionError(f"an HMAC check fetched {url}")


@pytest.fixture
def offline() -> FreepikProvider:
    return freepik.PROVIDER.build(DEFAULT_BASE_URL, "k-123", OFFLINE_SECRET)  # type: ignore[return-value]


@pytest.fixture
def sim() -> Iterator[FreepikSimulator]:
    with FreepikSimulator(render_scale=0.34) as running:
        running.callback_retries = (0.05, 0.1, 0.2)  # the simulator's (guessed) 1/5/25 s, shortened for tests
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: FreepikSimulator) -> FreepikProvider:
    return freepik.PROVIDER.build(sim.base_url, sim.api_key, sim.webhook_secret)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def stalled() -> Iterator[tuple[FreepikSimulator, FreepikProvider, ProviderClient]]:
    """One simulator that never renders, shared by the request-validation cases to keep them fast."""
    with FreepikSimulator() as running:
        running.faults.stall = True
        client = ProviderClient(timeout=5, sleep=lambda s: None)
        built = freepik.PROVIDER.build(running.base_url, running.api_key)
        yield running, built, client  # type: ignore[misc]
        client.close()


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def sent(built: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(built.content)
    return body


def submit(
    adapter: FreepikProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), callback), is_submit=True)
    )


def sign(secret: str, msg_id: str, stamp: str, body: bytes) -> str:
    """The scheme as https://docs.freepik.com/webhooks words it, written out independently of the adapter."""
    digest = hmac.new(secret.encode(), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def lowered(delivery: Delivery) -> dict[str, str]:
    return {k.lower(): v for k, v in delivery.headers.items()}


# -- the adapter, sans I/O --------------------------------------------------------------------------


def test_the_declaration_is_what_freepik_documents(offline: FreepikProvider) -> None:
    caps = offline.capabilities
    assert (offline.name, DEFAULT_BASE_URL) == ("freepik", "https://api.freepik.com")
    assert caps.modes == frozenset(Mode)
    assert caps.durations == frozenset(range(2, 16))
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert (caps.audio, caps.seed, caps.min_seed, caps.negative_prompt, caps.prompt_extend) == (
        True,
        True,
        0,
        True,
        True,
    )
    assert caps.callback
    assert not caps.cancel
    assert caps.submit_not_created == frozenset()
    # Nothing documented for WAN 2.7: no concurrency figure and no price, so neither is invented.
    assert (freepik.PROVIDER.max_in_flight, dict(freepik.PROVIDER.price)) == (None, {})


def test_the_key_goes_in_x_freepik_api_key_and_no_bearer(offline: FreepikProvider) -> None:
    built = offline.status("046b6c7f-0b8a-43b9-b35d-6489e6daee91")
    assert built.headers["x-freepik-api-key"] == "k-123"
    assert "Authorization" not in built.headers
    assert str(built.url) == f"https://api.freepik.com{PATH}/046b6c7f-0b8a-43b9-b35d-6489e6daee91"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"image_url": IMG}, {"start_image_url": IMG}),
        ({"image_url": IMG, "last_frame_url": LAST}, {"start_image_url": IMG, "end_image_url": LAST}),
        ({"video_url": CLIP}, {"video_url": CLIP}),
        ({"video_url": CLIP, "last_frame_url": LAST}, {"video_url": CLIP, "end_image_url": LAST}),
        ({"image_url": IMG, "audio_url": AUDIO}, {"start_image_url": IMG, "audio_url": AUDIO}),
    ],
    ids=["first_frame", "first_last_frame", "continuation", "continuation_to_end_frame", "driving_audio"],
)
def test_each_mode_maps_to_the_documented_fields(
    offline: FreepikProvider, fields: dict[str, str], expected: dict[str, str]
) -> None:
    req = VideoRequest.model_validate(fields)
    built = offline.submit(req, req.resolved_mode(), None)
    assert (built.method, str(built.url)) == ("POST", f"https://api.freepik.com{PATH}")
    # Resolution, duration and prompt_extend always go out: Freepik documents no defaults for them.
    assert sent(built) == {
        **expected,
        "resolution": "1080P",
        "duration": 5,
        "additional_settings": {"prompt_extend": True},
    }


def test_every_option_has_its_field_and_the_resolution_is_upper_case(offline: FreepikProvider) -> None:
    req = VideoRequest(
        prompt="a cat plays piano",
        negative_prompt="blur",
        image_url=IMG,
        resolution="720p",
        duration=12,
        seed=0,
        prompt_extend=False,
    )
    body = sent(offline.submit(req, Mode.FIRST_FRAME, CALLBACK))
    assert body == {
        "prompt": "a cat plays piano",
        "negative_prompt": "blur",
        "start_image_url": IMG,
        "resolution": "720P",
        "duration": 12,
        "seed": 0,  # the lowest seed is sent, not dropped as falsy
        "additional_settings": {"prompt_extend": False},
        "webhook_url": CALLBACK,
    }


def test_a_watermark_is_refused_by_routing_naming_the_option(offline: FreepikProvider) -> None:
    req = VideoRequest(image_url=IMG, watermark=True)
    assert offline.capabilities.refusal(req, Mode.FIRST_FRAME) == "has no watermark option"
    assert offline.capabilities.refusal(VideoRequest(image_url=IMG, seed=0), Mode.FIRST_FRAME) is None


def test_there_is_no_cancel_call(offline: FreepikProvider) -> None:
    assert offline.cancel("046b6c7f-0b8a-43b9-b35d-6489e6daee91") is None


def test_the_documented_create_answer_names_the_job(offline: FreepikProvider) -> None:
    job = offline.parse_submit(response(CREATE_EXAMPLE))
    assert job == "046b6c7f-0b8a-43b9-b35d-6489e6daee91"
    assert offline.parse_status(response(CREATE_EXAMPLE)).state is ProviderState.QUEUED


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("CREATED", ProviderState.QUEUED),
        ("IN_PROGRESS", ProviderState.PROCESSING),
        ("COMPLETED", ProviderState.SUCCEEDED),
        ("FAILED", ProviderState.FAILED),
    ],
)
def test_each_status_word_has_its_state(offline: FreepikProvider, word: str, state: ProviderState) -> None:
    url = "https://cdn.freepik.com/out.mp4"
    data = {"task_id": "t-1", "status": word, "generated": [url] if word == "COMPLETED" else []}
    status = offline.parse_status(response({"data": data}))
    assert (status.state, status.raw_status) == (state, word)
    assert status.result_url == (url if word == "COMPLETED" else None)


def test_lower_case_or_unknown_words_are_errors_not_progress(offline: FreepikProvider) -> None:
    for word in ("completed", "CANCELLED", "None"):
        with pytest.raises(UnknownProviderStatus):
            offline.parse_status(response({"data": {"task_id": "t-1", "status": word, "generated": []}}))


def test_a_webhook_names_its_job_with_or_without_the_data_wrapper(offline: FreepikProvider) -> None:
    bare = {"generated": [], "task_id": "046b6c7f", "status": "IN_PROGRESS"}
    assert offline.callback_task_id(json.dumps(bare).encode()) == "046b6c7f"
    assert offline.callback_task_id(json.dumps({"data": bare}).encode()) == "046b6c7f"
    assert offline.callback_task_id(b"not json") is None


# -- signatures (https://docs.freepik.com/webhooks) -------------------------------------------------


BODY = b'{"generated": [], "task_id": "046b6c7f", "status": "COMPLETED"}'


def headers(stamp: str = "1700000000", secret: str = OFFLINE_SECRET, body: bytes = BODY) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp,
        "webhook-signature": sign(secret, "msg_1", stamp, body),
    }


def test_a_signature_with_the_raw_secret_bytes_holds(offline: FreepikProvider) -> None:
    assert offline.callback_refusal(headers(), BODY, 1_700_000_000, NO_FETCH) is None
    assert offline.callback_refusal(headers(), BODY, 1_700_000_000 + 300, NO_FETCH) is None


def test_any_pair_of_the_rotation_list_may_match(offline: FreepikProvider) -> None:
    signed = headers()
    signed["webhook-signature"] = f"v1,AAAA {signed['webhook-signature']}"
    assert offline.callback_refusal(signed, BODY, 1_700_000_000, NO_FETCH) is None


@pytest.mark.parametrize(
    ("changed", "body", "now"),
    [
        ({}, BODY.replace(b"COMPLETED", b"FAILED"), 1_700_000_000),  # body altered after signing
        (headers(secret="another"), BODY, 1_700_000_000),  # signed with another secret
        # The secret read the Replicate way (base64-decoded) is another key.
        ({"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, BODY, 1_700_000_000),
        ({}, BODY, 1_700_000_000 + 301),  # stale
        ({}, BODY, 1_700_000_000 - 301),  # from the future
        ({"webhook-timestamp": "1700000000.5"}, BODY, 1_700_000_000),
        ({"webhook-signature": ""}, BODY, 1_700_000_000),
        ({"webhook-id": ""}, BODY, 1_700_000_000),
    ],
    ids=["body", "secret", "garbage", "stale", "future", "fraction", "no-signature", "no-id"],
)
def test_a_forged_stale_or_incomplete_signature_is_refused(
    offline: FreepikProvider, changed: dict[str, str], body: bytes, now: float
) -> None:
    refusal = offline.callback_refusal({**headers(), **changed}, body, now, NO_FETCH)
    assert refusal
    assert len(refusal) < 100


def test_a_stale_refusal_says_why(offline: FreepikProvider) -> None:
    refusal = offline.callback_refusal(headers(), BODY, 1_700_000_000 + 301, NO_FETCH) or ""
    assert "300 s" in refusal


# -- against the simulator --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"image_url": IMG},
        {"image_url": IMG, "audio_url": AUDIO, "seed": 7},
        {"image_url": IMG, "last_frame_url": LAST, "negative_prompt": "blur"},
        {"video_url": CLIP},
        {"video_url": CLIP, "last_frame_url": LAST, "prompt_extend": False, "resolution": "720p"},
    ],
)
def test_the_simulator_takes_every_mode_as_the_adapter_sends_it(
    stalled: tuple[FreepikSimulator, FreepikProvider, ProviderClient], fields: dict[str, Any]
) -> None:
    sim, adapter, client = stalled
    req = VideoRequest.model_validate(fields)
    job = submit(adapter, client, req)
    stored = sim.tasks[job]
    assert stored.request == sent(adapter.submit(req, req.resolved_mode(), None))
    assert stored.short_side == (720 if req.resolution == "720p" else 1080)
    assert adapter.parse_status(client.send(adapter.status(job))).raw_status == "CREATED"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"resolution": "720p"}, "resolution"),  # lower-case p is not Freepik's spelling
        ({"resolution": "4K"}, "resolution"),
        ({"duration": 1}, "duration"),
        ({"duration": 16}, "duration"),
        ({"duration": "5"}, "duration"),
        ({"seed": -1}, "seed"),
        ({"seed": 2_147_483_648}, "seed"),
        ({"prompt": "p" * 5001}, "prompt"),
        ({"negative_prompt": "n" * 501}, "negative_prompt"),
        ({"start_image_url": "ftp://cdn.example.com/a.png"}, "start_image_url"),
        ({"additional_settings": {"prompt_extend": "yes"}}, "additional_settings.prompt_extend"),
        ({"start_image_url": None}, "start_image_url"),
        ({"video_url": CLIP}, "video_url"),
        ({"start_image_url": None, "video_url": CLIP, "audio_url": AUDIO}, "audio_url"),
    ],
)
def test_invalid_bodies_are_400_naming_the_parameter(
    stalled: tuple[FreepikSimulator, FreepikProvider, ProviderClient], changes: dict[str, Any], field: str
) -> None:
    _, adapter, client = stalled
    body = {k: v for k, v in {"start_image_url": IMG, **changes}.items() if v is not None}
    raw = client.send(adapter.request("POST", PATH, body))
    assert raw.status_code == 400
    assert [p["field"] for p in raw.json()["invalid_params"]] == [field]
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(raw)
    assert (caught.value.status_code, caught.value.code) == (400, "invalid_params")
    assert field in str(caught.value)


def test_a_wrong_key_is_a_401_with_freepiks_message(
    stalled: tuple[FreepikSimulator, FreepikProvider, ProviderClient],
) -> None:
    sim, _, client = stalled
    wrong = freepik.PROVIDER.build(sim.base_url, "not-the-key")
    bearer = httpx.Request(
        "GET", f"{sim.base_url}{PATH}/x", headers={"Authorization": f"Bearer {sim.api_key}"}
    )
    assert client.send(bearer).status_code == 401  # the key counts only in x-freepik-api-key
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(client.send(wrong.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None)))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (
        401,
        "unauthorized",
        "Invalid API key",
    )


def test_an_unknown_task_is_a_404(stalled: tuple[FreepikSimulator, FreepikProvider, ProviderClient]) -> None:
    sim, adapter, client = stalled
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_status(client.send(adapter.status(sim.never_issued)))
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")


def test_a_429_carries_retry_after_and_freepiks_message(
    sim: FreepikSimulator, adapter: FreepikProvider, client: ProviderClient
) -> None:
    sim.faults.rate_limit_submits, sim.faults.retry_after = 1, 30
    raw = client.http.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    assert (raw.status_code, raw.headers["Retry-After"], raw.json()) == (
        429,
        "30",
        {"message": "Rate limit exceeded"},
    )
    with pytest.raises(ProviderRateLimited) as caught:
        adapter.parse_submit(raw)
    assert caught.value.retry_after == 30
    assert sim.tasks == {}


def test_a_server_error_in_freepiks_body_is_an_unknown_outcome(
    sim: FreepikSimulator, adapter: FreepikProvider, client: ProviderClient
) -> None:
    sim.faults.fail_submits = 1
    raw = client.http.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    assert (raw.status_code, raw.json()) == (500, {"message": "Internal Server Error"})
    sim.faults.fail_submits = 1
    with pytest.raises(SubmitOutcomeUnknown):  # no 5xx is documented as "no job made"
        submit(adapter, client, VideoRequest(image_url=IMG))
    assert sim.submits == 2  # the first raw send and this one, never resent


def test_a_job_runs_to_completed_with_the_video_in_generated(
    adapter: FreepikProvider, client: ProviderClient, sample_url: str
) -> None:
    job = submit(adapter, client, VideoRequest(image_url=sample_url, duration=2, resolution="720p"))
    seen = poll(adapter, client, job)
    assert seen[-1].raw_status == "COMPLETED"
    body = client.send(adapter.status(job)).json()
    assert body["data"]["generated"] == [seen[-1].result_url]
    assert httpx.get(seen[-1].result_url or "").content[4:8] == b"ftyp"


def test_a_failed_job_reads_failed_with_its_reason(
    sim: FreepikSimulator, adapter: FreepikProvider, client: ProviderClient
) -> None:
    sim.faults.fail_render = "the image could not be read"
    job = submit(adapter, client, VideoRequest(image_url=IMG, duration=2))
    final = poll(adapter, client, job)[-1]
    assert (final.state, final.raw_status, final.result_url) == (ProviderState.FAILED, "FAILED", None)
    assert final.error_message == "the image could not be read"


# -- webhooks from the simulator --------------------------------------------------------------------


def test_a_webhook_arrives_for_every_status_change_each_signed(
    sim: FreepikSimulator,
    adapter: FreepikProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    job = submit(adapter, client, req, receiver.url)
    # The GET answer without its `data` wrapper, once per change: IN_PROGRESS, then COMPLETED (no CREATED).
    changes = ["COMPLETED", "IN_PROGRESS"]
    wait_until(lambda: sorted(b["status"] for b in receiver.bodies) == changes, seconds=20)
    wait_until(lambda: len(sim.callbacks_settled) == 2)
    assert sorted(b["status"] for b in receiver.bodies) == changes
    completed = next(b for b in receiver.bodies if b["status"] == "COMPLETED")
    assert completed == client.send(adapter.status(job)).json()["data"]
    for delivery in receiver.deliveries:
        signed = lowered(delivery)
        stamp = signed["webhook-timestamp"]
        assert signed["webhook-signature"] == sign(
            sim.webhook_secret, signed["webhook-id"], stamp, delivery.body
        )
        assert adapter.callback_refusal(signed, delivery.body, float(stamp), NO_FETCH) is None
        assert adapter.callback_refusal(signed, delivery.body, float(stamp) + 301, NO_FETCH)  # stale
        forged = {**signed, "webhook-signature": sign("guess", signed["webhook-id"], stamp, delivery.body)}
        assert adapter.callback_refusal(forged, delivery.body, float(stamp), NO_FETCH)
        assert adapter.callback_task_id(delivery.body) == job
    assert len({lowered(d)["webhook-id"] for d in receiver.deliveries}) == 2  # one message per change


def test_a_failed_delivery_is_retried_with_the_same_signed_message(
    sim: FreepikSimulator, adapter: FreepikProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    receiver.answers = [500]
    job = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[job])  # ended on Freepik's side: FAILED, and its webhook
    wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(job, "delivered")]
    assert [code for _, code in sim.callbacks_sent] == [500, 200]
    first, second = receiver.deliveries
    assert (first.body, lowered(first)["webhook-signature"]) == (
        second.body,
        lowered(second)["webhook-signature"],
    )
    assert adapter.parse_status(client.send(adapter.status(job))).raw_status == "FAILED"


def test_a_lost_submit_answer_leaves_a_job_its_webhook_names_but_no_echo_to_adopt_it_by(
    sim: FreepikSimulator, adapter: FreepikProvider, client: ProviderClient, receiver: Receiver
) -> None:
    sim.faults.stall = True
    sim.faults.hang_submit_after_accept = True
    built = adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, receiver.url)
    with pytest.raises(SubmitOutcomeUnknown):
        ProviderClient(timeout=0.3, sleep=lambda s: None).send(built, is_submit=True)
    assert sim.submits == 1
    [job] = sim.tasks
    sim.cancel_task(sim.tasks[job])
    [body] = receiver.wait_for(1)
    assert adapter.callback_task_id(json.dumps(body).encode()) == job
    # Freepik's status answer does not carry the webhook_url (docs/adapter-contract.md, section 5): the
    # gateway cannot tie the job to the task, so it waits out its reconcile window instead of adopting it.
    assert "webhook_url" not in client.send(adapter.status(job)).text
