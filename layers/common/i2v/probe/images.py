"""Images (JPEG, PNG, BMP, WEBP): the header for what the image is; then, for an image within the limits,
the whole file (fetched in one request) for whether it holds what the header promises."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

from i2v.models import MEDIA_LIMITS
from i2v.probe.common import MediaInfo, ProbeError, RangedFile, size_of
from i2v.probe.limits import limit_violations, too_large

_PILLOW_FORMATS = {"JPEG": "jpeg", "PNG": "png", "BMP": "bmp"}
_PILLOW_NAMES = {**_PILLOW_FORMATS, "MPO": "jpeg"}  # Pillow names a JPEG with extra pictures (phones) MPO
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_NOT_AN_IMAGE = "not a JPEG, PNG, BMP or WEBP image"


def read(file: RangedFile) -> MediaInfo:
    if file.size is not None and file.size > MEDIA_LIMITS["image"].max_bytes:
        # Known from the first answer's Content-Range (or Content-Length): no more of the file is read.
        raise ProbeError(too_large("image", file.size))
    head = file.read_at(0, 30)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        # Pillow reads a whole WEBP file to open it; the header says all we need.
        width, height, has_alpha = _webp_header(head)
        info = MediaInfo("image", "webp", size_of(file), width, height, has_alpha=has_alpha)
    else:
        info = _pillow_header(file)
    if _read_whole(info):
        _check_whole_image(info, file.read_at(0, info.size_bytes))
    return info


def _pillow_header(file: RangedFile) -> MediaInfo:
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
    return MediaInfo("image", image_format, size_of(file), width, height, has_alpha=has_alpha)


def _read_whole(info: MediaInfo) -> bool:
    """An image within the limits is read to its end (it was fetched whole already); one outside them is
    a 422 from its header, and is not decoded."""
    return not limit_violations(info)


def _check_whole_image(info: MediaInfo, data: bytes) -> None:
    """The image's data holds what its header promises and decodes to its end: a truncated or padded-out
    file is refused here rather than failing (and being billed) at the provider.

    Decoding is bounded in memory: a JPEG is decoded at 1/8 scale (every byte of its entropy-coded data is
    still read), a PNG's pixel data is inflated and counted, not kept, a BMP's pixel array is measured, and
    a WEBP is decoded only up to 4096x4096 px (libwebp has no scaled decode; above, its structure is checked).
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
_WEBP_DECODED_PIXELS = 4096 * 4096  # 64 MB decoded (RGBA) at most, in the API's 512 MB


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
    if (info.width or 0) * (info.height or 0) <= _WEBP_DECODED_PIXELS:
        _decode(data, info)  # libwebp decodes at full size only: a larger one is held to its structure alone


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
