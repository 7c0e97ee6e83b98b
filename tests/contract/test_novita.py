"""The `novita` adapter, and `highway` (the same adapter configured for HighwayAPI), against the simulator.
What every host shares (rate limits, retries, unknown words, expired links, lost answers) is in
test_engine.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.highway import PROVIDER as HIGHWAY
from i2v.providers.novita import DEFAULT_BASE_URL, NovitaProvider, parse_task_result
from i2v.providers.novita import PROVIDER as NOVITA
from i2v_local.sim_highway import HighwaySimulator
from i2v_local.sim_novita import NovitaSimulator
from tests.contract.drive import Receiver, poll, wait_until

ADAPTERS = {"novita": NOVITA.build, "highway": HIGHWAY.build}
SIMULATORS: dict[str, type[NovitaSimulator]] = {"novita": NovitaSimulator, "highway": HighwaySimulator}
IMAGE, LAST, CLIP, AUDIO = (
    "https://in.example/first.png",
    "https://in.example/last.png",
    "https://in.example/clip.mp4",
    "https://in.example/beat.mp3",
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(params=["novita", "highway"])
def sim(request: pytest.FixtureRequest) -> Iterator[NovitaSimulator]:
    with SIMULATORS[request.param](render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def novita_sim() -> Iterator[NovitaSimulator]:
    """Webhooks exist only on Novita, so callback tests use this one."""
    with NovitaSimulator(render_scale=0.34) as running:
        running.callback_retries = tuple(wait / 100 for wait in NovitaSimulator.callback_retries)
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: NovitaSimulator) -> NovitaProvider:
    return ADAPTERS[sim.name](sim.base_url, sim.api_key)


def submit(
    adapter: NovitaProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), callback), is_submit=True)
    )


def response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


# -- the adapter, sans I/O: built requests ---------------------------------------------------------


def test_submit_builds_novitas_flat_body_with_our_values_explicit() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "key-1")
    built = adapter.submit(VideoRequest(prompt="a cat turns", image_url=IMAGE), Mode.FIRST_FRAME, None)
    assert built.method == "POST"
    assert str(built.url) == "https://api.novita.ai/v3/async/wan2.7-i2v"
    assert built.headers["Authorization"] == "Bearer key-1"
    assert built.headers["Content-Type"] == "application/json"
    assert json.loads(built.content) == {
        "prompt": "a cat turns",
        "image_url": IMAGE,
        "resolution": "1080P",
        "duration": 5,
        "prompt_extend": True,
        "watermark": False,
    }


def test_submit_sends_720p_upper_case_and_optional_fields_when_set() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    req = VideoRequest(
        image_url=IMAGE,
        resolution="720p",
        duration=12,
        prompt_extend=False,
        watermark=True,
        seed=0,
        negative_prompt="blur",
    )
    body = json.loads(adapter.submit(req, req.resolved_mode(), None).content)
    assert body["resolution"] == "720P"
    assert (body["duration"], body["prompt_extend"], body["watermark"]) == (12, False, True)
    assert (body["seed"], body["negative_prompt"]) == (0, "blur")


@pytest.mark.parametrize(
    ("media", "fields"),
    [
        ({"image_url": IMAGE}, {"image_url": IMAGE}),
        ({"image_url": IMAGE, "audio_url": AUDIO}, {"image_url": IMAGE, "driving_audio_url": AUDIO}),
        ({"image_url": IMAGE, "last_frame_url": LAST}, {"image_url": IMAGE, "last_frame_url": LAST}),
        (
            {"image_url": IMAGE, "last_frame_url": LAST, "audio_url": AUDIO},
            {"image_url": IMAGE, "last_frame_url": LAST, "driving_audio_url": AUDIO},
        ),
        ({"video_url": CLIP}, {"first_clip_url": CLIP}),
        ({"video_url": CLIP, "last_frame_url": LAST}, {"first_clip_url": CLIP, "last_frame_url": LAST}),
    ],
    ids=["first", "first+audio", "first+last", "first+last+audio", "clip", "clip+last"],
)
def test_each_media_combination_maps_to_novitas_fields(media: dict[str, str], fields: dict[str, str]) -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    req = VideoRequest.model_validate(media)
    body = json.loads(adapter.submit(req, req.resolved_mode(), None).content)
    media_fields = ("image_url", "last_frame_url", "first_clip_url", "driving_audio_url")
    sent = {k: v for k, v in body.items() if k in media_fields}
    assert sent == fields


def test_callback_url_goes_in_extra_webhook_url() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    cb = "https://gw.example/v1/callbacks/novita/vid_1?token=abc"
    body = json.loads(adapter.submit(VideoRequest(image_url=IMAGE), Mode.FIRST_FRAME, cb).content)
    assert body["extra"] == {"webhook": {"url": cb}}


def test_status_is_a_get_of_task_result_by_query() -> None:
    built = NOVITA.build(DEFAULT_BASE_URL, "k").status("0f1e-2d")
    assert built.method == "GET"
    assert str(built.url) == "https://api.novita.ai/v3/async/task-result?task_id=0f1e-2d"
    assert built.headers["Authorization"] == "Bearer k"


def test_there_is_no_cancel_endpoint() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    assert adapter.cancel("t-1") is None
    assert adapter.capabilities.cancel is False


# -- the adapter, sans I/O: parsing documented answers ---------------------------------------------


def documented_result(status: str, **task: Any) -> dict[str, Any]:
    """The Task Result API skeleton, with `status` (and task fields) filled in.

    Source: https://novita.ai/docs/api-reference/model-apis-task-result
    """
    return {
        "extra": {
            "seed": "<string>",
            "enable_nsfw_detection": True,
            "debug_info": {
                "request_info": "",
                "submit_time_ms": "",
                "execute_time_ms": "",
                "complete_time_ms": "",
            },
        },
        "task": {
            "task_id": "<string>",
            "status": status,
            "reason": "<string>",
            "task_type": "<string>",
            "eta": 123,
            "progress_percent": 123,
            **task,
        },
        "images": [{"image_url": "", "image_url_ttl": 123, "image_type": ""}],
        "videos": [
            {"video_url": "https://cdn.example/v.mp4", "video_url_ttl": "<string>", "video_type": "<string>"}
        ],
        "audios": [{"audio_url": "", "audio_url_ttl": "", "audio_type": "", "audio_metadata": {}}],
    }


def test_parse_submit_reads_task_id() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    assert adapter.parse_submit(response(200, {"task_id": "abc-123"})) == "abc-123"
    with pytest.raises(ProviderError):
        adapter.parse_submit(response(200, {"id": "abc-123"}))


def test_parse_documented_success() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    body = documented_result("TASK_STATUS_SUCCEED", reason="", eta=0, progress_percent=100)
    status = adapter.parse_status(response(200, body))
    assert status == ProviderStatus(
        state=ProviderState.SUCCEEDED,
        raw_status="TASK_STATUS_SUCCEED",
        progress=100,
        result_url="https://cdn.example/v.mp4",
        eta_seconds=0,
    )


def test_parse_documented_failure_keeps_the_reason() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    body = {**documented_result("TASK_STATUS_FAILED", reason="image is too small"), "videos": []}
    status = adapter.parse_status(response(200, body))
    assert status.state is ProviderState.FAILED
    assert status.error_message == "image is too small"
    assert status.error_code is None  # Novita gives no failure code; the service supplies a generic one
    assert status.result_url is None


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("TASK_STATUS_QUEUED", ProviderState.QUEUED),
        ("TASK_STATUS_PROCESSING", ProviderState.PROCESSING),
        ("TASK_STATUS_SUCCEED", ProviderState.SUCCEEDED),
        ("TASK_STATUS_FAILED", ProviderState.FAILED),
        ("TASK_STATUS_CANCELED", ProviderState.CANCELLED),
    ],
)
def test_each_status_word_maps(raw: str, state: ProviderState) -> None:
    status = parse_task_result(documented_result(raw, eta=40, progress_percent=20), "")
    assert (status.state, status.raw_status) == (state, raw)
    assert (status.progress, status.eta_seconds) == (20, 40)
    assert (status.result_url is not None) == (state is ProviderState.SUCCEEDED)


def test_unknown_status_word_is_an_error_keeping_the_raw_body() -> None:
    resp = response(200, documented_result("TASK_STATUS_PENDING_REVIEW"))
    with pytest.raises(UnknownProviderStatus) as caught:
        NOVITA.build(DEFAULT_BASE_URL, "k").parse_status(resp)
    assert caught.value.code == "unknown_status"
    assert "TASK_STATUS_PENDING_REVIEW" in caught.value.raw


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "INVALID_REQUEST_BODY"),
        (401, "FAILED_TO_AUTH"),
        (403, "NOT_ENOUGH_BALANCE"),
        (404, "TASK_NOT_FOUND"),
    ],
)
def test_error_bodies_become_rejections_with_the_reason_as_code(status: int, reason: str) -> None:
    body = {"code": status, "reason": reason, "message": "something specific", "metadata": {}}
    with pytest.raises(ProviderRejected) as caught:
        NOVITA.build(DEFAULT_BASE_URL, "k").parse_submit(response(status, body))
    assert (caught.value.status_code, caught.value.code) == (status, reason)
    assert str(caught.value) == "something specific"


def test_429_and_503_are_rate_limit_and_unavailable() -> None:
    adapter = NOVITA.build(DEFAULT_BASE_URL, "k")
    limited = httpx.Response(
        429, json={"code": 429, "reason": "RATE_LIMIT_EXCEEDED"}, headers={"Retry-After": "3"}
    )
    with pytest.raises(ProviderRateLimited) as caught:
        adapter.parse_submit(limited)
    assert caught.value.retry_after == 3
    with pytest.raises(ProviderUnavailable):
        adapter.parse_status(response(503, {"code": 503, "reason": "SERVICE_NOT_AVAILABLE", "message": "x"}))


# -- against the simulator (novita and highway) ----------------------------------------------------


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, duration=2, resolution="720p")
    task_id = submit(adapter, client, req)
    assert UUID.match(task_id)
    seen = poll(adapter, client, task_id)
    assert seen[0].state in (ProviderState.QUEUED, ProviderState.PROCESSING)
    assert seen[-1].state is ProviderState.SUCCEEDED
    assert seen[-1].progress == 100
    assert [s.progress for s in seen] == sorted(s.progress or 0 for s in seen)
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    raw = client.send(adapter.status(task_id)).json()
    assert raw["videos"][0]["video_url_ttl"] == "3600"
    assert raw["task"]["task_id"] == task_id
    assert sim.tasks[task_id].request["resolution"] == "720P"


def test_queued_task_reports_progress_and_eta(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = submit(adapter, client, VideoRequest(image_url=sample_url, duration=8))
    status = adapter.parse_status(client.send(adapter.status(task_id)))
    assert (status.state, status.raw_status) == (ProviderState.QUEUED, "TASK_STATUS_QUEUED")
    assert status.progress == 0
    assert status.eta_seconds == 8


def test_render_failure_is_reported_with_the_providers_reason(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image"
    final = poll(adapter, client, submit(adapter, client, VideoRequest(image_url=sample_url)))[-1]
    assert (final.state, final.raw_status) == (ProviderState.FAILED, "TASK_STATUS_FAILED")
    assert final.error_message == "the model refused this image"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "no media"}, "image_url or first_clip_url is required"),
        ({"image_url": IMAGE, "first_clip_url": CLIP}, "mutually exclusive"),
        ({"first_clip_url": CLIP, "driving_audio_url": AUDIO}, "driving_audio_url"),
        ({"image_url": IMAGE, "duration": 16}, "duration"),
        ({"image_url": IMAGE, "resolution": "720p"}, "resolution"),
        ({"image_url": IMAGE, "seed": -1}, "seed"),
        ({"image_url": IMAGE, "negative_prompt": "x" * 501}, "negative_prompt"),
    ],
    ids=["no-media", "image+clip", "clip+audio", "duration", "resolution-case", "seed", "negative-prompt"],
)
def test_invalid_submit_is_rejected_with_the_providers_error_shape(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, body: dict[str, Any], message: str
) -> None:
    bad = adapter.request("POST", "/v3/async/wan2.7-i2v", body)
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(client.send(bad))
    assert (caught.value.status_code, caught.value.code) == (400, "INVALID_REQUEST_BODY")
    assert message in str(caught.value)
    assert json.loads(caught.value.raw).keys() == {"code", "reason", "message", "metadata"}
    assert not sim.tasks


def test_wrong_key_is_rejected(sim: NovitaSimulator, client: ProviderClient, sample_url: str) -> None:
    wrong = ADAPTERS[sim.name](sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(
            client.send(wrong.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
        )
    assert (caught.value.status_code, caught.value.code) == (401, "FAILED_TO_AUTH")


def test_key_without_model_access_is_a_403(
    sim: NovitaSimulator, client: ProviderClient, sample_url: str
) -> None:
    sim.restricted_keys.add("unverified-account")
    restricted = ADAPTERS[sim.name](sim.base_url, "unverified-account")
    with pytest.raises(ProviderRejected) as caught:
        restricted.parse_submit(
            client.send(restricted.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
        )
    assert (caught.value.status_code, caught.value.code) == (403, "ACCESS_DENY")


def test_task_cancelled_provider_side_reads_as_cancelled(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, sample_url: str
) -> None:
    # No cancel endpoint to call; a task cancelled on the host's side (console, moderation) must still end.
    sim.faults.stall = True
    task_id = submit(adapter, client, VideoRequest(image_url=sample_url))
    assert client.send(httpx.Request("POST", f"{sim.base_url}/v3/async/task-cancel")).status_code == 404
    sim.cancel_task(sim.tasks[task_id])
    status = adapter.parse_status(client.send(adapter.status(task_id)))
    assert (status.state, status.raw_status) == (ProviderState.CANCELLED, "TASK_STATUS_CANCELED")


def test_rate_limits_and_outages_come_in_novitas_error_body(
    sim: NovitaSimulator, adapter: NovitaProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.rate_limit_polls, sim.faults.retry_after, sim.faults.fail_submits = 1, 30, 1
    limited = client.http.send(adapter.status("any"))  # the bare answer, before the engine retries
    req = VideoRequest(image_url=sample_url)
    outage = client.http.send(adapter.submit(req, req.resolved_mode(), None))
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "30")
    assert (limited.json()["reason"], outage.status_code, outage.json()["reason"]) == (
        "RATE_LIMIT_EXCEEDED",
        503,
        "SERVICE_NOT_AVAILABLE",
    )
    assert limited.json().keys() == outage.json().keys() == {"code", "reason", "message", "metadata"}


# -- webhooks (Novita only) ------------------------------------------------------------------------


@pytest.fixture
def novita(novita_sim: NovitaSimulator) -> NovitaProvider:
    return NOVITA.build(novita_sim.base_url, novita_sim.api_key)


def test_documented_webhook_timeout_and_five_retries() -> None:
    assert NovitaSimulator.callback_timeout == 5.0
    assert len(NovitaSimulator.callback_retries) == 5


def test_callback_carries_the_task_result_as_payload(
    novita_sim: NovitaSimulator,
    novita: NovitaProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    task_id = submit(novita, client, VideoRequest(image_url=sample_url, duration=2), receiver.url)
    poll(novita, client, task_id)
    wait_until(lambda: len(receiver.deliveries) == 1)
    body = receiver.deliveries[0].json()
    assert body.keys() == {"event_type", "payload"}
    assert body["event_type"] == "ASYNC_TASK_RESULT"
    assert body["payload"] == client.send(novita.status(task_id)).json()
    status = parse_task_result(body["payload"], json.dumps(body))
    assert status.state is ProviderState.SUCCEEDED
    assert httpx.get(status.result_url or "").content[4:8] == b"ftyp"


def test_callback_is_retried_five_times_on_non_2xx(
    novita_sim: NovitaSimulator,
    novita: NovitaProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    receiver.answers = [500] * 10
    novita_sim.faults.fail_render = "refused"
    task_id = submit(novita, client, VideoRequest(image_url=sample_url), receiver.url)
    wait_until(lambda: bool(novita_sim.callbacks_settled))
    assert novita_sim.callbacks_settled == [(task_id, "gave up")]
    assert [status for _, status in novita_sim.callbacks_sent] == [500] * 6  # the first try and 5 retries
    assert all(body["payload"]["task"]["status"] == "TASK_STATUS_FAILED" for body in receiver.bodies)


def test_callback_retries_stop_at_the_first_2xx(
    novita_sim: NovitaSimulator,
    novita: NovitaProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    receiver.answers = [503, 429]
    novita_sim.faults.fail_render = "refused"
    task_id = submit(novita, client, VideoRequest(image_url=sample_url), receiver.url)
    wait_until(lambda: bool(novita_sim.callbacks_settled))
    assert novita_sim.callbacks_settled == [(task_id, "delivered")]
    assert [status for _, status in novita_sim.callbacks_sent] == [503, 429, 200]


def test_duplicate_callbacks_deliver_the_same_body(
    novita_sim: NovitaSimulator,
    novita: NovitaProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    novita_sim.faults.duplicate_callbacks = 2
    novita_sim.faults.fail_render = "refused"
    submit(novita, client, VideoRequest(image_url=sample_url), receiver.url)
    wait_until(lambda: len(receiver.deliveries) == 2)
    assert receiver.deliveries[0] == receiver.deliveries[1]


def test_dropped_callbacks_leave_polling_to_find_the_result(
    novita_sim: NovitaSimulator,
    novita: NovitaProvider,
    client: ProviderClient,
    receiver: Receiver,
    sample_url: str,
) -> None:
    novita_sim.faults.drop_callbacks = True
    novita_sim.faults.fail_render = "refused"
    task_id = submit(novita, client, VideoRequest(image_url=sample_url), receiver.url)
    assert poll(novita, client, task_id)[-1].state is ProviderState.FAILED
    wait_until(lambda: bool(novita_sim.callbacks_settled))
    assert novita_sim.callbacks_settled == [(task_id, "dropped")]
    assert receiver.deliveries == []
