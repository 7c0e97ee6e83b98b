"""What `i2v generate` sends: local files and --out checked before anything is submitted, the request body
built from the flags given (and only those: the API's defaults apply to the rest), and the labels that turn
the API's field names back into the file or flag the user typed."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v.models import MEDIA_FIELDS, MEDIA_LIMITS, Kind
from i2v_cli.api import CliError, flag_for

# File name endings the API's uploads take, by format (the formats of each kind are i2v.models' MEDIA_LIMITS).
# The content types are the ones POST /v1/uploads accepts.
EXTENSIONS: dict[str, tuple[str, str]] = {
    ".jpg": ("jpeg", "image/jpeg"),
    ".jpeg": ("jpeg", "image/jpeg"),
    ".png": ("png", "image/png"),
    ".bmp": ("bmp", "image/bmp"),
    ".webp": ("webp", "image/webp"),
    ".mp4": ("mp4", "video/mp4"),
    ".mov": ("mov", "video/quicktime"),
    ".wav": ("wav", "audio/wav"),
    ".mp3": ("mp3", "audio/mpeg"),
}

# Which argument fills which media field; the image is the positional one.
MEDIA_ARGS = {
    "image_url": "image",
    "last_frame_url": "last_frame",
    "video_url": "video",
    "audio_url": "audio",
}
# API fields spelled differently from their flags (the rest are --<field>); used to reword the API's messages.
FLAG_FIELDS = ("negative_prompt", "prompt_extend", "webhook_url")
REMOTE = ("http://", "https://", "s3://")


@dataclass(frozen=True)
class LocalMedia:
    field: str  # image_url, last_frame_url, video_url or audio_url
    path: Path
    content_type: str


def argument_name(field: str) -> str:
    """How the user names a media field: `image` for the positional image, else its flag."""
    return "image" if field == "image_url" else flag_for(MEDIA_ARGS[field])


def labels(args: argparse.Namespace) -> dict[str, str]:
    """API field -> the words for it in a message: the file as typed and its argument, or the flag."""
    found = {field: flag_for(field) for field in FLAG_FIELDS} | {"GET /v1/providers": "`i2v providers`"}
    for field, attr in MEDIA_ARGS.items():
        value = getattr(args, attr, None)
        found[field] = f"{value} ({argument_name(field)})" if value else argument_name(field)
    return found


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def checked_media(field: str, value: str) -> LocalMedia:
    """A local file for a media field, refused (naming the file and its argument) unless it is a readable
    file of a type and size the API accepts for that field."""
    kind: Kind = MEDIA_FIELDS[field]
    limits = MEDIA_LIMITS[kind]
    where = f"{value} ({argument_name(field)})"
    path = Path(value)
    if not path.exists():
        raise CliError(f"{where}: no such file")
    if not path.is_file():
        raise CliError(f"{where}: not a file")
    if not os.access(path, os.R_OK):
        raise CliError(f"{where}: cannot be read (permission denied)")
    suffix = path.suffix.lower()
    fmt, content_type = EXTENSIONS.get(suffix, ("", ""))
    if fmt not in limits.formats:
        accepted = _joined([f.upper() for f in limits.formats])
        named = suffix[1:].upper() or "a file without an extension"
        raise CliError(f"{where}: {named} is not accepted; use {accepted}")
    if path.stat().st_size > limits.max_bytes:
        raise CliError(f"{where}: larger than the {limits.max_mb} MB the API accepts for {kind}")
    return LocalMedia(field, path, content_type)


def local_media(args: argparse.Namespace) -> list[LocalMedia]:
    """Every media argument that names a local file, checked; URLs are left to the API."""
    return [
        checked_media(field, value)
        for field, attr in MEDIA_ARGS.items()
        if (value := getattr(args, attr, None)) and not value.startswith(REMOTE)
    ]


def output_target(out: str | None) -> Path:
    """Where the MP4 will go, checked before anything is submitted.

    --out names the file to write; an existing folder gets <task id>.mp4 inside it (returned as the folder);
    no --out is the current folder. The folder must exist and be writable.
    """
    path = Path(out or ".")
    if path.is_dir():
        folder = path
    elif out and out.endswith(("/", os.sep)):
        raise CliError(f"{out} (--out): no such folder")
    else:
        folder = path.parent
        if not folder.is_dir():
            raise CliError(f"{out} (--out): the folder {folder} does not exist")
        if path.exists() and not path.is_file():
            raise CliError(f"{out} (--out): exists and is not a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{out or folder} (--out): the folder {folder} is not writable")
    return path


def saved_as(target: Path, task_id: str) -> Path:
    return target / f"{task_id}.mp4" if target.is_dir() else target


def metadata_item(text: str) -> dict[str, str]:
    """One --metadata: KEY=VALUE, or a JSON object of them (argparse type; its error is a usage error)."""
    if text.lstrip().startswith("{"):
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a JSON object: {exc}") from None
        if not isinstance(found, dict):
            raise argparse.ArgumentTypeError("a JSON object of strings, or KEY=VALUE")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in found.items()}
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or a JSON object, got {text!r}")
    return {key: value}


def request_body(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """The POST /v1/videos body: only the fields the user gave, so the API's defaults apply to the rest.
    `urls` holds the uploaded media fields' s3:// URLs; remote media pass through as given."""
    body: dict[str, Any] = {}
    for field, attr in MEDIA_ARGS.items():
        value = getattr(args, attr)
        if value:
            body[field] = urls.get(field, value)
    for field in (
        "prompt",
        "negative_prompt",
        "mode",
        "resolution",
        "duration",
        "prompt_extend",
        "watermark",
        "seed",
        "routing",
        "webhook_url",
    ):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if args.provider:
        names = [name.strip() for name in args.provider.split(",")]
        body["provider"] = names if len(names) > 1 else names[0]
    if args.metadata:
        body["metadata"] = {k: v for item in args.metadata for k, v in item.items()}
    return body
