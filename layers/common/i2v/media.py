"""Media plumbing: the SSRF guard for every outbound fetch, streaming ingest into S3, presigned URLs."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from i2v.models import Output

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024  # S3 multipart parts (min 5 MiB); bounds ingest memory to about one part
MAX_OUTPUT_BYTES = 2 * 1024**3


class UnsafeUrl(Exception):
    """A URL the guard refuses to fetch."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]  # a literal needs no DNS
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"cannot resolve {host}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]  # drop IPv6 zone ids


def resolve_public(url: str, allow_private: bool) -> tuple[str, str]:
    """(host, pinned IP) for an http(s) URL whose every address is public, else UnsafeUrl."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"only http(s) URLs with a host can be fetched, not {parts.scheme or 'no scheme'}")
    host = parts.hostname
    addresses = _addresses(host)
    if not allow_private:
        bad = [str(a) for a in addresses if _refused(a)]
        if bad:
            raise UnsafeUrl(f"{host} resolves to a private or reserved address ({bad[0]})")
    return host, str(addresses[0])


class GuardedTransport(httpx.HTTPTransport):
    """Checks every hop (redirects included) and connects to the address it checked.

    Pinning the checked IP closes the DNS-rebinding gap between check and connect; the original host
    stays in the Host header and in TLS SNI, so certificates still verify against the name.
    """

    def __init__(self, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_private = allow_private

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, ip = resolve_public(str(request.url), self.allow_private)
        if host != ip:
            request.url = request.url.copy_with(host=ip)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)


def guarded_client(allow_private: bool, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(
        transport=GuardedTransport(allow_private),
        timeout=httpx.Timeout(timeout, connect=5.0),
        follow_redirects=True,
        max_redirects=3,
    )


def presign_get(s3: S3Client, bucket: str, key: str, seconds: int) -> tuple[str, str]:
    """(URL, ISO expiry) for a short-lived GET of our own object."""
    return _presign(s3, "get_object", {"Bucket": bucket, "Key": key}, seconds)


def presign_put(s3: S3Client, bucket: str, key: str, content_type: str, seconds: int) -> tuple[str, str]:
    """(URL, ISO expiry) for a short-lived PUT of one file with this Content-Type."""
    return _presign(s3, "put_object", {"Bucket": bucket, "Key": key, "ContentType": content_type}, seconds)


def _presign(s3: S3Client, operation: str, params: dict[str, str], seconds: int) -> tuple[str, str]:
    url = s3.generate_presigned_url(operation, Params=params, ExpiresIn=seconds)
    return url, (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def stream_to_s3(
    client: httpx.Client, s3: S3Client, url: str, bucket: str, key: str, metadata: dict[str, str]
) -> Output:
    """Copy a (provider's) result URL into S3 by multipart upload, one part in memory at a time."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="video/mp4", Metadata=metadata)
    upload_id = upload["UploadId"]
    digest = hashlib.sha256()
    parts: list[CompletedPartTypeDef] = []
    size = 0
    head = b""
    try:
        with client.stream("GET", url) as resp:
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
                if len(buffer) >= PART_SIZE:
                    parts.append(_upload_part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if buffer or not parts:
                parts.append(_upload_part(s3, bucket, key, upload_id, len(parts) + 1, bytes(buffer)))
        if head[4:8] != b"ftyp":
            raise IngestError("result is not an MP4 (no ftyp box)")
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return Output(key=key, size=size, sha256=digest.hexdigest(), content_type="video/mp4")


def _upload_part(
    s3: S3Client, bucket: str, key: str, upload_id: str, number: int, data: bytes
) -> CompletedPartTypeDef:
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)["ETag"]
    return {"ETag": etag, "PartNumber": number}


class IngestError(Exception):
    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired
