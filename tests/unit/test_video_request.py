"""The canonical request: the model's media rules, independent of any host."""

from __future__ import annotations

import pytest

from i2v.models import Mode, RequestProblem, VideoRequest

IMG, LAST, CLIP, AUDIO = (
    "https://m.example/a.png",
    "https://m.example/b.png",
    "https://m.example/c.mp4",
    "https://m.example/d.wav",
)


def test_defaults_follow_the_model() -> None:
    req = VideoRequest(image_url=IMG)
    assert (req.resolution, req.duration, req.prompt_extend, req.watermark, req.seed) == (
        "1080p",
        5,
        True,
        False,
        None,
    )


@pytest.mark.parametrize(
    ("media", "mode"),
    [
        ({"image_url": IMG}, Mode.FIRST_FRAME),
        ({"image_url": IMG, "audio_url": AUDIO}, Mode.FIRST_FRAME),
        ({"image_url": IMG, "last_frame_url": LAST}, Mode.FIRST_LAST_FRAME),
        ({"image_url": IMG, "last_frame_url": LAST, "audio_url": AUDIO}, Mode.FIRST_LAST_FRAME),
        ({"video_url": CLIP}, Mode.VIDEO_CONTINUATION),
        ({"video_url": CLIP, "last_frame_url": LAST}, Mode.VIDEO_CONTINUATION),
    ],
)
def test_the_six_valid_combinations_derive_their_mode(media: dict[str, str], mode: Mode) -> None:
    assert VideoRequest.model_validate(media).resolved_mode() is mode


@pytest.mark.parametrize(
    ("media", "field"),
    [
        ({}, "image_url"),
        ({"audio_url": AUDIO}, "image_url"),
        ({"last_frame_url": LAST, "audio_url": AUDIO}, "image_url"),
        ({"image_url": IMG, "video_url": CLIP}, "video_url"),
        ({"video_url": CLIP, "audio_url": AUDIO}, "audio_url"),
        ({"video_url": CLIP, "last_frame_url": LAST, "audio_url": AUDIO}, "audio_url"),
    ],
)
def test_every_other_combination_names_the_field(media: dict[str, str], field: str) -> None:
    with pytest.raises(RequestProblem) as caught:
        VideoRequest.model_validate(media).resolved_mode()
    assert caught.value.status == 422
    assert caught.value.errors[0].field == field


def test_explicit_mode_must_match_the_media() -> None:
    with pytest.raises(RequestProblem) as caught:
        VideoRequest(image_url=IMG, mode=Mode.FIRST_LAST_FRAME).resolved_mode()
    assert caught.value.errors[0].field == "mode"
    assert "last_frame_url" in caught.value.errors[0].message
