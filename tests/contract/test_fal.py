"""The `fal` adapter: its requests and its parsing of fal's documented queue bodies, then the adapter against
FalSimulator over loopback (submit, status, result, cancel, errors, signed webhooks). What every host shares
(rate limits, retries, unknown words, expired links, lost answers, cancel) is in test_engine.py."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from i2v.models import MAX_SEED, Mode, VideoRequest
from i2v.providers import fal
from i2v.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderUnavailable,
    SubmitOutcomeUnknown,
)
from i2v.providers.client import ProviderClient
from i2v.providers.fal import DEFAULT_BASE_URL, FalProvider
from i2v.runtime import DocumentUnavailable
from i2v_local.sim_fal import USER_ID, FalSimulator
from tests.contract.drive import Receiver, poll, wait_until

IMG, LAST, CLIP, AUDIO = (
    "https://cdn.example.com/first.png",
    "https://cdn.example.com/last.png",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/voice.mp3",
)
JOB = "764cabcf-b745-4b3e-ae38-1200304cf45b"  # the queue page's example request id


@pytest.fixture
def offline() -> FalProvider:
    return fal.PROVIDER.build(DEFAULT_BASE_URL, "k-123")  # type: ignore[return-value]


@pytest.fixture
def sim() -> Iterator[FalSimulator]:
    with FalSimulator(render_scale=0.34) as running:
        running.callback_retries = (0.05, 0.1)  # the documented 10 retries over 2 h, shortened for tests
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: FalSimulator) -> FalProvider:
    return fal.PROVIDER.build(sim.base_url, sim.api_key)  # type: ignore[return-value]


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def submit(
    adapter: FalProvider, client: ProviderClient, req: VideoRequest, callback: str | None = None
) -> str:
    return adapter.parse_submit(client.send(adapter.submit(req, req.resolved_mode(), callback)))


def public_json(url: str) -> Any:
    return httpx.get(url).json()


# -- the declaration ------------------------------------------------------------------------------


def test_declaration_has_the_documented_key_form_concurrency_and_prices() -> None:
    declared = fal.PROVIDER
    assert declared.auth.headers("abc") == {"Authorization": "Key abc"}
    assert declared.max_in_flight == 2
    assert dict(declared.price) == {"720p": 0.10, "1080p": 0.15}
    assert declared.default_base_url == "https://queue.fal.run"


# -- mapping every mode and option ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "media"),
    [
        (VideoRequest(image_url=IMG), {"image_url": IMG}),
        (VideoRequest(image_url=IMG, last_frame_url=LAST), {"image_url": IMG, "end_image_url": LAST}),
        (VideoRequest(video_url=CLIP), {"video_url": CLIP}),
        (VideoRequest(video_url=CLIP, last_frame_url=LAST), {"video_url": CLIP, "end_image_url": LAST}),
        (VideoRequest(image_url=IMG, audio_url=AUDIO), {"image_url": IMG, "audio_url": AUDIO}),
    ],
)
def test_each_mode_goes_to_the_model_path_with_fals_fields(
    offline: FalProvider, req: VideoRequest, media: dict[str, str]
) -> None:
    built = offline.submit(req, req.resolved_mode(), None)
    assert (built.method, str(built.url)) == ("POST", "https://queue.fal.run/fal-ai/wan/v2.7/image-to-video")
    assert built.headers["Authorization"] == "Key k-123"
    assert json.loads(built.content) == {
        **media,
        "resolution": "1080p",
        "duration": 5,
        "enable_prompt_expansion": True,
    }


def test_every_option_is_sent_and_the_webhook_goes_in_the_query(offline: FalProvider) -> None:
    req = VideoRequest(
        image_url=IMG,
        prompt="a cat turns",
        negative_prompt="blur",
        resolution="720p",
        duration=15,
        seed=0,
        prompt_extend=False,
    )
    hook = "https://gw.example.com/v1/callbacks/fal/vid_1?token=a&b=c"
    built = offline.submit(req, Mode.FIRST_FRAME, hook)
    assert built.url.params["fal_webhook"] == hook
    assert json.loads(built.content) == {
        "image_url": IMG,
        "prompt": "a cat turns",
        "negative_prompt": "blur",
        "resolution": "720p",
        "duration": 15,
        "seed": 0,
        "enable_prompt_expansion": False,
    }


def test_what_fal_has_no_field_for_is_refused_by_name() -> None:
    caps = fal.PROVIDER.capabilities
    refusal = caps.refusal(VideoRequest(image_url=IMG, watermark=True), Mode.FIRST_FRAME)
    assert "watermark" in (refusal or "")
    # and nothing else a Wan 2.7 request can carry is refused
    full = VideoRequest(image_url=IMG, last_frame_url=LAST, audio_url=AUDIO, seed=0, negative_prompt="n")
    assert caps.refusal(full, Mode.FIRST_LAST_FRAME) is None
    assert caps.refusal(VideoRequest(video_url=CLIP, duration=2), Mode.VIDEO_CONTINUATION) is None


def test_status_result_and_cancel_use_the_app_id_not_the_model_path(offline: FalProvider) -> None:
    assert str(offline.status(JOB).url) == f"https://queue.fal.run/fal-ai/wan/requests/{JOB}"
    cancel = offline.cancel(JOB)
    assert cancel is not None
    assert (cancel.method, str(cancel.url)) == (
        "PUT",
        f"https://queue.fal.run/fal-ai/wan/requests/{JOB}/cancel",
    )


# -- the documented bodies ------------------------------------------------------------------------


def test_the_documented_submit_answer_gives_the_request_id(offline: FalProvider) -> None:
    base = f"https://queue.fal.run/fal-ai/wan/requests/{JOB}"
    answer = {
        "request_id": JOB,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
        "queue_position": 0,
    }
    assert offline.parse_submit(response(answer)) == JOB
    # the webhooks page's shorter answer
    assert offline.parse_submit(response({"request_id": JOB, "gateway_request_id": JOB})) == JOB


def test_a_status_url_elsewhere_than_we_would_build_is_an_error_keeping_the_answer(
    offline: FalProvider,
) -> None:
    elsewhere = f"https://queue.fal.run/fal-ai/wan/v2.7/image-to-video/requests/{JOB}/status"
    with pytest.raises(ProviderError) as caught:
        offline.parse_submit(response({"request_id": JOB, "status_url": elsewhere}))
    assert caught.value.code == "unexpected_status_url"
    assert elsewhere in caught.value.raw


@pytest.mark.parametrize(
    ("body", "state", "raw"),
    [
        (
            {"status": "IN_QUEUE", "request_id": JOB, "queue_position": 3},
            ProviderState.QUEUED,
            "IN_QUEUE (position 3)",
        ),
        ({"status": "IN_QUEUE", "request_id": JOB}, ProviderState.QUEUED, "IN_QUEUE"),
        ({"status": "IN_PROGRESS", "request_id": JOB, "logs": []}, ProviderState.PROCESSING, "IN_PROGRESS"),
    ],
)
def test_queue_statuses_show_the_position(
    offline: FalProvider, body: dict[str, Any], state: ProviderState, raw: str
) -> None:
    status = offline.parse_status(response(body, 202))
    assert (status.state, status.raw_status) == (state, raw)


def test_a_failed_request_is_completed_with_an_error_and_reads_as_failed(offline: FalProvider) -> None:
    body = {
        "status": "COMPLETED",
        "request_id": JOB,
        "error": "Content policy violation",
        "error_type": "content_policy_violation",
    }
    status = offline.parse_status(response(body))
    assert status.state is ProviderState.FAILED
    assert (status.raw_status, status.error_code, status.error_message) == (
        "COMPLETED",
        "content_policy_violation",
        "Content policy violation",
    )


def test_completed_without_error_or_output_is_not_yet_a_success(offline: FalProvider) -> None:
    status = offline.parse_status(response({"status": "COMPLETED", "request_id": JOB}))
    assert (status.state, status.result_url) == (ProviderState.PROCESSING, None)


def test_a_result_fetched_too_early_is_still_running_not_a_failure(offline: FalProvider) -> None:
    # GUESS (undocumented): the result call of an unfinished request may answer 400 with a plain detail.
    status = offline.parse_status(response({"detail": "Request is still in progress"}, 400))
    assert status.state is ProviderState.PROCESSING
    with pytest.raises(ProviderRejected):  # any other 400 is a refusal
        offline.parse_status(response({"detail": "Bad request"}, 400))


def test_the_model_output_is_success_with_the_video_url(offline: FalProvider) -> None:
    body = {"video": {"url": "https://v3.fal.media/files/x/out.mp4", "content_type": "video/mp4"}, "seed": 7}
    status = offline.parse_status(response(body))
    assert (status.state, status.result_url) == (
        ProviderState.SUCCEEDED,
        "https://v3.fal.media/files/x/out.mp4",
    )


def test_a_model_error_body_on_the_result_is_a_failure_with_its_type(offline: FalProvider) -> None:
    body = {
        "detail": [
            {
                "loc": ["body", "image_url"],
                "msg": "Image too small",
                "type": "image_too_small",
                "ctx": {"min_width": 240, "min_height": 240},
            }
        ]
    }
    status = offline.parse_status(response(body, 422))
    assert (status.state, status.error_code, status.error_message) == (
        ProviderState.FAILED,
        "image_too_small",
        "image_url: Image too small",
    )


# -- against the simulator ------------------------------------------------------------------------


def test_submit_answers_with_the_urls_the_adapter_builds(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    raw = client.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    job = adapter.parse_submit(raw)
    assert raw.json()["status_url"] == f"{sim.base_url}/fal-ai/wan/requests/{job}/status"
    assert raw.json()["cancel_url"] == f"{sim.base_url}/fal-ai/wan/requests/{job}/cancel"
    assert str(adapter.status(job).url) == raw.json()["response_url"]


def test_queued_jobs_show_their_queue_position(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    first = submit(adapter, client, VideoRequest(image_url=IMG))
    second = submit(adapter, client, VideoRequest(image_url=IMG))
    assert adapter.parse_status(client.send(adapter.status(first))).raw_status == "IN_QUEUE (position 0)"
    assert adapter.parse_status(client.send(adapter.status(second))).raw_status == "IN_QUEUE (position 1)"
    documented = client.send(adapter.request("GET", f"/fal-ai/wan/requests/{second}/status")).json()
    assert (documented["status"], documented["queue_position"]) == ("IN_QUEUE", 1)


def test_a_job_runs_to_an_mp4(adapter: FalProvider, client: ProviderClient, sample_url: str) -> None:
    job = submit(adapter, client, VideoRequest(image_url=sample_url, duration=2, resolution="720p"))
    final = poll(adapter, client, job)[-1]
    assert final.state is ProviderState.SUCCEEDED
    assert httpx.get(final.result_url or "").content[4:8] == b"ftyp"


def test_a_failed_render_reads_as_failed_on_both_urls(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient
) -> None:
    sim.faults.fail_render = "Content policy violation"
    job = submit(adapter, client, VideoRequest(image_url=IMG))
    final = poll(adapter, client, job)[-1]
    assert (final.state, final.error_code) == (ProviderState.FAILED, "content_policy_violation")
    documented = client.send(adapter.request("GET", f"/fal-ai/wan/requests/{job}/status")).json()
    assert (documented["status"], documented["error"]) == ("COMPLETED", "Content policy violation")


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        ({"resolution": "720P"}, "resolution", "enum"),
        ({"duration": 1}, "duration", "enum"),
        ({"duration": 16}, "duration", "enum"),
        ({"seed": -1}, "seed", "greater_than_equal"),
        ({"seed": MAX_SEED + 1}, "seed", "less_than_equal"),
        ({"prompt": "p" * 5001}, "prompt", "string_too_long"),
        ({"negative_prompt": "n" * 501}, "negative_prompt", "string_too_long"),
        ({"video_url": CLIP}, "video_url", "value_error"),  # cannot be combined with image_url
        ({"image_url": None}, "image_url", "value_error"),
        ({"enable_prompt_expansion": "yes"}, "enable_prompt_expansion", "bool_type"),
        ({"image_url": "ftp://example.com/a.png"}, "image_url", "url_parsing"),
    ],
)
def test_invalid_submits_are_422_with_a_detail_list(
    sim: FalSimulator,
    adapter: FalProvider,
    client: ProviderClient,
    changes: dict[str, Any],
    field: str,
    kind: str,
) -> None:
    sim.faults.stall = True
    body = {k: v for k, v in {"image_url": IMG, **changes}.items() if v is not None}
    raw = client.send(adapter.request("POST", fal.MODEL_PATH, body))
    assert raw.status_code == 422
    assert raw.headers["X-Fal-Retryable"] == "false"
    [item] = raw.json()["detail"]
    assert (item["loc"], item["type"]) == (["body", field], kind)
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(raw)
    assert (caught.value.status_code, caught.value.code) == (422, kind)
    assert str(caught.value).startswith(f"{field}: ")
    assert sim.tasks == {}


def test_wrong_key_is_a_401(sim: FalSimulator, client: ProviderClient) -> None:
    wrong = fal.PROVIDER.build(sim.base_url, "not-the-key")
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(client.send(wrong.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None)))
    assert caught.value.status_code == 401
    assert "detail" in json.loads(caught.value.raw)


def test_a_429_carries_retry_after_and_a_500_the_errors_page_body(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient
) -> None:
    sim.faults.rate_limit_submits, sim.faults.retry_after = 1, 30
    limited = client.http.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "30")
    with pytest.raises(ProviderRateLimited) as caught:
        adapter.parse_submit(limited)
    assert caught.value.retry_after == 30
    sim.faults.fail_submits = 1
    outage = client.http.send(adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None))
    with pytest.raises(ProviderUnavailable) as failed:
        adapter.parse_submit(outage)
    assert (failed.value.status_code, failed.value.code) == (500, "internal_server_error")


def test_cancel_answers_as_documented(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    job = submit(adapter, client, VideoRequest(image_url=IMG))
    cancel = adapter.cancel(job)
    assert cancel is not None
    first = client.send(cancel)
    assert (first.status_code, first.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    again = client.send(cancel)
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    unknown = client.send(adapter.cancel(FalSimulator.never_issued))  # type: ignore[arg-type]
    assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})
    assert adapter.parse_status(client.send(adapter.status(job))).state is ProviderState.CANCELLED


def test_a_lost_submit_answer_leaves_a_job_the_webhook_names(
    sim: FalSimulator, adapter: FalProvider, receiver: Receiver
) -> None:
    sim.faults.hang_submit_after_accept = True
    sim.faults.stall = True
    hasty = ProviderClient(timeout=0.3, sleep=lambda s: None)
    with pytest.raises(SubmitOutcomeUnknown):
        hasty.send(
            adapter.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, receiver.url), is_submit=True
        )
    [job] = sim.tasks
    sim.cancel_task(sim.tasks[job])
    receiver.wait_for(1)
    assert adapter.callback_task_id(receiver.deliveries[0].body) == job


# -- webhooks -------------------------------------------------------------------------------------


def test_webhook_habits_are_the_documented_ones() -> None:
    assert FalSimulator.callback_timeout == 15.0
    assert len(FalSimulator.callback_retries) == 10
    assert sum(FalSimulator.callback_retries) == 2 * 3600


def test_a_finished_job_posts_a_signed_ok_webhook_that_verifies(
    adapter: FalProvider, client: ProviderClient, receiver: Receiver, sample_url: str
) -> None:
    job = submit(
        adapter, client, VideoRequest(image_url=sample_url, duration=2, resolution="720p"), receiver.url
    )
    receiver.wait_for(1)
    delivery = receiver.deliveries[0]
    body = delivery.json()
    assert (body["request_id"], body["status"]) == (job, "OK")
    assert httpx.get(body["payload"]["video"]["url"]).content[4:8] == b"ftyp"
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert (headers["x-fal-webhook-request-id"], headers["x-fal-webhook-user-id"]) == (job, USER_ID)
    assert adapter.callback_task_id(delivery.body) == job
    assert adapter.callback_refusal(headers, delivery.body, time.time(), public_json) is None


def signed_error_webhook(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient, receiver: Receiver
) -> tuple[dict[str, str], bytes]:
    sim.faults.stall = True
    job = submit(adapter, client, VideoRequest(image_url=IMG), receiver.url)
    sim.cancel_task(sim.tasks[job])
    receiver.wait_for(1)
    delivery = receiver.deliveries[0]
    assert delivery.json()["status"] == "ERROR"
    return {k.lower(): v for k, v in delivery.headers.items()}, delivery.body


def test_a_forged_stale_or_unsigned_webhook_is_refused(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient, receiver: Receiver
) -> None:
    headers, body = signed_error_webhook(sim, adapter, client, receiver)
    now = float(headers["x-fal-webhook-timestamp"])
    assert adapter.callback_refusal(headers, body, now, public_json) is None
    forged = body.replace(b'"ERROR"', b'"OK"')
    assert "no key" in (adapter.callback_refusal(headers, forged, now, public_json) or "")
    assert "300" in (adapter.callback_refusal(headers, body, now + 301, public_json) or "")
    assert "300" in (adapter.callback_refusal(headers, body, now - 301, public_json) or "")
    assert adapter.callback_refusal(headers, body, now + 299, public_json) is None
    unsigned = {k: v for k, v in headers.items() if k != "x-fal-webhook-signature"}
    assert "x-fal-webhook-signature" in (adapter.callback_refusal(unsigned, body, now, public_json) or "")
    other_user = {**headers, "x-fal-webhook-user-id": "someone-else"}
    assert adapter.callback_refusal(other_user, body, now, public_json) is not None


def test_a_signature_by_another_key_is_refused_and_unreachable_keys_decide_nothing(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient, receiver: Receiver
) -> None:
    headers, body = signed_error_webhook(sim, adapter, client, receiver)
    now = float(headers["x-fal-webhook-timestamp"])
    stranger = FalSimulator()  # a key pair of its own, never started
    message = "\n".join(
        (
            headers["x-fal-webhook-request-id"],
            USER_ID,
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(body).hexdigest(),
        )
    ).encode()
    forged = {**headers, "x-fal-webhook-signature": stranger.signing_key.sign(message).hex()}
    assert adapter.callback_refusal(forged, body, now, public_json) is not None

    def unreachable(url: str) -> Any:
        raise DocumentUnavailable(f"{url}: no route")

    # Neither accepted nor refused: the gateway answers 503 and fal sends the webhook again.
    with pytest.raises(DocumentUnavailable):
        adapter.callback_refusal(headers, body, now, unreachable)


def test_the_jwks_is_fals_documented_one_at_the_default_host_and_the_simulators_elsewhere(
    sim: FalSimulator, offline: FalProvider, adapter: FalProvider
) -> None:
    assert offline.jwks_url == "https://rest.fal.ai/.well-known/jwks.json"
    assert adapter.jwks_url == f"{sim.base_url}/.well-known/jwks.json"
    [key] = httpx.get(adapter.jwks_url).json()["keys"]  # public: no key needed
    assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")


def test_webhook_deliveries_are_retried_on_non_2xx_until_one_succeeds(
    sim: FalSimulator, adapter: FalProvider, client: ProviderClient, receiver: Receiver
) -> None:
    receiver.answers = [500, 204]
    headers, _ = signed_error_webhook(sim, adapter, client, receiver)
    wait_until(lambda: bool(sim.callbacks_settled))
    assert [code for _, code in sim.callbacks_sent] == [500, 204]
    assert headers["x-fal-webhook-request-id"] == sim.callbacks_settled[0][0]
