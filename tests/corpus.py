"""The torture corpus: media files that lie, are cut short or are odd but valid, made at test time (no blobs
in the repository), each with what the probe must make of it. Unit tests run it through the probe; the
integration test through the API and the drop folder."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, PngImagePlugin

from i2v.models import Kind


@dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    make: Callable[[], bytes]
    refused: str | None  # a piece of the 422's message; None: the file is accepted

    @property
    def data(self) -> bytes:
        return _made(self.make)


@cache
def _made(make: Callable[[], bytes]) -> bytes:
    return make()


# -- images


def photo(size: tuple[int, int] = (640, 480), fmt: str = "JPEG", **options: object) -> bytes:
    """A picture with detail in it (noise over a gradient), so its encoding is not trivially small."""
    width, height = size
    rng = np.random.default_rng(11)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = np.clip(ramp + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming_8000_square() -> bytes:
    """An IHDR of 8000x8000 RGB with a 69-byte file: nothing like the 192 MB of pixels it promises."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 4))
    data = b"\x89PNG\r\n\x1a\n" + ihdr + idat + png_chunk(b"IEND", b"")
    assert len(data) == 69
    return data


def png_with_big_text() -> bytes:
    """A valid PNG with 5 MiB of text (a tEXt chunk) before its pixels: under every limit."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * (5 * 1024 * 1024))
    return photo((800, 600), "PNG", pnginfo=info)


def jpeg_with_app_segments() -> bytes:
    """A valid JPEG with 4.6 MB of APPn segments (as cameras and editors leave) before its frame header."""
    jpeg = photo((800, 600))
    segment = b"\xff\xe9" + struct.pack(">H", 65535) + b"\x00" * 65533  # APP9, 64 KiB
    count = 4_600_000 // len(segment) + 1
    return jpeg[:2] + segment * count + jpeg[2:]


def jpeg_cut_after_sos() -> bytes:
    jpeg = photo()
    sos = jpeg.index(b"\xff\xda")
    length = struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]
    return jpeg[: sos + 2 + length]


def webp_canvas_around_small_frame() -> bytes:
    """An extended WEBP whose VP8X canvas says 1280x720 around a 100x100 lossy frame (a still image)."""
    simple = photo((100, 100), "WEBP", quality=80)
    frame = simple[12:]  # the VP8 chunk, header included
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (1279).to_bytes(3, "little")
    vp8x += (719).to_bytes(3, "little")
    body = b"WEBP" + vp8x + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def interlaced_png() -> bytes:
    return photo((301, 257), "PNG", interlace=1)


def sixteen_bit_grey_png() -> bytes:
    buffer = io.BytesIO()
    pixels = (np.arange(300 * 260, dtype=np.uint16).reshape(260, 300) * 7).astype(np.uint16)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def palette_png() -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(photo((333, 250), "PNG"))).convert("P").save(buffer, "PNG")
    return buffer.getvalue()


def half(make: Callable[[], bytes]) -> Callable[[], bytes]:
    def cut() -> bytes:
        data = make()
        return data[: len(data) // 2]

    cut.__name__ = f"half_{make.__name__}"
    return cut


def jpeg_over_20_mb_under_20_mib() -> bytes:
    """20,241,460 bytes: over 20 MB (the hosts' unit), under 20 MiB."""
    jpeg = photo((800, 600))
    segment = b"\xff\xe9" + struct.pack(">H", 65535) + b"\x00" * 65533
    filler = 20_241_460 - len(jpeg)
    count, rest = divmod(filler, len(segment))
    tail = b"\xff\xe9" + struct.pack(">H", rest - 2) + b"\x00" * (rest - 4) if rest else b""
    data = jpeg[:2] + segment * count + tail + jpeg[2:]
    assert len(data) == 20_241_460
    return data


def jpeg_photo() -> bytes:
    return photo()


def png_photo() -> bytes:
    return photo(fmt="PNG")


def bmp_photo() -> bytes:
    return photo(fmt="BMP")


def webp_photo() -> bytes:
    return photo(fmt="WEBP")


IMAGES = [
    Case("png cut in half", "image", half(png_photo), "image data ends early"),
    Case("jpeg cut in half", "image", half(jpeg_photo), "image data is damaged or cut short"),
    Case("jpeg cut just after SOS", "image", jpeg_cut_after_sos, "image data is damaged or cut short"),
    Case("bmp cut in half", "image", half(bmp_photo), "image data ends early"),
    Case("webp cut in half", "image", half(webp_photo), "image data ends early"),
    Case("png whose IHDR says 8000x8000 in 69 bytes", "image", png_claiming_8000_square, "IHDR) says 8000x8000"),
    Case(
        "webp whose VP8X canvas is not its frame",
        "image",
        webp_canvas_around_small_frame,
        "canvas (VP8X) says 1280x720 px, its image chunk 100x100 px",
    ),
    Case("jpeg of 20,241,460 bytes", "image", jpeg_over_20_mb_under_20_mib, "20.3 MB; it must be at most 20 MB"),
    Case("png with a 5 MiB text chunk", "image", png_with_big_text, None),
    Case("jpeg with 4.6 MB of APP segments", "image", jpeg_with_app_segments, None),
    Case("interlaced png", "image", interlaced_png, None),
    Case("16-bit grey png", "image", sixteen_bit_grey_png, None),
    Case("palette png", "image", palette_png, None),
    Case("jpeg", "image", jpeg_photo, None),
    Case("bmp", "image", bmp_photo, None),
    Case("webp", "image", webp_photo, None),
]

CORPUS = [*IMAGES]
