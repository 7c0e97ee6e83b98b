"""Presigned URLs of our own objects: short-lived, each with its expiry for the caller to show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def presign_get(s3: S3Client, bucket: str, key: str, seconds: int) -> tuple[str, str]:
    """(URL, ISO expiry) for a short-lived GET of our own object."""
    return _presign(s3, "get_object", {"Bucket": bucket, "Key": key}, seconds)


def presign_put(s3: S3Client, bucket: str, key: str, content_type: str, seconds: int) -> tuple[str, str]:
    """(URL, ISO expiry) for a short-lived PUT of one file with this Content-Type."""
    return _presign(s3, "put_object", {"Bucket": bucket, "Key": key, "ContentType": content_type}, seconds)


def _presign(s3: S3Client, operation: str, params: dict[str, str], seconds: int) -> tuple[str, str]:
    url = s3.generate_presigned_url(operation, Params=params, ExpiresIn=seconds)
    return url, (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
