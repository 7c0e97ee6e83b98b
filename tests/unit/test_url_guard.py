"""The SSRF guard in front of every fetch of a supplied URL."""

from __future__ import annotations

import httpx
import pytest

from i2v.media import GuardedTransport, UnsafeUrl, resolve_public


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://172.16.3.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",  # the instance metadata service
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private or reserved"):
        resolve_public(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://93.184.216.34/a", "gopher://x/", "http:///nohost"]
)
def test_only_http_urls_with_a_host_are_fetched(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="only http"):
        resolve_public(url, allow_private=False)


def test_public_address_is_allowed_and_pinned() -> None:
    assert resolve_public("https://93.184.216.34/video.mp4", allow_private=False) == (
        "93.184.216.34",
        "93.184.216.34",
    )


def test_local_stack_may_allow_loopback() -> None:
    assert resolve_public("http://127.0.0.1:9000/a.png", allow_private=True)[1] == "127.0.0.1"


def test_guarded_client_refuses_a_redirect_to_a_private_address() -> None:
    # The first hop is checked by the transport too; here it is refused before any socket opens.
    transport = GuardedTransport(allow_private=False)
    with httpx.Client(transport=transport) as client, pytest.raises(UnsafeUrl):
        client.get("http://169.254.169.254/latest/meta-data/")
