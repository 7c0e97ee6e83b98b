"""The request model refuses URLs that pass its pattern but no URL parser can read, naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from i2v.models import VideoRequest

UNPARSEABLE = [
    "http://[x",  # urlsplit: Invalid IPv6 URL
    "https://\u009fx",  # a C1 control character in the host: no IDNA name
    "https://a\u200bb/x",  # a zero-width space in the host
    "https://x:99999/a.png",  # a port out of range
    "https://xn--zz/a.png",  # an invalid A-label
    "https://ok.example/a\u0085.png",  # a control character in the path
]


@pytest.mark.parametrize("url", UNPARSEABLE)
@pytest.mark.parametrize("field", ["image_url", "last_frame_url", "video_url", "audio_url", "webhook_url"])
def test_an_unparseable_url_is_refused_naming_its_field(field: str, url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        VideoRequest.model_validate({"image_url": "https://ok.example/a.png", field: url})
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_an_s3_url_with_a_broken_host_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        VideoRequest.model_validate({"image_url": "s3://[x/y"})
    assert [e["loc"] for e in refused.value.errors()] == [("image_url",)]


@pytest.mark.parametrize(
    "url", ["https://bücher.example/a.png", "https://[::1]:8443/a.png", "s3://bucket/inputs/a%20b.png"]
)
def test_unusual_but_valid_urls_are_kept(url: str) -> None:
    assert VideoRequest.model_validate({"image_url": url}).image_url == url
