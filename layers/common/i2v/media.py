"""Media plumbing: the SSRF guard for every outbound fetch, and streaming ingest into S3 (presigned URLs of
our own objects are i2v.presign: the calls that only need those do not import the guard's httpcore)."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx
from aws_lambda_powertools import Logger

from i2v.models import Output

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = Logger(child=True)

PART_SIZE = 8 * 1024 * 1024  # S3 multipart parts (min 5 MiB); bounds ingest memory to about one part
MAX_OUTPUT_BYTES = 2 * 1024**3
# Shorter than the ingest function's timeout (300 s), so a slow result URL ends as a clean, retried failure
# (multipart upload aborted, lease given back) rather than a killed invocation.
INGEST_DEADLINE_SECONDS = 240.0
DEFAULT_PORTS = frozenset({80, 443})  # what a fetched URL may name unless the deployment allows more
DNS_TIMEOUT_SECONDS = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(Exception):
    """A URL the guard refuses to fetch."""


def unreachable(host_or_url: str) -> str:
    """The one user-facing text for a host that does not resolve, resolves to a non-public address, refuses,
    is unreachable or times out: telling these apart would let a tenant map networks it cannot reach."""
    host = urlsplit(host_or_url).hostname if "://" in host_or_url else host_or_url
    return f"{host or 'the host'} cannot be fetched"


# ---------------------------------------------------------------------------------------------------------
# Which addresses are public: IANA's special-purpose registries, checked here rather than trusting the
# running Python's `is_global` (3.11 calls 192.0.0.192, 224.0.0.1 and 2002:a9fe:a9fe:: global).

_V4_SPECIAL = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier NAT; 100.100.100.200 is a cloud metadata service)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, the instance metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_SPECIAL = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: its last 32 bits are the IPv4 target


def is_public(address: IPAddress) -> bool:
    """Whether `address` is globally reachable unicast; an IPv6 form of an IPv4 address (mapped, 6to4,
    NAT64) is judged by the IPv4 address it leads to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        # Only global unicast: this leaves out ::/96 (IPv4-compatible), ULA, link- and site-local, multicast.
        return (
            address in _V6_GLOBAL_UNICAST
            and not any(address in net for net in _V6_SPECIAL)
            and address.is_global
        )
    return not any(address in net for net in _V4_SPECIAL) and address.is_global


def is_loopback(address: IPAddress) -> bool:
    """127.0.0.0/8 and ::1, in either form (::ffff:127.0.0.1 too)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def named_private(host: str, private_hosts: Collection[str]) -> bool:
    """Whether `host` is one of the names that may resolve to a private address (compared as DNS does,
    ignoring case): only the Docker host, for `sam local invoke`."""
    return host.lower() in {h.lower() for h in private_hosts}


def admitted(address: IPAddress, allow_loopback: bool) -> bool:
    """Whether the guard may connect to `address`: a public one, or this machine's own when the local stack
    allows it. Never another private range (10/8, 172.16/12, 192.168/16, 169.254/16, ULA...), local or not:
    the local stack serves everything it needs on loopback."""
    return is_public(address) or (allow_loopback and is_loopback(address))


# ---------------------------------------------------------------------------------------------------------
# The guard


def check_url(
    url: str, allow_private: bool, allowed_ports: Collection[int] = DEFAULT_PORTS
) -> tuple[str, int]:
    """(host, port) of an http(s) URL the guard may fetch, judged without DNS; else UnsafeUrl.

    `allow_private` is the local stack's setting: loopback addresses (where its servers listen, on arbitrary
    ports) are allowed, and any port; other private addresses stay refused. Otherwise ports other than
    `allowed_ports` are refused. A literal IP must be admitted now; a name is checked at connect.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:  # an unclosed [ or a port that is not a number below 65536
        raise UnsafeUrl("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeUrl(f"only http(s) URLs with a host can be fetched, not {parts.scheme or 'no scheme'}")
    try:
        host.encode("idna")
    except UnicodeError:  # a control character, an empty label, a label over 63 characters
        raise UnsafeUrl("is not a valid URL: the host is not a valid name") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if not allow_private and port not in allowed_ports:
        ports = " or ".join(str(p) for p in sorted(allowed_ports))
        raise UnsafeUrl(f"port {port} cannot be fetched; use port {ports}")
    literal = _literal(host)
    if literal is not None and not admitted(literal, allow_private):
        raise UnsafeUrl(f"{host} is a private or reserved address")
    return host, port


def public_addresses(
    host: str,
    allow_private: bool,
    timeout: float = DNS_TIMEOUT_SECONDS,
    private_hosts: Collection[str] = (),
) -> list[IPAddress]:
    """Every address of `host` (all of them checked, for the caller to connect to without resolving again).

    UnsafeUrl if any is not admitted (public, or loopback when `allow_private`); a name in `private_hosts`
    (the Docker host, for `sam local invoke`) may resolve to any address. OSError if the name does not
    resolve within `timeout`. Neither message says which: both read as `unreachable(host)` to a user.
    """
    literal = _literal(host)
    addresses = [literal] if literal is not None else _resolve(host, timeout)
    if literal is None and named_private(host, private_hosts):
        return addresses
    refused = [a for a in addresses if not admitted(a, allow_private)]
    if refused:
        logger.warning("url guard refused a non-public address", host=host, address=str(refused[0]))
        raise UnsafeUrl(
            f"{host} is a private or reserved address" if literal is not None else unreachable(host)
        )
    return addresses


def resolve_public(
    url: str,
    allow_private: bool,
    allowed_ports: Collection[int] = DEFAULT_PORTS,
    private_hosts: Collection[str] = (),
) -> tuple[str, str]:
    """(host, first checked IP) for a URL the guard would fetch, else UnsafeUrl (also when it does not
    resolve)."""
    host, _ = check_url(url, allow_private, allowed_ports)
    try:
        addresses = public_addresses(host, allow_private, private_hosts=private_hosts)
    except OSError as exc:
        logger.info("url guard could not resolve", host=host, error=repr(exc))
        raise UnsafeUrl(unreachable(host)) from None
    return host, str(addresses[0])


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])  # an IPv6 zone id names no other address
    except ValueError:
        return None


def _resolve(host: str, timeout: float) -> list[IPAddress]:
    """getaddrinfo with a time limit (a hostile name server can hold it for tens of seconds): the lookup
    runs on a daemon thread left to finish on its own if it is late."""
    answer: list[list[IPAddress] | BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            answer.append([ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos])
        except BaseException as exc:  # handed to the waiting thread
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(timeout, 0.0)):
        raise TimeoutError(f"resolving {host} took over {timeout:.1f} s")
    result = answer[0]
    if isinstance(result, BaseException):
        raise result if isinstance(result, OSError) else OSError(f"cannot resolve {host}: {result!r}")
    if not result:
        raise OSError(f"{host} has no address")
    return result


# ---------------------------------------------------------------------------------------------------------
# A deadline over a whole fetch, however the server paces its bytes

_deadline: ContextVar[float | None] = ContextVar("i2v_fetch_deadline", default=None)


@contextmanager
def fetch_deadline(seconds: float) -> Iterator[None]:
    """Every network step of a guarded client inside the block (DNS, connect, TLS, each read and write)
    must end within `seconds` from now, or it raises an httpx timeout: per-read timeouts alone let a server
    sending one byte every half second hold a fetch for ever. A nested block never extends an outer one."""
    end = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def _time_left(timeout: float | None, late: type[Exception]) -> float | None:
    """`timeout` shortened to what the current deadline leaves; `late` raised once it has passed."""
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise late("the fetch deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write (and TLS handshake) ends by the current fetch deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host once, checks every address, connects to a checked one: no DNS rebinding between
    check and connect. The connection pool above it is keyed by host name, so a connection is only ever
    reused for the name it was opened (and its certificate verified) for."""

    def __init__(self, allow_private: bool, private_hosts: Collection[str] = ()) -> None:
        self.allow_private = allow_private
        self.private_hosts = tuple(private_hosts)
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            lookup = _time_left(timeout, httpcore.ConnectTimeout)
            addresses = public_addresses(
                host,
                self.allow_private,
                DNS_TIMEOUT_SECONDS if lookup is None else lookup,
                self.private_hosts,
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = self._sockets.connect_tcp(
                    str(address),
                    port,
                    _time_left(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("the guarded client opens no unix sockets")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """Checks every hop (redirects included) before it is sent, and connects only to checked addresses.

    The URL keeps its host name, so connections are pooled per name and TLS verifies the certificate
    against that name on every new connection; the IP is pinned in the network backend instead.
    """

    def __init__(
        self,
        allow_private: bool,
        allowed_ports: Collection[int] = DEFAULT_PORTS,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),  # noqa: B008
        private_hosts: Collection[str] = (),
    ) -> None:
        # Not HTTPTransport.__init__: it would build a pool (and an SSL context) only to be replaced.
        self.allow_private = allow_private
        self.allowed_ports = frozenset(allowed_ports)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow_private, private_hosts),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), self.allow_private, self.allowed_ports)
        return super().handle_request(request)


def guarded_client(
    allow_private: bool,
    timeout: float = 30.0,
    *,
    allowed_ports: Collection[int] = DEFAULT_PORTS,
    verify: ssl.SSLContext | bool = True,
    private_hosts: Collection[str] = (),
) -> httpx.Client:
    return httpx.Client(
        transport=GuardedTransport(allow_private, allowed_ports, verify=verify, private_hosts=private_hosts),
        timeout=httpx.Timeout(timeout, connect=5.0),
        follow_redirects=True,
        max_redirects=3,
    )


def stream_to_s3(
    client: httpx.Client,
    s3: S3Client,
    url: str,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    *,
    deadline: float = INGEST_DEADLINE_SECONDS,
    headers: Mapping[str, str] | None = None,
) -> Output:
    """Copy a (provider's) result URL into S3 by multipart upload, one part in memory at a time, to a key
    that has no object yet (else botocore's ClientError PreconditionFailed, and nothing is written).

    The whole copy ends within `deadline` seconds (an httpx timeout past it, which the caller retries)."""
    end = time.monotonic() + deadline
    # Per-part CRC32s as boto3 uploads do: S3 checks each part as it lands and the completion names them.
    # (Without it moto checksums the whole object at completion, copying it twice in memory.)
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="video/mp4", Metadata=metadata, ChecksumAlgorithm="CRC32"
    )
    upload_id = upload["UploadId"]
    digest = hashlib.sha256()
    parts: list[CompletedPartTypeDef] = []
    size = 0
    head = b""
    try:
        # httpx drops an Authorization header on a redirect to another origin: a keyed link's key stays home.
        with fetch_deadline(deadline), client.stream("GET", url, headers=headers) as resp:
            if resp.status_code != 200:
                raise IngestError(
                    f"result URL answered HTTP {resp.status_code}",
                    expired=resp.status_code in (403, 404, 410),
                )
            buffer = bytearray()
            for chunk in resp.iter_bytes(1024 * 1024):
                if not head:
                    head = chunk[:16]
                digest.update(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT_BYTES:
                    raise IngestError("result is larger than the 2 GiB limit")
                buffer.extend(chunk)
                if time.monotonic() > end:  # the S3 uploads count too, not only the reads
                    raise httpx.ReadTimeout(f"the copy took over {deadline:.0f} s")
                if len(buffer) >= PART_SIZE:
                    parts.append(_upload_part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if buffer or not parts:
                parts.append(_upload_part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
        if head[4:8] != b"ftyp":
            raise IngestError("result is not an MP4 (no ftyp box)")
        # Written once: an object already at the key makes this a 412 PreconditionFailed, never a
        # replacement (S3 has had conditional writes since 2024-11; moto 5.2 honours them too).
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return Output(key=key, size=size, sha256=digest.hexdigest(), content_type="video/mp4")


def _upload_part(
    s3: S3Client, bucket: str, key: str, upload_id: str, number: int, data: bytes
) -> CompletedPartTypeDef:
    done = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumAlgorithm="CRC32"
    )
    return {"ETag": done["ETag"], "PartNumber": number, "ChecksumCRC32": done["ChecksumCRC32"]}


class IngestError(Exception):
    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired
