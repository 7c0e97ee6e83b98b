"""The SSRF guard in front of every fetch of a supplied URL.

No socket opens here: literal IPs need no DNS, and names are resolved by a stand-in for getaddrinfo.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from i2v.config import Settings
from i2v.media import GuardedTransport, UnsafeUrl, guarded_client, public_addresses, resolve_public
from i2v.runtime import Runtime

# As collected, before pytest-socket swaps in its blocking stand-in for each test. The `names` fixture
# puts this back, not the stand-in (monkeypatch would, after pytest-socket's own teardown, leaking it).
_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def names() -> Iterator[dict[str, list[str]]]:
    """A DNS for the test: host -> addresses; any other host is 'not known'."""
    mapping: dict[str, list[str]] = {}
    socket.getaddrinfo = resolving(mapping)
    try:
        yield mapping
    finally:
        socket.getaddrinfo = _REAL_GETADDRINFO


def resolving(mapping: dict[str, list[str]]) -> Callable[..., list[Any]]:
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
            for a in mapping[host]
        ]

    return getaddrinfo


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://172.16.3.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",  # the instance metadata service
        "http://[fd00:ec2::254]/latest/meta-data/",  # ... and its IPv6 address
        "http://100.64.0.1/x",  # shared address space (carrier-grade NAT)
        "http://100.100.100.200/latest/meta-data/",  # a cloud metadata service in that space
        "http://192.0.0.192/x",  # IETF protocol assignments (Python 3.11 calls it global)
        "http://192.0.2.10/x",  # documentation
        "http://198.18.0.1/x",  # benchmarking
        "http://240.0.0.1/x",
        "http://255.255.255.255/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fec0::1]/x",  # site-local
        "http://[fc00::1]/x",
        "http://0.0.0.0/x",
        "http://[::]/x",
        "http://224.0.0.1/x",
        "http://[ff02::1]/x",
        "http://[2001:db8::1]/x",  # documentation
        "http://[2001::1]/x",  # Teredo
        "http://[::ffff:10.0.0.1]/x",  # IPv4-mapped
        "http://[::ffff:169.254.169.254]/x",
        "http://[::a9fe:a9fe]/x",  # IPv4-compatible 169.254.169.254
        "http://[2002:a9fe:a9fe::]/x",  # 6to4 of 169.254.169.254
        "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of 169.254.169.254
        "http://[64:ff9b:1::a00:1]/x",  # local-use NAT64
    ],
)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private or reserved"):
        resolve_public(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/video.mp4",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/video.mp4",
        "https://[::ffff:93.184.216.34]/video.mp4",  # judged by the IPv4 address it leads to
        "https://[2002:5db8:d822::1]/video.mp4",  # 6to4 of 93.184.216.34
        "https://[64:ff9b::5db8:d822]/video.mp4",  # NAT64 of 93.184.216.34
    ],
)
def test_public_addresses_in_any_form_are_allowed(url: str) -> None:
    host, ip = resolve_public(url, allow_private=False)
    assert ipaddress.ip_address(ip) == ipaddress.ip_address(host)


def test_public_address_is_allowed_and_pinned() -> None:
    assert resolve_public("https://93.184.216.34/video.mp4", allow_private=False) == (
        "93.184.216.34",
        "93.184.216.34",
    )


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://93.184.216.34/a", "gopher://x/", "http:///nohost"]
)
def test_only_http_urls_with_a_host_are_fetched(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="only http"):
        resolve_public(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["http://[x", "https://\u009fx/hook", "https://a..b/x", "http://93.184.216.34:99999/", "http://h:port/"],
)
def test_malformed_urls_are_refused_not_crashed_on(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="is not a valid URL"):
        resolve_public(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://1.1.1.1:22/",
        "https://93.184.216.34:8443/a.png",
        "http://93.184.216.34:443/",
        "https://93.184.216.34:80/",
    ],
)
def test_only_ports_80_and_443_by_default(url: str) -> None:
    if url.endswith(":443/") or url.endswith(":80/"):
        assert resolve_public(url, allow_private=False)[1] == "93.184.216.34"
    else:
        with pytest.raises(UnsafeUrl, match=r"port \d+ cannot be fetched; use port 80 or 443"):
            resolve_public(url, allow_private=False)


def test_a_deployment_may_allow_more_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("I2V_ALLOWED_PORTS", "80, 443,8443")
    ports = Settings(table_name="t", bucket_name="b").allowed_ports
    assert ports == [80, 443, 8443]
    assert resolve_public("https://93.184.216.34:8443/", allow_private=False, allowed_ports=ports)
    with pytest.raises(UnsafeUrl, match="use port 80 or 443 or 8443"):
        resolve_public("https://93.184.216.34:22/", allow_private=False, allowed_ports=ports)


def test_local_stack_may_allow_loopback_on_any_port() -> None:
    assert resolve_public("http://127.0.0.1:9000/a.png", allow_private=True)[1] == "127.0.0.1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/a", "http://127.8.9.10/a", "http://[::1]:9/a"])
def test_the_local_stack_allows_this_machine(url: str) -> None:
    _, ip = resolve_public(url, allow_private=True)
    assert ipaddress.ip_address(ip).is_loopback


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://172.16.0.5:8080/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0:8080/",
    ],
)
def test_the_local_stack_refuses_private_addresses_other_than_loopback(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private or reserved"):
        resolve_public(url, allow_private=True)


def test_on_the_local_stack_a_name_may_lead_to_loopback_only(names: dict[str, list[str]]) -> None:
    names.update({"me.test": ["127.0.0.1"], "lan.test": ["192.168.1.20"]})
    assert resolve_public("http://me.test:8080/hook", allow_private=True) == ("me.test", "127.0.0.1")
    with pytest.raises(UnsafeUrl, match=r"lan\.test cannot be fetched"):
        resolve_public("http://lan.test:8080/hook", allow_private=True)


def test_a_named_private_host_is_allowed_for_sam_local_invoke(names: dict[str, list[str]]) -> None:
    """events/env.json names the Docker host, which a container reaches on a private address."""
    names["host.docker.internal"] = ["192.168.65.254"]
    url = "http://host.docker.internal:5000/bucket/a.png"
    assert resolve_public(url, True, private_hosts=["host.docker.internal"])[1] == "192.168.65.254"
    with pytest.raises(UnsafeUrl):
        resolve_public(url, allow_private=True)


def test_a_name_is_refused_if_any_of_its_addresses_is_not_public(names: dict[str, list[str]]) -> None:
    names.update({"cdn.test": ["93.184.216.34", "10.0.0.7"], "ok.test": ["93.184.216.34"]})
    assert resolve_public("https://ok.test/a.png", allow_private=False) == ("ok.test", "93.184.216.34")
    with pytest.raises(UnsafeUrl):
        resolve_public("https://cdn.test/a.png", allow_private=False)


def test_a_name_that_is_private_reads_the_same_as_one_that_does_not_resolve(
    names: dict[str, list[str]],
) -> None:
    """Which internal names exist, and where they point, is not for a tenant to learn."""
    names["db.internal"] = ["10.1.2.3"]
    messages = set()
    for host in ("db.internal", "nothing.internal"):
        with pytest.raises(UnsafeUrl) as caught:
            resolve_public(f"https://{host}/x", allow_private=False)
        messages.add(str(caught.value).replace(host, "HOST"))
    assert messages == {"HOST cannot be fetched"}
    assert "10.1.2.3" not in str(caught.value)


def test_a_name_server_that_does_not_answer_is_given_up_on_in_time(names: dict[str, list[str]]) -> None:
    answer = threading.Event()

    def stalled(*args: Any, **kwargs: Any) -> list[Any]:
        answer.wait()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    socket.getaddrinfo = stalled
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            public_addresses("slow.test", allow_private=False, timeout=0.3)
        assert time.monotonic() - started < 2.0
    finally:
        answer.set()  # let the lookup thread end


def test_guarded_client_refuses_a_redirect_to_a_private_address() -> None:
    # The first hop is checked by the transport too; here it is refused before any socket opens.
    transport = GuardedTransport(allow_private=False)
    with httpx.Client(transport=transport) as client, pytest.raises(UnsafeUrl):
        client.get("http://169.254.169.254/latest/meta-data/")


@pytest.mark.parametrize(
    "url", ["http://1.1.1.1:22/", "http://[2002:a9fe:a9fe::]/latest/meta-data/", "https://rebind.test/a.png"]
)
def test_guarded_client_refuses_before_opening_a_socket(url: str, names: dict[str, list[str]]) -> None:
    """Unit tests block sockets: a connect attempt would fail with SocketBlockedError, not UnsafeUrl."""
    names["rebind.test"] = ["100.100.100.200"]
    with guarded_client(allow_private=False) as client, pytest.raises(UnsafeUrl):
        client.get(url)


def test_the_runtime_fetcher_follows_the_deployment_port_setting() -> None:
    # Every setting the guard reads is given here: the test must not depend on what the environment holds.
    settings = Settings(table_name="t", bucket_name="b", allowed_ports=[443, 8443], allow_private_urls=False)
    with Runtime(settings=settings).fetcher as client, pytest.raises(UnsafeUrl, match="use port 443 or 8443"):
        client.get("http://93.184.216.34/a.png")  # port 80, not allowed here
