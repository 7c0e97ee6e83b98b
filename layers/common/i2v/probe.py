"""Probing input media before any provider is paid: read just the headers of each URL over HTTP Range
requests and check them against the model's limits, so a bad input is a 422 rather than a failed job."""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from aws_lambda_powertools import Logger

from i2v.media import fetch_deadline, unreachable
from i2v.models import MB, MEDIA_LIMITS, Kind, MediaLimits

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK = 64 * 1024  # read-ahead per range request: most headers fit in one, and requests cost more than bytes
HEADERS_READ = 4 * 1024 * 1024  # of a clip's or audio file's headers, at most
PROBE_DEADLINE_SECONDS = 5.0  # per URL: several media in one create stay well inside API Gateway's 29 s

logger = Logger(child=True)


@dataclass(frozen=True)
class MediaInfo:
    kind: Kind
    format: str  # "jpeg" | "png" | "bmp" | "webp" | "mp4" | "mov" | "wav" | "mp3"
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, for video and audio
    has_alpha: bool = False
    # Where the file's own fields disagree, what each says: (field, width, height) and (field, seconds). Each
    # is held to the limits; empty where they agree (width, height and duration are then the file's).
    sizes: tuple[tuple[str, int, int], ...] = ()
    durations: tuple[tuple[str, float], ...] = ()


class ProbeError(Exception):
    """The URL could not be fetched or read as the expected kind of media (message is user-facing)."""


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
    reader = _READERS[kind]
    try:
        with fetch_deadline(deadline), _RangedFile(client, url, max_read, whole) as file:
            return reader(file)
    except httpx.TransportError as exc:
        # Refused, unreachable, timed out or past the deadline: one text, so a tenant cannot tell them apart.
        logger.info("probe could not fetch", url=url.split("?")[0], error=repr(exc))
        raise ProbeError(unreachable(url)) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ProbeError(f"could not fetch the file: {exc or type(exc).__name__}") from exc


def limit_violations(info: MediaInfo, *, forbid_alpha: bool = False) -> list[str]:
    """Human messages for every limit the media breaks, each naming the limit, e.g.
    'image is 200x300 px; each side must be 240-8000 px', 'clip is 12.0 s; it must be 2-10 s'.
    Empty if fine."""
    limits = MEDIA_LIMITS[info.kind]
    noun = limits.noun
    problems: list[str] = []
    if info.format not in limits.formats:
        names = [name.upper() for name in limits.formats]
        allowed = f"{', '.join(names[:-1])} or {names[-1]}"
        problems.append(f"{noun} is {info.format.upper() or 'of unknown format'}; it must be {allowed}")
    if limits.sides is not None:
        problems += _side_violations(info, limits)
    if limits.seconds is not None:
        problems += _length_violations(info, limits.noun, limits.seconds)
    if info.size_bytes > limits.max_bytes:
        problems.append(_too_large(info.kind, info.size_bytes))
    if forbid_alpha and info.has_alpha:
        problems.append(f"{noun} has transparency (an alpha channel); this provider needs it opaque")
    return problems


def _side_violations(info: MediaInfo, limits: MediaLimits) -> list[str]:
    noun = limits.noun
    low, high = limits.sides or (0, 0)
    if info.width is None or info.height is None:
        return [f"{noun} size is unknown; each side must be {low}-{high} px"]
    problems = []
    for field, width, height in info.sizes or (("", info.width, info.height),):
        size = f"{width}x{height} px" + (f" by its {field}" + _others(info.sizes, field) if field else "")
        if not (low <= width <= high and low <= height <= high):
            problems.append(f"{noun} is {size}; each side must be {low}-{high} px")
        short, long = sorted((width, height))
        if long > short * limits.max_aspect:
            factor = f"{long / short:.1f}" if short > 0 else "∞"
            ratio = f"{factor}:1" if width >= height else f"1:{factor}"
            problems.append(
                f"{noun} is {size} ({ratio}); its aspect ratio must be between "
                f"1:{limits.max_aspect} and {limits.max_aspect}:1"
            )
    return problems


def _length_violations(info: MediaInfo, noun: str, bounds: tuple[int, int]) -> list[str]:
    low, high = bounds
    if info.duration is None:
        return [f"{noun} duration is unknown; it must be {low}-{high} s"]
    said = info.durations or (("", info.duration),)
    # The stricter answer wins: the longest against the upper bound, the shortest against the lower.
    for field, seconds in (max(said, key=lambda f: f[1]), min(said, key=lambda f: f[1])):
        if not low <= seconds <= high:
            by = f" by its {field}" + _others(info.durations, field) if field else ""
            return [f"{noun} is {_seconds(seconds, bounds)} s{by}; it must be {low}-{high} s"]
    return []


def _others(said: tuple[tuple[Any, ...], ...], field: str) -> str:
    """What the file's other fields say, e.g. ' (mvhd says 5.0 s, tkhd 12.0 s)'."""
    rest = [
        (name, f"{values[0]:.1f} s" if len(values) == 1 else f"{values[0]}x{values[1]} px")
        for name, *values in said
        if name != field
    ]
    if not rest:
        return ""
    texts = [f"{name} says {value}" if n == 0 else f"{name} {value}" for n, (name, value) in enumerate(rest)]
    return f" ({', '.join(texts)})"


def _too_large(kind: Kind, size: int) -> str:
    limits = MEDIA_LIMITS[kind]
    # Rounded up, so a file just over the limit never reads as exactly the limit.
    return f"{limits.noun} is {math.ceil(size / MB * 10) / 10:.1f} MB; it must be at most {limits.max_mb} MB"


def _seconds(value: float, bounds: tuple[int, int]) -> str:
    """One decimal, unless that would print a bound the value is outside of (10.02 s is not '10.0 s')."""
    text = f"{value:.1f}"
    return f"{value:.3f}" if float(text) in bounds else text


# ---------------------------------------------------------------------------------------------------------
# A file over HTTP Range requests


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class _RangedFile(io.RawIOBase):
    """A read-only, seekable view of a URL that fetches only the chunks read, caching them.

    Falls back to reading the start of the body sequentially when the server ignores Range; either way
    fetching more than `max_read` bytes in total is a ProbeError.
    """

    def __init__(self, client: httpx.Client, url: str, max_read: int, whole: int = 0) -> None:
        """`whole`: a file up to this size is asked for in one request and read as its bytes arrive (an
        image, which is read to its end); else the first chunk is, and what else is read by more requests."""
        super().__init__()
        self._client = client
        self._url = url
        self.max_read = max_read
        self._chunk = min(_CHUNK, max_read)
        self._pos = 0
        self.fetched = 0
        self.size: int | None = None
        self._chunks: dict[int, bytes] = {}  # chunk index -> its bytes, when the server honours Range
        # The open body read as it arrives: when the server ignores Range (200), or for `whole` (206).
        self._stream: httpx.Response | None = None
        self._ignores_range = False
        self._stream_end: int | None = None  # where a 206 stream's bytes end (exclusive)
        self._pieces: Iterator[bytes] = iter(())
        self._head = bytearray()  # the first bytes of that body, all of them so far
        self._open(min(max(whole, self._chunk), max_read))

    # -- fetching

    def _open(self, first: int) -> None:
        response = self._request(0, first - 1)
        if response.status_code == 200:
            self._stream, self._ignores_range = response, True
            length = response.headers.get("content-length", "")
            self.size = int(length) if length.isdigit() else None
            self._pieces = response.iter_bytes(self._chunk)
        elif first > self._chunk and response.status_code == 206:
            try:
                _, end = self._content_range(response, 0, first - 1)
            except ProbeError:
                response.close()
                raise
            self._stream, self._stream_end = response, end + 1
            self._pieces = response.iter_bytes(self._chunk)
        else:
            self._store(response, 0, self._chunk - 1)

    def _request(self, first: int, last: int) -> httpx.Response:
        if self.fetched + (last - first + 1) > self.max_read:
            raise self._over_budget()
        # identity: Range counts bytes of the encoded body, and compressed media gains nothing anyway.
        request = self._client.build_request(
            "GET", self._url, headers={"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
        )
        response = self._client.send(request, stream=True)
        if response.status_code in (200, 206):
            return response
        response.close()
        if response.status_code == 416:
            unsatisfied = _UNSATISFIED_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if first == 0 and (unsatisfied is None or unsatisfied[1] == "0"):
                raise ProbeError("the file is empty")
            if first > 0:  # read past the end of a file whose size we did not know
                self.size = int(unsatisfied[1]) if unsatisfied else first
                return response
        raise ProbeError(f"could not fetch the file: HTTP {response.status_code} {response.reason_phrase}")

    def _store(self, response: httpx.Response, first: int, last: int) -> None:
        """Cache the body of the range response for bytes first..last (chunk-aligned at first)."""
        try:
            if response.status_code == 416:
                return
            if response.status_code != 206:
                raise ProbeError("the server stopped honouring Range requests")
            start, end = self._content_range(response, first, last)
            body = self._read_body(response, end - start + 1)
        finally:
            response.close()
        if len(body) != end - start + 1:
            raise ProbeError("the server sent fewer bytes than its Content-Range announced")
        for offset in range(0, len(body), self._chunk):
            self._chunks[(first + offset) // self._chunk] = body[offset : offset + self._chunk]

    def _content_range(self, response: httpx.Response, first: int, last: int) -> tuple[int, int]:
        """The first and last byte of a 206 answer to bytes=first-last, checked; learns the file's size."""
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if match is None:
            raise ProbeError("the server answered a Range request without a valid Content-Range")
        start, end = int(match[1]), int(match[2])
        if match[3] != "*":
            self.size = int(match[3])
        elif end < last:
            self.size = end + 1  # a short answer of unknown total ends at the end of the file
        expected_end = min(last, self.size - 1) if self.size is not None else last
        if start != first or end != expected_end:
            raise ProbeError("the server answered a different byte range than the one asked for")
        return start, end

    def _read_body(self, response: httpx.Response, length: int) -> bytes:
        body = bytearray()
        for piece in response.iter_bytes(self._chunk):
            self.fetched += len(piece)
            body += piece
            if len(body) >= length:
                break  # a server sending more than it announced gets no more of our time
        return bytes(body[:length])

    def _fill(self, start: int, end: int) -> None:
        """Make bytes start..end-1 (already clipped to the size) available."""
        if end - start > self.max_read:  # could never all be in hand, so fail before asking for any
            raise self._over_budget()
        if self._stream is not None:
            if self._stream_end is not None and end > self._stream_end:
                raise self._over_budget()  # past the one request a small file is read with
            while len(self._head) < end:
                if end > self.max_read:
                    raise self._over_budget()
                piece = next(self._pieces, None)
                if piece is None:
                    if self._stream_end is not None:
                        raise ProbeError("the server sent fewer bytes than its Content-Range announced")
                    self.size = len(self._head)
                    return
                self.fetched += len(piece)
                self._head += piece
            return
        first, last = start // self._chunk, (end - 1) // self._chunk
        missing = [index for index in range(first, last + 1) if index not in self._chunks]
        runs: list[list[int]] = []
        for index in missing:  # one request per run of adjacent missing chunks
            if runs and runs[-1][-1] == index - 1:
                runs[-1].append(index)
            else:
                runs.append([index])
        for run in runs:
            low = run[0] * self._chunk
            high = (run[-1] + 1) * self._chunk - 1
            if self.size is not None:
                high = min(high, self.size - 1)
            self._store(self._request(low, high), low, high)

    def _over_budget(self) -> ProbeError:
        hint = "; the server ignores Range requests" if self._ignores_range else ""
        return ProbeError(f"could not read the header within {self.max_read} bytes{hint}")

    # -- reading

    @property
    def streaming(self) -> bool:
        """Whether the server ignored Range, so only the start of the body can be read."""
        return self._ignores_range

    def read_at(self, position: int, count: int) -> bytes:
        """Up to `count` bytes from `position`; fewer only at the end of the file."""
        end = position + count
        if self.size is not None:
            end = min(end, self.size)
        if position >= end:
            return b""
        self._fill(position, end)
        if self._stream is not None:
            return bytes(self._head[position:end])
        pieces: list[bytes] = []
        while position < end:
            index, offset = divmod(position, self._chunk)
            piece = self._chunks.get(index, b"")[offset : offset + end - position]
            if not piece:
                break  # past the end of a file whose size we learnt only now
            pieces.append(piece)
            position += len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END and self.size is not None:
            position = self.size + offset
        else:
            raise io.UnsupportedOperation("cannot seek from the end of a file of unknown size")
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        super().close()


# ---------------------------------------------------------------------------------------------------------
# Images


_PILLOW_FORMATS = {"JPEG": "jpeg", "PNG": "png", "BMP": "bmp"}
_PILLOW_NAMES = {**_PILLOW_FORMATS, "MPO": "jpeg"}  # Pillow names a JPEG with extra pictures (phones) MPO
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_NOT_AN_IMAGE = "not a JPEG, PNG, BMP or WEBP image"


def _read_image(file: _RangedFile) -> MediaInfo:
    head = file.read_at(0, 30)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        # Pillow reads a whole WEBP file to open it; the header says all we need.
        width, height, has_alpha = _webp_header(head)
        info = MediaInfo("image", "webp", _size(file), width, height, has_alpha=has_alpha)
    else:
        try:
            info = _pillow_header(file)
        except ProbeError:
            if file.size is not None and file.size > MEDIA_LIMITS["image"].max_bytes:
                # Its header lies past what is read of a file this large (segments before it): the size
                # alone says why the image cannot be used.
                raise ProbeError(_too_large("image", file.size)) from None
            raise
    if _read_whole(info):
        _check_whole_image(info, file.read_at(0, info.size_bytes))
    return info


def _pillow_header(file: _RangedFile) -> MediaInfo:
    # Imported here: Pillow costs about 0.1 s of import, which only image probes should pay (cold starts).
    from PIL import Image, UnidentifiedImageError

    try:
        # Only header-parsing plugins we accept are tried; nothing is decoded (no load()).
        with Image.open(io.BufferedReader(file), formats=list(_PILLOW_FORMATS)) as image:
            width, height = image.size
            has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
            image_format = _PILLOW_NAMES.get(image.format or "")
    except Image.DecompressionBombError as exc:
        low, high = MEDIA_LIMITS["image"].sides or (0, 0)
        raise ProbeError(f"image has too many pixels; each side must be {low}-{high} px") from exc
    except UnidentifiedImageError as exc:
        raise ProbeError(_NOT_AN_IMAGE) from exc
    except (OSError, ValueError, EOFError, SyntaxError, struct.error) as exc:
        raise ProbeError(f"not a readable image: {exc}") from exc
    if image_format is None:
        raise ProbeError(_NOT_AN_IMAGE)
    return MediaInfo("image", image_format, _size(file), width, height, has_alpha=has_alpha)


def _read_whole(info: MediaInfo) -> bool:
    """An image within the limits is read to its end (it was fetched whole already); one outside them is
    a 422 from its header, and is not decoded."""
    return not limit_violations(info)


def _check_whole_image(info: MediaInfo, data: bytes) -> None:
    """The image's data holds what its header promises and decodes to its end: a truncated or padded-out
    file is refused here rather than failing (and being billed) at the provider.

    Decoding is bounded in memory: a JPEG is decoded at 1/8 scale (every byte of its entropy-coded data is
    still read), a PNG's pixel data is inflated and counted, not kept, and a BMP's pixel array is measured.
    """
    if len(data) < info.size_bytes:
        raise ProbeError(f"image data ends early: {len(data)} of {info.size_bytes} bytes arrived")
    if info.format == "png":
        _check_png(data)
    elif info.format == "webp":
        _check_webp(data, info)
    elif info.format == "bmp":
        _check_bmp(data)
    else:
        _decode(data, info, scale=8)


def _decode(data: bytes, info: MediaInfo, scale: int = 1) -> None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=[info.format.upper()]) as image:
            if scale > 1:
                image.draft(image.mode, (max(1, image.width // scale), max(1, image.height // scale)))
            image.load()
    except (OSError, ValueError, EOFError, SyntaxError, struct.error) as exc:
        raise ProbeError(f"image data is damaged or cut short ({exc})") from exc


# PNG: samples a pixel by colour type (ISO/IEC 15948, 11.2.2), and the Adam7 passes: (x0, y0, dx, dy).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1024 * 1024  # bytes of pixel data inflated at a time, then dropped


def _check_png(data: bytes) -> None:
    """IHDR against IDAT: the inflated pixel data must fill every row the header promises.

    By hand, because Pillow's load() builds the whole image (up to 256 MB at 8000x8000 RGBA, half the API
    function's memory); counting the inflated bytes needs none of it kept.
    """
    width, height, depth, colour, interlaced = struct.unpack(">IIBB2xB", data[16:29])
    samples = _PNG_SAMPLES.get(colour)
    if samples is None:
        raise ProbeError(f"image data is damaged: PNG colour type {colour} is not one PNG has")
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            expected += rows * (1 + -(-(columns * samples * depth) // 8))  # a filter byte, then the row
    inflater = zlib.decompressobj()
    inflated = 0
    try:
        for chunk in _png_chunks(data, b"IDAT"):
            pending = chunk
            while pending and inflated < expected:
                inflated += len(inflater.decompress(pending, _INFLATE_STEP))
                pending = inflater.unconsumed_tail
            if inflated >= expected:
                break
    except zlib.error as exc:
        raise ProbeError(
            f"image data is damaged: its PNG pixel data (IDAT) does not inflate ({exc})"
        ) from exc
    if inflated < expected:
        raise ProbeError(
            f"image data ends early: its PNG header (IHDR) says {width}x{height} px, {expected} bytes of"
            f" pixel data; its IDAT chunks hold {inflated}"
        )


def _png_chunks(data: bytes, wanted: bytes) -> Iterator[bytes]:
    """The payloads of the chunks of type `wanted`, in order; ancillary chunks are stepped over."""
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        payload = data[position + 8 : position + 8 + length]
        if len(payload) < length:
            raise ProbeError(f"image data ends early: its PNG chunk {kind.decode('latin-1')!r} is cut short")
        if kind == wanted:
            yield payload
        elif kind == b"IEND":
            return
        position += 12 + length


def _check_webp(data: bytes, info: MediaInfo) -> None:
    """The RIFF size against the file, a still image's frame against its VP8X canvas, then a decode."""
    riff = int.from_bytes(data[4:8], "little") + 8
    if riff > len(data):
        raise ProbeError(
            f"image data ends early: its RIFF header says {riff} bytes, the file has {len(data)}"
        )
    if data[12:16] == b"VP8X" and not data[20] & 0x02:  # extended, and not animated
        frame = _webp_frame(data)
        if frame is None:
            raise ProbeError("image data is damaged: its WEBP file has no image (VP8 or VP8L) chunk")
        if frame != (info.width, info.height):
            raise ProbeError(
                f"image data is damaged: its WEBP canvas (VP8X) says {info.width}x{info.height} px, its image"
                f" chunk {frame[0]}x{frame[1]} px"
            )
    _decode(data, info)


def _webp_header(head: bytes) -> tuple[int, int, bool]:
    """(width, height, has alpha) from the first chunk of a WEBP file (RFC 9649)."""
    if len(head) < 30:
        raise ProbeError("not a readable image: the WEBP header is cut short")
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy, never with alpha
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF, False
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless: 14-bit sizes minus one, then the alpha hint
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    if chunk == b"VP8X":  # extended: flags, then 24-bit canvas sizes minus one
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height, bool(head[20] & 0x10)
    raise ProbeError(_NOT_AN_IMAGE)


def _webp_frame(data: bytes) -> tuple[int, int] | None:
    """The size the first VP8 or VP8L chunk of an extended WEBP file says."""
    position = 12
    while position + 8 <= len(data):
        kind, length = (
            data[position : position + 4],
            int.from_bytes(data[position + 4 : position + 8], "little"),
        )
        if kind in (b"VP8 ", b"VP8L"):
            width, height, _ = _webp_header(data[:12] + data[position : position + 18])
            return width, height
        position += 8 + length + (length & 1)
    return None


def _check_bmp(data: bytes) -> None:
    """An uncompressed BMP's pixel array must be all there; a compressed one is decoded."""
    offset, header = struct.unpack("<I4xI", data[10:22])
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height, bits = struct.unpack("<HH2xH", data[18:26])
        compression = 0
    else:
        width, height, bits, compression = struct.unpack("<ii2xHI", data[18:34])
    if compression not in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows as they are
        _decode(data, MediaInfo("image", "bmp", len(data)))
        return
    stride = (abs(width) * bits + 31) // 32 * 4
    needed = offset + stride * abs(height)
    if needed > len(data):
        raise ProbeError(
            f"image data ends early: its BMP header says {abs(width)}x{abs(height)} px, {needed} bytes;"
            f" the file has {len(data)}"
        )


# ---------------------------------------------------------------------------------------------------------
# Clips (ISO base media file format: MP4 and QuickTime MOV)


_TOP_LEVEL_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}  # what a file opens with
_NOT_A_CLIP = "not an MP4/MOV file"


def _boxes(
    file: _RangedFile, start: int, end: int | None, *, top: bool = False
) -> Iterator[tuple[bytes, int, int | None]]:
    """(type, payload offset, end offset) of each box from start to end, reading only box headers; `top`:
    the file's own boxes, where one running past the end means the file is cut short."""
    position = start
    while end is None or position + 8 <= end:
        header = file.read_at(position, 16)
        if len(header) < 8:
            return
        size, box_type = struct.unpack(">I4s", header[:8])
        payload = position + 8
        box_end: int | None
        if size == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                raise ProbeError(f"{_NOT_A_CLIP}: a box header is cut short")
            size = struct.unpack(">Q", header[8:16])[0]
            payload += 8
        if size == 0:  # the box runs to the end of its container
            box_end = end if end is not None else file.size
        elif size < payload - position or (end is not None and position + size > end):
            name = box_type.decode("latin-1")
            if top and end is not None and end == file.size and size >= payload - position:
                raise ProbeError(f"the MP4/MOV file is cut short: its box '{name}' runs past its end")
            raise ProbeError(f"{_NOT_A_CLIP}: box '{name}' has an impossible size")
        else:
            box_end = position + size
        yield box_type, payload, box_end
        if box_end is None:
            return
        position = box_end


def _read_clip(file: _RangedFile) -> MediaInfo:
    first = file.read_at(0, 12)
    if len(first) < 8 or first[4:8] not in _TOP_LEVEL_BOXES:
        raise ProbeError(_NOT_A_CLIP)
    # Classic QuickTime files may have no ftyp at all.
    clip_format = "mov" if first[4:8] != b"ftyp" or first[8:12] == b"qt  " else "mp4"
    movie: _Movie | None = None
    fragments = 0  # in the video track's timescale, summed over moof boxes after the moov
    # Every top-level box's header is read (one that runs past the end says the file is cut short); the
    # media data is stepped over unread.
    for box_type, payload, end in _boxes(file, 0, file.size, top=True):
        if box_type == b"moov":
            movie = _read_moov(file, payload, end)
        elif box_type == b"moof" and movie is not None and movie.video is not None:
            fragments += _fragment_length(file, payload, end, movie)
    if movie is None:
        raise ProbeError(f"{_NOT_A_CLIP}: it has no moov box (is the file complete?)")
    return movie.info(clip_format, _size(file), fragments)


@dataclass
class _Track:
    track_id: int = 0
    handler: bytes = b""
    length: int = 0  # tkhd duration, in the movie's timescale
    display: tuple[int, int] | None = None  # tkhd width and height
    coded: tuple[int, int] | None = None  # the visual sample entry's (stsd)
    timescale: int = 0  # mdhd's
    media_length: int = 0  # mdhd duration
    samples_length: int = 0  # the sum of stts' sample durations
    default_sample_length: int = 0  # trex's, for fragments that do not say

    @property
    def is_video(self) -> bool:
        return self.handler == b"vide" or (not self.handler and self.display is not None)


@dataclass
class _Movie:
    timescale: int = 0
    length: int = 0  # mvhd duration
    fragments_length: int = 0  # mehd's
    fragmented: bool = False
    video: _Track | None = None

    def info(self, clip_format: str, size: int, fragments: int) -> MediaInfo:
        """What the clip is, from every field that says how long and how large it is: where they disagree,
        each is held to the limits (the stricter answer wins) and the message says which said what."""
        video = self.video
        if video is None:
            raise ProbeError("the MP4/MOV file has no video track")
        said: list[tuple[str, float]] = []
        for name, length, scale in (
            ("mvhd", self.length, self.timescale),
            ("mehd", self.fragments_length, self.timescale),
            ("tkhd", video.length, self.timescale),
            ("mdhd", video.media_length, video.timescale),
            ("stts", video.samples_length, video.timescale),
            ("trun", fragments, video.timescale),
        ):
            if length and scale:
                said.append((name, length / scale))
        if not said:
            raise ProbeError("the MP4/MOV file does not say how long it is")
        sizes = [(name, *size) for name, size in (("stsd", video.coded), ("tkhd", video.display)) if size]
        if not sizes:
            raise ProbeError("the MP4/MOV file's video track does not say its size")
        _, width, height = sizes[0]
        duration, durations = _agreed(said)
        return MediaInfo(
            "video",
            clip_format,
            size,
            width,
            height,
            duration,
            sizes=() if len({(w, h) for _, w, h in sizes}) == 1 else tuple(sizes),
            durations=durations,
        )


_SAME_SECONDS = 0.05  # durations closer than this agree (rounding, an encoder's last frame)


def _read_moov(file: _RangedFile, start: int, end: int | None) -> _Movie:
    movie = _Movie()
    defaults: dict[int, int] = {}  # trex: track id -> default sample duration
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type == b"mvhd":
            movie.timescale, movie.length = _movie_header(file.read_at(payload, 32))
        elif box_type == b"trak" and movie.video is None:
            track = _read_trak(file, payload, box_end)
            if track.is_video:
                movie.video = track
        elif box_type == b"mvex":
            movie.fragmented = True
            for child, child_payload, _ in _boxes(file, payload, box_end):
                if child == b"mehd":
                    movie.fragments_length = _fragments_length(file.read_at(child_payload, 12))
                elif child == b"trex":
                    body = file.read_at(child_payload, 16)
                    if len(body) == 16:
                        defaults[_u32(body, 4)] = _u32(body, 12)
    if movie.video is not None:
        movie.video.default_sample_length = defaults.get(movie.video.track_id, 0)
    return movie


def _read_trak(file: _RangedFile, start: int, end: int | None) -> _Track:
    track = _Track()
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type == b"tkhd":
            body = file.read_at(payload, 96)
            track.display = _track_size(body)
            track.track_id, track.length = _track_id_and_length(body)
        elif box_type == b"mdia":
            _read_mdia(file, payload, box_end, track)
    return track


def _read_mdia(file: _RangedFile, start: int, end: int | None, track: _Track) -> None:
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type == b"mdhd":
            track.timescale, track.media_length = _media_header(file.read_at(payload, 32))
        elif box_type == b"hdlr" and not track.handler:  # mdia's; a QuickTime minf has a data handler's too
            track.handler = file.read_at(payload + 8, 4)
        elif box_type in (b"minf", b"stbl"):
            _read_mdia(file, payload, box_end, track)  # stbl sits in minf; its boxes are read alike
        elif box_type == b"stsd" and track.coded is None:
            track.coded = _sample_entry_size(file.read_at(payload, 8 + 8 + 28))
        elif box_type == b"stts":
            track.samples_length = _samples_length(file, payload, box_end)


def _movie_header(body: bytes) -> tuple[int, int]:
    """(timescale, duration in it) from an mvhd: version 0 has 32-bit times, version 1 64-bit ones.

    A duration of all ones means unknown, reported as 0.
    """
    if body[:1] == b"\x01" and len(body) >= 32:
        timescale, length = struct.unpack(">IQ", body[20:32])
        return timescale, 0 if length == 0xFFFFFFFFFFFFFFFF else length
    if body[:1] == b"\x00" and len(body) >= 20:
        timescale, length = struct.unpack(">II", body[12:20])
        return timescale, 0 if length == 0xFFFFFFFF else length
    raise ProbeError(f"{_NOT_A_CLIP}: the mvhd box is cut short or of an unknown version")


def _fragments_length(body: bytes) -> int:
    """A mehd's fragment duration, in the movie's timescale."""
    if body[:1] == b"\x01" and len(body) >= 12:
        return int.from_bytes(body[4:12], "big")
    return int.from_bytes(body[4:8], "big") if len(body) >= 8 else 0


def _track_size(body: bytes) -> tuple[int, int] | None:
    """A tkhd's width and height (16.16 fixed point); None for a track with no picture (audio)."""
    offset = 88 if body[:1] == b"\x01" else 76
    if len(body) < offset + 8:
        raise ProbeError(f"{_NOT_A_CLIP}: the tkhd box is cut short")
    width, height = struct.unpack(">II", body[offset : offset + 8])
    width, height = round(width / 65536), round(height / 65536)
    return (width, height) if width and height else None


def _u32(body: bytes, offset: int) -> int:
    return int.from_bytes(body[offset : offset + 4], "big")


def _track_id_and_length(body: bytes) -> tuple[int, int]:
    """A tkhd's track id and duration (in the movie's timescale; all ones, unknown, is 0)."""
    if body[:1] == b"\x01" and len(body) >= 36:
        track_id, length = _u32(body, 20), int.from_bytes(body[28:36], "big")
        return track_id, 0 if length == 0xFFFFFFFFFFFFFFFF else length
    if len(body) >= 24:
        track_id, length = _u32(body, 12), _u32(body, 20)
        return track_id, 0 if length == 0xFFFFFFFF else length
    raise ProbeError(f"{_NOT_A_CLIP}: the tkhd box is cut short")


def _media_header(body: bytes) -> tuple[int, int]:
    """An mdhd's timescale and duration; its layout is mvhd's."""
    return _movie_header(body)


def _sample_entry_size(body: bytes) -> tuple[int, int] | None:
    """The width and height of an stsd's first sample entry, where it is a visual one (ISO 14496-12,
    12.1.3: after the entry's box header, 6 reserved bytes, a data reference index and 16 bytes of
    reserved and pre-defined fields)."""
    if len(body) < 8 + 8 + 28:
        return None
    width, height = struct.unpack(">HH", body[8 + 8 + 24 : 8 + 8 + 28])
    return (width, height) if width and height else None


_STTS_ENTRIES_READ = 64 * 1024  # entries an stts is summed over at most (8 bytes each): ~hours of video


def _samples_length(file: _RangedFile, start: int, end: int | None) -> int:
    """The sum of an stts box's sample durations (count x delta per entry)."""
    head = file.read_at(start, 8)
    if len(head) < 8:
        return 0
    count = min(_u32(head, 4), _STTS_ENTRIES_READ)
    if end is not None:
        count = min(count, (end - start - 8) // 8)
    table = file.read_at(start + 8, count * 8)
    return sum(n * delta for n, delta in struct.iter_unpack(">II", table[: len(table) // 8 * 8]))


def _fragment_length(file: _RangedFile, start: int, end: int | None, movie: _Movie) -> int:
    """How long a moof's run of the video track's samples plays, in that track's timescale."""
    video = movie.video
    assert video is not None
    total = 0
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type != b"traf":
            continue
        default, track_id = video.default_sample_length, None
        for child, child_payload, child_end in _boxes(file, payload, box_end):
            if child == b"tfhd":
                body = file.read_at(child_payload, 32)
                flags, track_id = int.from_bytes(body[1:4], "big"), _u32(body, 4)
                offset = 8 + 8 * bool(flags & 0x01) + 4 * bool(flags & 0x02)  # base data offset, description
                if flags & 0x08:
                    default = _u32(body, offset)
            elif child == b"trun" and track_id == video.track_id:
                total += _run_length(file, child_payload, child_end, default)
    return total


def _run_length(file: _RangedFile, start: int, end: int | None, default: int) -> int:
    """A trun's samples' durations: each its own where the run carries them, else the default."""
    head = file.read_at(start, 8)
    flags, count = int.from_bytes(head[1:4], "big"), _u32(head, 4)
    if not flags & 0x100:
        return count * default
    first = start + 8 + 4 * bool(flags & 0x01) + 4 * bool(flags & 0x04)  # data offset, first sample flags
    fields = bin(flags & 0xF00).count("1")  # duration, size, flags, composition offset: 4 bytes each
    if end is not None:
        count = min(count, (end - first) // (4 * fields))
    table = file.read_at(first, count * 4 * fields)
    return sum(_u32(table, i * 4 * fields) for i in range(len(table) // (4 * fields)))


# ---------------------------------------------------------------------------------------------------------
# Audio (WAV and MP3)


_NOT_AUDIO = "not a WAV or MP3 file"


def _read_audio(file: _RangedFile) -> MediaInfo:
    head = file.read_at(0, 12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        audio_format, said = "wav", _wav_durations(file)
    else:
        audio_format, said = "mp3", _mp3_durations(file)
    duration, durations = _agreed(said)
    return MediaInfo("audio", audio_format, _size(file), duration=duration, durations=durations)


def _agreed(said: list[tuple[str, float]]) -> tuple[float, tuple[tuple[str, float], ...]]:
    """The duration, and what each field said where they disagree (then the longest is the duration)."""
    durations = [value for _, value in said]
    if max(durations) - min(durations) <= _SAME_SECONDS:
        return said[0][1], ()
    return max(durations), tuple(said)


def _wav_durations(file: _RangedFile) -> list[tuple[str, float]]:
    """Data chunk size over the fmt chunk's byte rate, and over its sample rate x block align (what a
    decoder plays by); chunks in between are stepped over unread."""
    byte_rate: int | None = None
    frame_rate = 0
    data_size: int | None = None
    position = 12
    while byte_rate is None or data_size is None:
        header = file.read_at(position, 8)
        if len(header) < 8:
            break
        chunk, size = struct.unpack("<4sI", header)
        if chunk == b"fmt ":
            fmt = file.read_at(position + 8, 16)
            if len(fmt) < 16:
                raise ProbeError(f"{_NOT_AUDIO}: the WAV fmt chunk is cut short")
            sample_rate, byte_rate, block_align = struct.unpack("<IIH", fmt[4:14])
            frame_rate = sample_rate * block_align
        elif chunk == b"data":
            data_size = size
            # A streamed WAV leaves the size 0 or all ones; the data then runs to the end.
            if file.size is not None and (size in (0, 0xFFFFFFFF) or position + 8 + size > file.size):
                data_size = file.size - position - 8
        position += 8 + size + (size & 1)  # chunks are padded to an even length
    if not byte_rate or data_size is None:
        raise ProbeError(f"{_NOT_AUDIO}: the WAV file has no fmt or data chunk")
    said = [("fmt byte rate", data_size / byte_rate)]
    if frame_rate:
        said.append(("fmt sample rate x block align", data_size / frame_rate))
    return said


@dataclass(frozen=True)
class _Mp3Frame:
    mpeg1: bool
    version: int
    bitrate: int  # bit/s
    sample_rate: int
    mono: bool
    length: int  # bytes, header included

    @property
    def samples(self) -> int:
        return 1152 if self.mpeg1 else 576

    @property
    def side_info(self) -> int:
        """Bytes between the header and where a Xing/Info tag would start."""
        if self.mpeg1:
            return 17 if self.mono else 32
        return 9 if self.mono else 17


# Layer III bitrates (kbit/s) by index; sample rates by the version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5).
_MP3_BITRATES = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MP3_SEARCH = 64 * 1024  # how far past the tags to look for the first frame (some files carry junk)


def _mp3_frame(header: bytes) -> _Mp3Frame | None:
    if len(header) < 4:
        return None
    bits = int.from_bytes(header[:4], "big")
    version, layer = bits >> 19 & 3, bits >> 17 & 3
    bitrate_index, rate_index = bits >> 12 & 15, bits >> 10 & 3
    if bits >> 21 != 0x7FF or version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # not a frame sync, or not a Layer III frame we can size (free format included)
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[mpeg1][bitrate_index] * 1000
    sample_rate = _MP3_RATES[version][rate_index]
    length = (144 if mpeg1 else 72) * bitrate // sample_rate + (bits >> 9 & 1)
    return _Mp3Frame(mpeg1, version, bitrate, sample_rate, bits >> 6 & 3 == 3, length)


def _skip_id3v2(file: _RangedFile) -> int:
    position = 0
    while (tag := file.read_at(position, 10))[:3] == b"ID3" and len(tag) == 10:
        size = 0
        for byte in tag[6:10]:  # "syncsafe": 7 bits a byte
            size = size << 7 | byte & 0x7F
        footer = 10 if tag[5] & 0x10 else 0
        position += 10 + size + footer  # a cover picture in the tag is stepped over unread
    return position


def _first_mp3_frame(file: _RangedFile) -> tuple[int, _Mp3Frame]:
    """The first frame that two more consistent frames follow, so stray sync bits are not taken."""
    start = _skip_id3v2(file)
    window = file.read_at(start, _MP3_SEARCH)
    for offset in range(max(0, len(window) - 3)):
        if window[offset] != 0xFF:
            continue
        frame = _mp3_frame(window[offset : offset + 4])
        if frame is None:
            continue
        position, run = start + offset + frame.length, 1
        while run < 3:
            following = _mp3_frame(file.read_at(position, 4))
            if following is None or (following.version, following.sample_rate) != (
                frame.version,
                frame.sample_rate,
            ):
                break
            position, run = position + following.length, run + 1
        if run == 3 or position == file.size:  # a file of one or two frames ends exactly after them
            return start + offset, frame
    raise ProbeError(_NOT_AUDIO)


def _mp3_durations(file: _RangedFile) -> list[tuple[str, float]]:
    """From the Xing/Info or VBRI header's frame count where there is one; a CBR file's (LAME's Info tag,
    or no header at all) also from its size over its bitrate."""
    position, frame = _first_mp3_frame(file)
    header = _mp3_header(file, position, frame)
    if header is not None and header.name != "Info frame count":
        return [(header.name, header.seconds)]
    if header is not None:  # LAME gives the tag's frame whatever bitrate holds it: the audio's is next
        position += frame.length
        frame = _mp3_frame(file.read_at(position, 4)) or frame
    # Constant bitrate: the rest of the file is audio (a trailing ID3v1 tag is 128 bytes, a few ms),
    # encoder priming and padding included, as in the Info tag's frame count; both lose them alike.
    by_size = (_size(file) - position) * 8 / frame.bitrate
    if header is None:
        return [("size / bitrate", by_size)]
    return [(header.name, header.seconds), ("size / bitrate", by_size - header.trimmed)]


@dataclass(frozen=True)
class _Mp3Header:
    name: str  # which header, as messages name it
    seconds: float
    trimmed: float = 0.0  # seconds of encoder priming and padding its frame count includes


def _mp3_header(file: _RangedFile, position: int, frame: _Mp3Frame) -> _Mp3Header | None:
    data = file.read_at(position, max(frame.length, 4 + 32 + 120 + 24))
    tag = 4 + frame.side_info
    name = data[tag : tag + 4]
    if name in (b"Xing", b"Info"):  # VBR (or LAME's CBR) summary: the frame count
        flags = int.from_bytes(data[tag + 4 : tag + 8], "big")
        if flags & 1:
            frames = int.from_bytes(data[tag + 8 : tag + 12], "big")
            samples = trimmed = frames * frame.samples
            # Then, each present if flagged: frames (4), bytes (4), seek table (100), quality (4).
            lame = tag + 8 + 4 + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
            if data[lame : lame + 4] in (b"LAME", b"Lavf", b"Lavc", b"L3.9"):
                # The encoder's priming and padding samples are not part of the audio.
                packed = int.from_bytes(data[lame + 21 : lame + 24], "big")
                trimmed = max(0, samples - (packed >> 12) - (packed & 0xFFF)) or samples
            rate = frame.sample_rate
            return _Mp3Header(f"{name.decode()} frame count", trimmed / rate, (samples - trimmed) / rate)
    if data[36:40] == b"VBRI":  # Fraunhofer's VBR header, always 32 bytes after the frame header
        frames = int.from_bytes(data[50:54], "big")
        return _Mp3Header("VBRI frame count", frames * frame.samples / frame.sample_rate)
    return None


def _size(file: _RangedFile) -> int:
    if file.size is None and file.streaming:
        # A body of unknown length can still be measured if it ends within the budget.
        with contextlib.suppress(ProbeError):
            file.read_at(0, file.max_read)
    if file.size is None:
        raise ProbeError("the server did not say how large the file is")
    return file.size


_READERS: dict[Kind, Callable[[_RangedFile], MediaInfo]] = {
    "image": _read_image,
    "video": _read_clip,
    "audio": _read_audio,
}
