"""Every limit of the model is a 422 problem body naming the field; the six valid media combinations pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from i2v_local.sim_local import LocalSimulator
from tests.support import api_call, containers

# Placeholders for URLs of real files on the loopback media server (the gateway probes every input).
IMG, LAST, CLIP, AUDIO = "{media}/sample.png", "{media}/last.png", "{media}/clip.mp4", "{media}/voice.wav"


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    # Accepted jobs stay queued: these tests are about what the API lets through, not rendering.
    local_sim.faults.stall = True


@pytest.fixture
def media(media_server: tuple[Path, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Fill the {media} placeholders in a request body with the media server's URL."""

    def fill(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v.format(media=media_server[1]) if isinstance(v, str) else v for k, v in body.items()}

    return fill


def problem_fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"image_url": IMG, "prompt": "x" * 5001}, "prompt", "5000"),
        ({"image_url": IMG, "negative_prompt": "x" * 501}, "negative_prompt", "500"),
        ({"image_url": IMG, "duration": 1}, "duration", "2"),
        ({"image_url": IMG, "duration": 16}, "duration", "15"),
        ({"image_url": IMG, "duration": "five"}, "duration", "integer"),
        ({"image_url": IMG, "seed": -1}, "seed", "0"),
        ({"image_url": IMG, "seed": 2_147_483_648}, "seed", "2147483647"),
        ({"image_url": IMG, "resolution": "480p"}, "resolution", "720p"),
        ({"image_url": "ftp://media.example/a.png"}, "image_url", "must be an http(s) URL, or an s3://"),
        ({"image_url": IMG, "webhook_url": "ftp://hooks.example/x"}, "webhook_url", "must be an https URL"),
        ({"image_url": IMG, "metadata": {str(i): "v" for i in range(17)}}, "metadata", "16"),
        ({"image_url": IMG, "colour": "blue"}, "colour", "not permitted"),
        ({}, "image_url", "required"),
        ({"last_frame_url": LAST}, "image_url", "required"),
        ({"audio_url": AUDIO}, "image_url", "required"),
        ({"image_url": IMG, "video_url": CLIP}, "video_url", "image_url"),
        ({"video_url": CLIP, "audio_url": AUDIO}, "audio_url", "video_url"),
        ({"image_url": IMG, "last_frame_url": LAST, "mode": "first_frame"}, "mode", "first_last_frame"),
        ({"image_url": IMG, "mode": "video_continuation"}, "mode", "video_url"),
        ({"video_url": CLIP, "mode": "first_frame"}, "mode", "image_url"),
        ({"image_url": IMG, "mode": "sideways"}, "mode", "first_frame"),
        ({"image_url": "s3://someone-elses-bucket/a.png"}, "image_url", "bucket"),
        ({"image_url": "s3://i2v-local-media-123456789012/inputs/other/a.png"}, "image_url", "your own"),
        ({"image_url": IMG, "provider": "nonesuch"}, "provider", "unknown provider"),
    ],
)
def test_limit_is_a_422_naming_the_field(
    body: dict[str, Any], field: str, limit: str, media: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    status, problem = api_call("POST", "/v1/videos", media(body))
    assert status == 422
    assert field in problem_fields(problem), problem
    assert limit.lower() in problem["detail"].lower(), problem


@pytest.mark.parametrize(
    ("body", "mode"),
    [
        ({"image_url": IMG}, "first_frame"),
        ({"image_url": IMG, "audio_url": AUDIO}, "first_frame"),
        ({"image_url": IMG, "last_frame_url": LAST}, "first_last_frame"),
        ({"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO}, "first_last_frame"),
        ({"video_url": CLIP}, "video_continuation"),
        ({"video_url": CLIP, "last_frame_url": LAST}, "video_continuation"),
        ({"video_url": CLIP, "last_frame_url": LAST, "mode": "video_continuation"}, "video_continuation"),
    ],
)
def test_valid_media_combination_is_accepted_with_its_mode(
    body: dict[str, Any], mode: str, media: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    status, task = api_call("POST", "/v1/videos", media(body))
    assert status == 202, task
    assert task["mode"] == mode
    assert task["status"] == "submitted"


def test_uppercase_resolution_is_accepted_as_the_hosts_spell_it(
    media: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    body = media({"image_url": IMG, "resolution": "720P", "duration": 15, "seed": 0})
    status, task = api_call("POST", "/v1/videos", body)
    assert status == 202
    assert task["request"]["resolution"] == "720p"


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1, 2]", '"a string"', "null", '{"image_url": 5}', '{"prompt": ["a"]}', "\u0000"],
)
def test_malformed_body_is_a_4xx_problem_never_a_500(raw: str) -> None:
    status, problem = api_call("POST", "/v1/videos", raw_body=raw)
    assert 400 <= status < 500
    assert problem["status"] == status
    assert problem["title"]


def test_problem_body_is_rfc9457_json(media: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    status, problem = api_call("POST", "/v1/videos", media({"image_url": IMG, "duration": 99}))
    assert status == 422
    assert problem == {
        "type": "about:blank",
        "title": "Request validation failed",
        "status": 422,
        "detail": problem["detail"],
        "errors": [{"field": "duration", "message": "Input should be less than or equal to 15"}],
    }


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"image_url": "{media}/tiny.png"}, "image_url", "240-8000 px"),
        ({"image_url": IMG, "last_frame_url": "{media}/tiny.png"}, "last_frame_url", "240-8000 px"),
        ({"video_url": "{media}/long.mp4", "duration": 15}, "video_url", "2-10 s"),
        ({"image_url": "{media}/missing.png"}, "image_url", "404"),
        ({"image_url": CLIP}, "image_url", "not a jpeg, png, bmp or webp"),
        ({"image_url": IMG, "audio_url": IMG}, "audio_url", "not a wav or mp3"),
    ],
)
def test_media_outside_the_models_limits_are_refused_before_any_provider_is_paid(
    body: dict[str, Any],
    field: str,
    limit: str,
    media: Callable[[dict[str, Any]], dict[str, Any]],
    local_sim: LocalSimulator,
) -> None:
    status, problem = api_call("POST", "/v1/videos", media(body))
    assert status == 422, problem
    assert field in problem_fields(problem)
    assert limit.lower() in problem["detail"].lower()
    assert local_sim.submits == 0


def test_continuation_total_duration_must_cover_its_clip(
    media: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    status, task = api_call("POST", "/v1/videos", media({"video_url": CLIP, "duration": 2}))
    assert status == 202, task  # a 2 s clip and 2 s in all: allowed, nothing is added
    status, problem = api_call("POST", "/v1/videos", media({"video_url": "{media}/long.mp4", "duration": 10}))
    assert status == 422
    assert {"video_url", "duration"} <= set(problem_fields(problem))
    assert "at least the clip's 11.0 s" in problem["detail"]


def test_webhook_url_must_be_https_outside_the_local_stack(
    media: Callable[[dict[str, Any]], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_ALLOW_PRIVATE_URLS", "false")
    containers.clear()  # new containers read the new environment
    status, problem = api_call(
        "POST", "/v1/videos", media({"image_url": IMG, "webhook_url": "http://hooks.example/x"})
    )
    assert status == 422
    assert {"field": "webhook_url", "message": "must be an https URL"} in problem["errors"]


def test_webhook_url_on_a_private_address_is_refused(
    media: Callable[[dict[str, Any]], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_ALLOW_PRIVATE_URLS", "false")
    containers.clear()  # new containers read the new environment
    status, problem = api_call(
        "POST", "/v1/videos", media({"image_url": IMG, "webhook_url": "https://10.1.2.3/hook"})
    )
    assert status == 422
    assert problem_fields(problem) == ["webhook_url"]
    assert "private or reserved" in problem["detail"]
