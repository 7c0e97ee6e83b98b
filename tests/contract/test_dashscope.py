"""The `dashscope` adapter (Alibaba Model Studio, wan2.7-i2v) against documented bodies and its simulator.
What every host shares (rate limits, retries, unknown words, expired links, lost answers) is in
test_engine.py."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import dashscope
from i2v.providers.base import (
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.providers.dashscope import DEFAULT_BASE_URL, SUBMIT_PATH, TASK_GONE, DashscopeProvider
from i2v_local.render import RenderJob, render
from i2v_local.sim_dashscope import DashscopeSimulator
from tests.contract.drive import poll

IMG, LAST, CLIP, AUDIO = (
    f"https://media.example/{name}" for name in ("first.png", "last.png", "clip.mp4", "a.mp3")
)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")  # "YYYY-MM-DD HH:mm:ss.SSS"


@pytest.fixture
def sim() -> Iterator[DashscopeSimulator]:
    with DashscopeSimulator(render_scale=0.34) as running:
        yield running  # type: ignore[misc]


@pytest.fixture
def adapter(sim: DashscopeSimulator) -> DashscopeProvider:
    return dashscope.PROVIDER.build(sim.base_url, sim.api_key)


def offline(**request: Any) -> tuple[DashscopeProvider, httpx.Request]:
    """The adapter with its real default host and the submit it builds (no I/O)."""
    adapter = dashscope.PROVIDER.build(DEFAULT_BASE_URL, "sk-test")
    req = VideoRequest(**request)
    return adapter, adapter.submit(
        req, req.resolved_mode(), "https://gw.example/v1/callbacks/dashscope/t?token=x"
    )


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def submit_raw(adapter: DashscopeProvider, client: ProviderClient, body: Any) -> httpx.Response:
    request = adapter.request("POST", SUBMIT_PATH, body)
    request.headers["X-DashScope-Async"] = "enable"
    return client.send(request, is_submit=True)


def valid_body(**parameters: Any) -> dict[str, Any]:
    return {
        "model": "wan2.7-i2v",
        "input": {"prompt": "a cat", "media": [{"type": "first_frame", "url": IMG}]},
        "parameters": {"resolution": "720P", "duration": 5, **parameters},
    }


# -- the adapter without I/O ---------------------------------------------------------------------


def test_capabilities_are_all_modes_2_to_15_s_with_audio_and_neither_callback_nor_cancel() -> None:
    caps = dashscope.PROVIDER.build(DEFAULT_BASE_URL, "k").capabilities
    assert caps.modes == frozenset(Mode)
    assert caps.durations == frozenset(range(2, 16))
    assert caps.resolutions == frozenset({"720p", "1080p"})
    assert (caps.audio, caps.callback, caps.cancel) == (True, False, False)


def test_submit_is_an_async_post_with_our_explicit_values() -> None:
    _, request = offline(
        image_url=IMG,
        audio_url=AUDIO,
        prompt="a rapper",
        negative_prompt="blur",
        resolution="720p",
        duration=10,
        prompt_extend=False,
        watermark=True,
        seed=42,
    )
    assert request.method == "POST"
    assert (
        str(request.url)
        == "https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/video-generation/video-synthesis"
    )
    assert request.headers["X-DashScope-Async"] == "enable"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "wan2.7-i2v",
        "input": {
            "prompt": "a rapper",
            "negative_prompt": "blur",
            "media": [{"type": "first_frame", "url": IMG}, {"type": "driving_audio", "url": AUDIO}],
        },
        "parameters": {
            "resolution": "720P",
            "duration": 10,
            "prompt_extend": False,
            "watermark": True,
            "seed": 42,
        },
    }


def test_submit_sends_our_defaults_even_where_dashscope_has_its_own() -> None:
    _, request = offline(image_url=IMG)
    body = json.loads(request.content)
    assert body["parameters"] == {
        "resolution": "1080P",
        "duration": 5,
        "prompt_extend": True,
        "watermark": False,
    }
    assert body["input"] == {"media": [{"type": "first_frame", "url": IMG}]}  # no empty prompt, no callback


@pytest.mark.parametrize(
    ("request_media", "expected"),
    [
        ({"image_url": IMG}, [("first_frame", IMG)]),
        ({"image_url": IMG, "audio_url": AUDIO}, [("first_frame", IMG), ("driving_audio", AUDIO)]),
        ({"image_url": IMG, "last_frame_url": LAST}, [("first_frame", IMG), ("last_frame", LAST)]),
        (
            {"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO},
            [("first_frame", IMG), ("last_frame", LAST), ("driving_audio", AUDIO)],
        ),
        ({"video_url": CLIP}, [("first_clip", CLIP)]),
        ({"video_url": CLIP, "last_frame_url": LAST}, [("first_clip", CLIP), ("last_frame", LAST)]),
    ],
    ids=["first", "first+audio", "first+last", "first+last+audio", "clip", "clip+last"],
)
def test_each_valid_media_combination_maps_to_media_types(
    request_media: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    _, request = offline(**request_media)
    assert json.loads(request.content)["input"]["media"] == [{"type": t, "url": u} for t, u in expected]


def test_a_dated_snapshot_and_another_region_are_configurable() -> None:
    beijing = DashscopeProvider(
        base_url="https://dashscope.aliyuncs.com/",
        api_key="k",
        declared=dashscope.PROVIDER,
        model="wan2.7-i2v-2026-04-25",
    )
    request = beijing.submit(VideoRequest(image_url=IMG), Mode.FIRST_FRAME, None)
    assert (
        str(request.url)
        == "https://dashscope.aliyuncs.com/api/v1/services/aigc/video-generation/video-synthesis"
    )
    assert json.loads(request.content)["model"] == "wan2.7-i2v-2026-04-25"


def test_status_is_a_plain_get_and_there_is_no_cancel() -> None:
    adapter, _ = offline(image_url=IMG)
    request = adapter.status("0385dc79-5ff8-4d82-bcb6-000000")
    assert request.method == "GET"
    assert (
        str(request.url) == "https://dashscope-intl.aliyuncs.com/api/v1/tasks/0385dc79-5ff8-4d82-bcb6-000000"
    )
    assert "X-DashScope-Async" not in request.headers
    assert adapter.cancel("0385dc79-5ff8-4d82-bcb6-000000") is None


def test_parses_the_documented_submit_answer() -> None:
    adapter, _ = offline(image_url=IMG)
    documented = {
        "output": {"task_status": "PENDING", "task_id": "0385dc79-5ff8-4d82-bcb6-xxxxxx"},
        "request_id": "4909100c-7b5a-9f92-bfe5-xxxxxx",
    }
    assert adapter.parse_submit(answer(documented)) == "0385dc79-5ff8-4d82-bcb6-xxxxxx"


def test_parses_the_documented_success() -> None:
    adapter, _ = offline(image_url=IMG)
    documented = {
        "request_id": "2ca1c497-f9e0-449d-9a3f-xxxxxx",
        "output": {
            "task_id": "af6efbc0-4bef-4194-8246-xxxxxx",
            "task_status": "SUCCEEDED",
            "submit_time": "2025-09-25 11:07:28.590",
            "scheduled_time": "2025-09-25 11:07:35.349",
            "end_time": "2025-09-25 11:17:11.650",
            "orig_prompt": "…",
            "video_url": "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/xxx.mp4?Expires=xxx",
        },
        "usage": {
            "duration": 15,
            "input_video_duration": 0,
            "output_video_duration": 15,
            "video_count": 1,
            "SR": 720,
        },
    }
    status = adapter.parse_status(answer(documented))
    assert status == ProviderStatus(
        state=ProviderState.SUCCEEDED,
        raw_status="SUCCEEDED",
        result_url="https://dashscope-result-sh.oss-accelerate.aliyuncs.com/xxx.mp4?Expires=xxx",
    )


def test_parses_the_documented_failure_with_its_code_and_message() -> None:
    adapter, _ = offline(image_url=IMG)
    documented = {
        "request_id": "e5d70b02-ebd3-98ce-9fe8-759d7d7b107d",
        "output": {
            "task_id": "86ecf553-d340-4e21-af6e-a0c6a421c010",
            "task_status": "FAILED",
            "code": "InvalidParameter",
            "message": "The size is not match xxxxxx",
        },
    }
    status = adapter.parse_status(answer(documented))
    assert status.state is ProviderState.FAILED
    assert (status.error_code, status.error_message) == ("InvalidParameter", "The size is not match xxxxxx")


def test_documented_unknown_means_the_task_is_gone_not_that_it_is_still_running() -> None:
    adapter, _ = offline(image_url=IMG)
    documented = {
        "request_id": "a4de7c32-7057-9f82-8581-xxxxxx",
        "output": {"task_id": "502a00b1-19d9-4839-a82f-xxxxxx", "task_status": "UNKNOWN"},
    }
    status = adapter.parse_status(answer(documented))
    assert status.state is ProviderState.FAILED
    assert status.raw_status == "UNKNOWN"
    assert status.error_code == TASK_GONE
    assert "24 h" in (status.error_message or "")


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("PENDING", ProviderState.QUEUED),
        ("RUNNING", ProviderState.PROCESSING),
        ("CANCELED", ProviderState.CANCELLED),
    ],
)
def test_each_in_flight_and_cancelled_status_word_maps(word: str, state: ProviderState) -> None:
    adapter, _ = offline(image_url=IMG)
    status = adapter.parse_status(
        answer({"request_id": "r", "output": {"task_id": "t", "task_status": word}})
    )
    assert (status.state, status.raw_status, status.error_code, status.progress) == (state, word, None, None)


def test_an_unlisted_status_word_is_an_error_keeping_the_body() -> None:
    adapter, _ = offline(image_url=IMG)
    with pytest.raises(UnknownProviderStatus) as caught:
        adapter.parse_status(
            answer({"request_id": "r", "output": {"task_id": "t", "task_status": "SUSPENDED"}})
        )
    assert caught.value.code == "unknown_status"
    assert "SUSPENDED" in caught.value.raw


def test_the_documented_error_body_becomes_a_rejection_with_its_code() -> None:
    adapter, _ = offline(image_url=IMG)
    documented = {
        "code": "InvalidApiKey",
        "message": "No API-key provided.",
        "request_id": "7438d53d-6eb8-4596-8835-xxxxxx",
    }
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(answer(documented, 401))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (
        401,
        "InvalidApiKey",
        "No API-key provided.",
    )


# -- against the simulator over loopback ---------------------------------------------------------


def test_submit_progresses_to_success_with_a_downloadable_mp4(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient, sample_url: str
) -> None:
    req = VideoRequest(image_url=sample_url, prompt="a slow zoom", duration=2, resolution="720p")
    submitted = client.send(adapter.submit(req, req.resolved_mode(), "https://gw.example/cb"), is_submit=True)
    assert uuid.UUID(submitted.json()["request_id"]).version == 4
    task_id = adapter.parse_submit(submitted)
    assert uuid.UUID(task_id).version == 4
    seen = poll(adapter, client, task_id)
    assert seen[-1].state is ProviderState.SUCCEEDED
    assert {s.raw_status for s in seen} <= {"PENDING", "RUNNING", "SUCCEEDED"}
    video = httpx.get(seen[-1].result_url or "")
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    body = client.send(adapter.status(task_id)).json()
    output = body["output"]
    assert all(TIMESTAMP.match(output[k]) for k in ("submit_time", "scheduled_time", "end_time"))
    assert output["submit_time"] <= output["scheduled_time"] <= output["end_time"]
    assert output["orig_prompt"] == "a slow zoom"
    assert body["usage"] == {
        "duration": 2,
        "input_video_duration": 0,
        "output_video_duration": 2,
        "video_count": 1,
        "SR": 720,
    }
    assert sim.callbacks_sent == []  # polling only


def test_continuation_bills_the_given_clip_as_input_duration(
    adapter: DashscopeProvider, client: ProviderClient, media_server: tuple[Path, str]
) -> None:
    folder, base = media_server
    clip = folder / "dashscope-clip.mp4"
    if not clip.exists():
        render(RenderJob(duration=2, short_side=240, first_frame=folder / "sample.png"), clip)
    req = VideoRequest(video_url=f"{base}/{clip.name}", duration=3, resolution="720p")
    task_id = adapter.parse_submit(
        client.send(adapter.submit(req, req.resolved_mode(), None), is_submit=True)
    )
    assert poll(adapter, client, task_id)[-1].state is ProviderState.SUCCEEDED
    usage = client.send(adapter.status(task_id)).json()["usage"]
    assert (usage["duration"], usage["input_video_duration"], usage["output_video_duration"]) == (3, 2, 1)


def test_render_failure_is_reported_with_the_providers_error(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.fail_render = "the model refused this image"
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    final = poll(adapter, client, task_id)[-1]
    assert (final.state, final.raw_status) == (ProviderState.FAILED, "FAILED")
    assert final.error_code == "InternalError.Algo"
    assert final.error_message == "the model refused this image"
    assert "usage" not in client.send(adapter.status(task_id)).json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (valid_body(resolution="480P"), "resolution"),
        (valid_body(resolution="720p"), "resolution"),
        (valid_body(duration=16), "duration"),
        (valid_body(duration=1), "duration"),
        (valid_body(seed=-1), "seed"),
        ({"model": "wan2.7-i2v", "input": {"prompt": "a cat"}}, "media"),
        ({"model": "wan2.7-i2v", "input": {"media": [{"type": "last_frame", "url": LAST}]}}, "combination"),
        (
            {
                "model": "wan2.7-i2v",
                "input": {
                    "media": [{"type": "first_frame", "url": IMG}, {"type": "first_clip", "url": CLIP}]
                },
            },
            "combination",
        ),
        (
            {
                "model": "wan2.7-i2v",
                "input": {
                    "media": [{"type": "first_clip", "url": CLIP}, {"type": "driving_audio", "url": AUDIO}]
                },
            },
            "combination",
        ),
        (
            {
                "model": "wan2.7-i2v",
                "input": {
                    "media": [{"type": "first_frame", "url": IMG}, {"type": "first_frame", "url": LAST}]
                },
            },
            "once",
        ),
        (
            {"model": "wan2.7-i2v", "input": {"media": [{"type": "first_frame", "url": "ftp://x/y.png"}]}},
            "url",
        ),
        (
            {"model": "wan2.6-i2v", "input": {"media": [{"type": "first_frame", "url": IMG}]}},
            "Model not exist",
        ),
    ],
    ids=[
        "resolution",
        "lower-case-resolution",
        "duration-16",
        "duration-1",
        "seed",
        "no-media",
        "last-only",
        "first+clip",
        "clip+audio",
        "duplicate-type",
        "bad-scheme",
        "unknown-model",
    ],
)
def test_invalid_submit_is_a_400_invalid_parameter(
    sim: DashscopeSimulator,
    adapter: DashscopeProvider,
    client: ProviderClient,
    body: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(submit_raw(adapter, client, body))
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidParameter")
    assert message in str(caught.value)
    assert set(json.loads(caught.value.raw)) == {"request_id", "code", "message"}
    assert sim.tasks == {}


def test_missing_model_and_input_use_dashscopes_empty_field_codes(
    adapter: DashscopeProvider, client: ProviderClient
) -> None:
    for body, code in (
        ({"input": {}}, "BadRequest.EmptyModel"),
        ({"model": "wan2.7-i2v"}, "BadRequest.EmptyInput"),
    ):
        with pytest.raises(ProviderRejected) as caught:
            adapter.parse_submit(submit_raw(adapter, client, body))
        assert (caught.value.status_code, caught.value.code) == (400, code)


def test_submit_without_the_async_header_is_refused_with_the_documented_message(
    adapter: DashscopeProvider, client: ProviderClient
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(client.send(adapter.request("POST", SUBMIT_PATH, valid_body())))
    assert caught.value.status_code == 403
    assert caught.value.code == "AccessDenied"
    assert str(caught.value) == "current user api does not support synchronous calls"


def test_a_dated_snapshot_and_defaults_are_accepted(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient
) -> None:
    sim.faults.stall = True
    body = {"model": "wan2.7-i2v-2026-04-25", "input": {"media": [{"type": "first_frame", "url": IMG}]}}
    task_id = adapter.parse_submit(submit_raw(adapter, client, body))
    assert (sim.tasks[task_id].duration, sim.tasks[task_id].short_side) == (5, 1080)  # documented defaults


@pytest.mark.parametrize(
    ("key", "status", "code", "message"),
    [
        ("not-the-key", 401, "InvalidApiKey", "Invalid API-key provided."),
        ("", 401, "InvalidApiKey", "No API-key provided."),
        ("sk-no-model-access", 403, "Model.AccessDenied", "Model access denied."),
        (
            "sk-in-arrears",
            400,
            "Arrearage",
            "Access denied, please make sure your account is in good standing.",
        ),
    ],
    ids=["wrong", "missing", "no-access", "arrears"],
)
def test_key_problems_are_rejected_in_dashscopes_shape(
    sim: DashscopeSimulator,
    client: ProviderClient,
    sample_url: str,
    key: str,
    status: int,
    code: str,
    message: str,
) -> None:
    sim.denied_keys.add("sk-no-model-access")
    sim.overdue_keys.add("sk-in-arrears")
    wrong = dashscope.PROVIDER.build(sim.base_url, key)
    request = wrong.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None)
    if not key:
        del request.headers["Authorization"]
    with pytest.raises(ProviderRejected) as caught:
        wrong.parse_submit(client.send(request))
    assert (caught.value.status_code, caught.value.code, str(caught.value)) == (status, code, message)
    assert sim.submits == 0


def test_throttling_and_internal_errors_come_in_dashscopes_error_body(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.rate_limit_polls, sim.faults.retry_after, sim.faults.fail_submits = 1, 30, 1
    limited = client.http.send(adapter.status(str(uuid.uuid4())))  # the bare answer, before any retry
    outage = client.http.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    assert (limited.status_code, limited.headers["Retry-After"], outage.status_code) == (429, "30", 500)
    assert (limited.json()["code"], outage.json()["code"]) == ("Throttling.RateQuota", "InternalError")
    assert limited.json().keys() == outage.json().keys() == {"request_id", "code", "message"}


def test_a_task_id_never_issued_or_past_24_h_reports_unknown_and_fails(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient, sample_url: str
) -> None:
    assert sim.task_ttl_seconds == 24 * 3600
    never = adapter.parse_status(client.send(adapter.status(str(uuid.uuid4()))))
    assert (never.state, never.raw_status, never.error_code) == (ProviderState.FAILED, "UNKNOWN", TASK_GONE)
    sim.faults.stall = True
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    sim.task_ttl_seconds = 0
    time.sleep(0.01)
    expired = adapter.parse_status(client.send(adapter.status(task_id)))
    assert (expired.raw_status, expired.error_code) == ("UNKNOWN", TASK_GONE)


def test_a_task_cancelled_outside_our_api_reports_canceled(
    sim: DashscopeSimulator, adapter: DashscopeProvider, client: ProviderClient, sample_url: str
) -> None:
    sim.faults.stall = True
    task_id = adapter.parse_submit(
        client.send(adapter.submit(VideoRequest(image_url=sample_url), Mode.FIRST_FRAME, None))
    )
    assert adapter.cancel(task_id) is None
    assert sim.cancel_task(sim.tasks[task_id])  # e.g. from the console: the API itself has no cancel
    status = adapter.parse_status(client.send(adapter.status(task_id)))
    assert (status.state, status.raw_status) == (ProviderState.CANCELLED, "CANCELED")


def test_result_links_live_24_hours(sim: DashscopeSimulator) -> None:
    assert sim.result_ttl_seconds == 24 * 3600  # "video_url ... valid for 24 hours"


def test_an_unserved_path_is_dashscopes_url_error(adapter: DashscopeProvider, client: ProviderClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.parse_submit(
            client.send(adapter.request("POST", "/api/v1/services/aigc/video-generation/nope", {}))
        )
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidParameter")
    assert "url error" in str(caught.value)
