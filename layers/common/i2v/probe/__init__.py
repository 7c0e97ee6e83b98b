"""Probing input media before any provider is paid, so a file the model cannot take is a 422 naming the
field rather than a failed (and billed) job.

No single header is trusted: where a file's own fields disagree on how long or how large it is, each is held
to the limits and the message says which said what. An image within its limits is fetched whole and must
decode to its end; a clip or an audio file is read from its headers only, by Range requests. The readers,
one module a kind, are imported on first use: the API's cold start pays for none of them.

Why by hand, when maintained parsers exist: bench P9 ran pymediainfo, mutagen, hachoir and PyAV (FFmpeg's
libraries) over the torture corpus (tests/corpus.py; 48 files on 2026-12-07 that lie, are cut short, sit
at a limit, or are odd but valid). This probe got 48 right; PyAV 39 (and it is 131 MB installed, over half
of Lambda's 250 MB for code and layers), pymediainfo 37 (15 MB; no WEBP sizes), hachoir 33, mutagen 27 (no
images, no picture sizes). None of them notices a truncated image, an IHDR promising pixels its IDAT
lacks, a clip cut short after its moov, or an MP3 whose Info tag understates it: each reports what one
header says, which is what this package exists not to do. And each reads a local file: over HTTP the whole
file (up to 100 MB for a clip) would have to be fetched first, where this reads box headers by Range.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import httpx
from aws_lambda_powertools import Logger

from i2v.media import fetch_deadline, unreachable
from i2v.models import MEDIA_LIMITS, Kind
from i2v.probe.common import (
    HEADERS_READ,
    PROBE_DEADLINE_SECONDS,
    MediaInfo,
    ProbeError,
    RangedFile,
    Unfetchable,
)
from i2v.probe.limits import limit_violations

__all__ = [
    "PROBE_DEADLINE_SECONDS",
    "Kind",
    "MediaInfo",
    "ProbeError",
    "Unfetchable",
    "limit_violations",
    "probe",
]

logger = Logger(child=True)
_READERS: dict[Kind, str] = {  # a module each, imported on first use
    "image": "i2v.probe.images",
    "video": "i2v.probe.clips",
    "audio": "i2v.probe.audio",
}


def probe(
    client: httpx.Client,
    url: str,
    kind: Kind,
    *,
    max_read: int | None = None,
    deadline: float = PROBE_DEADLINE_SECONDS,
) -> MediaInfo:
    """What `url` holds: an image read whole (in one request) when it is within the size limit, so it is
    known to decode to its end; a clip or audio from its headers only (its moov box, its fragments' headers).

    At most `max_read` bytes are fetched (default: an image's size limit; 4 MiB of a clip's or an audio
    file's headers), and with the guarded client the whole fetch ends within `deadline` seconds however the
    server paces its bytes. httpx failures become ProbeError; anything else the client raises (the URL
    guard's refusal) propagates for the caller to map.
    """
    whole = MEDIA_LIMITS["image"].max_bytes if kind == "image" else 0
    if max_read is None:
        max_read = whole or HEADERS_READ
    if max_read <= 0:
        raise ValueError("max_read must be positive")
    reader: Callable[[RangedFile], MediaInfo] = importlib.import_module(_READERS[kind]).read
    try:
        with fetch_deadline(deadline):
            file = RangedFile(client, url, max_read, whole)
            try:
                return reader(file)
            finally:
                file.release()
    except httpx.TransportError as exc:
        # Refused, unreachable, timed out or past the deadline: one text, so a tenant cannot tell them apart.
        logger.info("probe could not fetch", url=url.split("?")[0], error=repr(exc))
        raise Unfetchable(unreachable(url)) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ProbeError(f"could not fetch the file: {exc or type(exc).__name__}") from exc
