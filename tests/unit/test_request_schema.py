"""The request's published JSON Schema refuses exactly the media combinations and modes the model refuses:
a client (or schemathesis) that trusts the document is not told `{}` is a request."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from i2v.models import MEDIA_FIELDS, Mode, RequestProblem, VideoRequest

URL = "https://media.example/a.png"
MEDIA_SETS = [set(c) for n in range(len(MEDIA_FIELDS) + 1) for c in combinations(MEDIA_FIELDS, n)]
CASES = [(media, mode) for media in MEDIA_SETS for mode in [None, *Mode]]


def request_with(media: set[str], mode: Mode | None) -> dict[str, Any]:
    body: dict[str, Any] = dict.fromkeys(sorted(media), URL)
    if mode is not None:
        body["mode"] = mode.value
    return body


def model_accepts(body: dict[str, Any]) -> bool:
    try:
        VideoRequest.model_validate(body).resolved_mode()
    except RequestProblem:
        return False
    return True


@pytest.mark.parametrize(
    ("media", "mode"), CASES, ids=lambda v: "+".join(sorted(v)) if isinstance(v, set) else str(v)
)
def test_the_schema_and_the_model_agree_on_every_media_combination(
    media: set[str], mode: Mode | None
) -> None:
    body = request_with(media, mode)
    schema = Draft202012Validator(VideoRequest.model_json_schema())
    assert schema.is_valid(body) == model_accepts(body), body


def test_explicit_nulls_count_as_absent_in_both() -> None:
    body = {"image_url": URL, "video_url": None, "last_frame_url": None, "mode": None}
    assert Draft202012Validator(VideoRequest.model_json_schema()).is_valid(body)
    assert model_accepts(body)


def test_an_empty_request_is_refused_by_the_schema() -> None:
    errors = list(Draft202012Validator(VideoRequest.model_json_schema()).iter_errors({}))
    assert errors, "the published schema accepts {}"


def test_the_six_valid_combinations_are_all_the_schema_accepts() -> None:
    schema = Draft202012Validator(VideoRequest.model_json_schema())
    accepted = {
        frozenset(media)
        for media, mode in CASES
        if mode is None and schema.is_valid(request_with(media, None))
    }
    assert accepted == {
        frozenset({"image_url"}),
        frozenset({"image_url", "audio_url"}),
        frozenset({"image_url", "last_frame_url"}),
        frozenset({"image_url", "last_frame_url", "audio_url"}),
        frozenset({"video_url"}),
        frozenset({"video_url", "last_frame_url"}),
    }
