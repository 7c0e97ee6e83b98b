"""Where things live in the media bucket, in one place.

inputs/<tenant>/<yyyymmdd>/<random>-<filename>   files sent through POST /v1/uploads (expire after 7 days)
uploads/<tenant>/<path>                          the drop folder: an image here becomes a task
outputs/<tenant>/<task id>.mp4                   the video of an API task
outputs/<tenant>/<path>.mp4                      the video of a drop-folder task, mirroring its upload
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from i2v.models import RequestProblem, Task

INPUTS, UPLOADS, OUTPUTS = "inputs", "uploads", "outputs"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def input_key(tenant: str, filename: str, now: datetime | None = None) -> str:
    return f"{INPUTS}/{tenant}/{(now or datetime.now(UTC)):%Y%m%d}/{secrets.token_hex(8)}-{filename}"


def output_key(task: Task) -> str:
    if task.source == "s3" and task.source_key:
        # uploads/<tenant>/a/cat.png -> outputs/<tenant>/a/cat.mp4
        parts = PurePosixPath(task.source_key).parts[1:]
        return str(PurePosixPath(OUTPUTS, *parts).with_suffix(".mp4"))
    return f"{OUTPUTS}/{task.tenant}/{task.id}.mp4"


def upload_tenant(key: str) -> str | None:
    """The tenant of a drop-folder image (uploads/<tenant>/…/<name>.<image suffix>), else None."""
    parts = PurePosixPath(key).parts
    if len(parts) < 3 or parts[0] != UPLOADS or not key.lower().endswith(IMAGE_SUFFIXES):
        return None
    return parts[1]


def sidecar_key(key: str) -> str:
    """uploads/<tenant>/a/cat.png -> uploads/<tenant>/a/cat.json: a drop-folder image's options."""
    return str(PurePosixPath(key).with_suffix(".json"))


def owned_by(tenant: str, key: str) -> bool:
    """Is this a key a tenant may name as an input (its own uploads)?"""
    return key.startswith((f"{INPUTS}/{tenant}/", f"{UPLOADS}/{tenant}/"))


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_url(url: str, bucket: str) -> str:
    """The key of an s3:// URL that points into our bucket; anything else is a 422."""
    parts = urlsplit(url)
    if parts.netloc != bucket or not parts.path.strip("/"):
        raise RequestProblem.invalid("url", f"s3 URLs must point into this gateway's bucket ({bucket})")
    return parts.path.lstrip("/")
