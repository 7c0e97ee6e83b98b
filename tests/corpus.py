"""The torture corpus: media files that lie, are cut short or are odd but valid, made at test time (no blobs
in the repository), each with what the probe must make of it. Unit tests run it through the probe; the
integration test through the API and the drop folder."""

from __future__ import annotations

import io
import re
import struct
import tempfile
import wave
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import httpx
import numpy as np
from PIL import Image, PngImagePlugin

from i2v.models import Kind
from i2v.probe import MediaInfo, probe


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


def jpeg_of(size: int) -> Callable[[], bytes]:
    """A valid 800x600 JPEG padded out to exactly `size` bytes with APP9 segments."""

    def make() -> bytes:
        jpeg = photo((800, 600))
        filler = size - len(jpeg)
        segments = []
        while filler:
            payload = min(65533, filler - 4)
            if 0 < filler - (payload + 4) < 4:  # leave enough for one more segment's marker and length
                payload -= 4
            segments.append(b"\xff\xe9" + struct.pack(">H", payload + 2) + b"\x00" * payload)
            filler -= payload + 4
        data = jpeg[:2] + b"".join(segments) + jpeg[2:]
        assert len(data) == size
        return data

    make.__name__ = f"jpeg_of_{size}"
    return make


def picture(width: int, height: int) -> Callable[[], bytes]:
    def make() -> bytes:
        return photo((width, height), "PNG")

    make.__name__ = f"png_{width}x{height}"
    return make


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
    Case(
        "png whose IHDR says 8000x8000 in 69 bytes", "image", png_claiming_8000_square, "IHDR) says 8000x8000"
    ),
    Case(
        "webp whose VP8X canvas is not its frame",
        "image",
        webp_canvas_around_small_frame,
        "canvas (VP8X) says 1280x720 px, its image chunk 100x100 px",
    ),
    Case(
        "jpeg of 20,241,460 bytes (20 MB < it < 20 MiB)",
        "image",
        jpeg_of(20_241_460),
        "20.3 MB; it must be at most 20 MB",
    ),
    Case("jpeg of 20,000,001 bytes", "image", jpeg_of(20_000_001), "20.1 MB; it must be at most 20 MB"),
    Case("jpeg of 20,000,000 bytes", "image", jpeg_of(20_000_000), None),
    Case("png 240x240", "image", picture(240, 240), None),
    Case("png 239x300", "image", picture(239, 300), "image is 239x300 px; each side must be 240-8000 px"),
    Case("png 1920x240 (8:1)", "image", picture(1920, 240), None),
    Case("png 1928x240", "image", picture(1928, 240), "its aspect ratio must be between 1:8 and 8:1"),
    Case("png with a 5 MiB text chunk", "image", png_with_big_text, None),
    Case("jpeg with 4.6 MB of APP segments", "image", jpeg_with_app_segments, None),
    Case("interlaced png", "image", interlaced_png, None),
    Case("16-bit grey png", "image", sixteen_bit_grey_png, None),
    Case("palette png", "image", palette_png, None),
    Case("jpeg", "image", jpeg_photo, None),
    Case("bmp", "image", bmp_photo, None),
    Case("webp", "image", webp_photo, None),
]


# -- clips


def clip(
    seconds: float = 4.0, size: tuple[int, int] = (320, 240), container: str = "mp4", movflags: str = ""
) -> bytes:
    """An H.264 clip at 10 fps, a keyframe a second (so a fragmented one has a fragment a second)."""
    options = {"movflags": movflags} if movflags else {}
    # A file, not a buffer: faststart moves the moov by reopening the output by name.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        _encode(path, seconds, size, container, options)
        return path.read_bytes()


def _encode(
    path: Path, seconds: float, size: tuple[int, int], container: str, options: dict[str, str]
) -> None:
    with av.open(str(path), "w", format=container, options=options) as output:
        stream = output.add_stream("libx264", rate=10, options={"preset": "ultrafast", "g": "10"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(round(seconds * 10)):
            pixels = np.full((size[1], size[0], 3), index * 5 % 256, np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode())


def patched(data: bytes, box: bytes, offset: int, value: bytes) -> bytes:
    """`value` written `offset` bytes into the payload of the first `box` (a version 0 full box)."""
    at = data.index(box) + 4 + offset
    return data[:at] + value + data[at + len(value) :]


def mvhd_says_5_s_of_12() -> bytes:
    data = clip(12.0)
    at = data.index(b"mvhd") + 4
    timescale = struct.unpack(">I", data[at + 12 : at + 16])[0]
    return patched(data, b"mvhd", 16, struct.pack(">I", 5 * timescale))


def tkhd_says_640x360_of_200x200() -> bytes:
    return patched(clip(4.0, (200, 200)), b"tkhd", 76, struct.pack(">II", 640 << 16, 360 << 16))


def fragmented(seconds: float, extra: str = "") -> Callable[[], bytes]:
    def make() -> bytes:
        return clip(seconds, movflags="frag_keyframe+empty_moov" + extra)

    make.__name__ = f"fragmented_{seconds:g}s{extra.replace('+', '_')}"
    return make


def faststart_clip() -> bytes:
    return clip(4.0, movflags="faststart")


def mov_clip() -> bytes:
    return clip(3.0, (240, 426), container="mov")


def sized_clip(seconds: float, size: tuple[int, int] = (320, 240)) -> Callable[[], bytes]:
    def make() -> bytes:
        return clip(seconds, size)

    make.__name__ = f"clip_{seconds:g}s_{size[0]}x{size[1]}"
    return make


def clip_at_10_s() -> bytes:
    return clip(10.0)


CLIPS = [
    Case("mp4 whose mvhd says 5 s of 12 s of frames", "video", mvhd_says_5_s_of_12, "clip is 12.0 s by its"),
    Case(
        "mp4 whose tkhd says 640x360 of 200x200 frames",
        "video",
        tkhd_says_640x360_of_200x200,
        "200x200 px by its stsd",
    ),
    Case("fragmented mp4 (empty moov)", "video", fragmented(4.0), None),
    Case(
        "fragmented mp4 (empty moov, default-base-moof)", "video", fragmented(4.0, "+default_base_moof"), None
    ),
    Case("fragmented mp4 of 12 s", "video", fragmented(12.0), "clip is 12.0 s"),
    Case("fragmented mp4 cut in half", "video", half(fragmented(8.0)), "cut short"),
    Case("mp4 cut in half (moov first)", "video", half(faststart_clip), "cut short"),
    Case("faststart mp4", "video", faststart_clip, None),
    Case("mov", "video", mov_clip, None),
    Case("mp4 of 10 s", "video", clip_at_10_s, None),
    Case("mp4 of 2 s", "video", sized_clip(2.0), None),
    Case("mp4 of 1.9 s", "video", sized_clip(1.9), "clip is 1.9 s; it must be 2-10 s"),
    Case("mp4 of 10.1 s", "video", sized_clip(10.1), "clip is 10.1 s; it must be 2-10 s"),
    Case("mp4 240x240", "video", sized_clip(3.0, (240, 240)), None),
    Case(
        "mp4 238x240",
        "video",
        sized_clip(3.0, (238, 240)),
        "clip is 238x240 px; each side must be 240-4096 px",
    ),
]

# -- audio


def wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(bytes(i * 7 % 256 for i in range(int(seconds * rate))))
    return buffer.getvalue()


def wav_byte_rate_times_4() -> bytes:
    """60 s of audio whose fmt chunk's byte rate is four times what it holds: 15 s by that field alone."""
    data = wav(60.0)
    at = data.index(b"fmt ") + 8 + 8
    byte_rate = struct.unpack("<I", data[at : at + 4])[0]
    return data[:at] + struct.pack("<I", byte_rate * 4) + data[at + 4 :]


def mp3(seconds: float, bit_rate: int = 32_000) -> bytes:
    """CBR MP3 (LAME, with its Info tag), mono 22.05 kHz."""
    rate = 22050
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as output:
        stream = output.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        tone = np.sin(np.arange(int(seconds * rate), dtype=np.float32) / 10)[np.newaxis, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        output.mux([*stream.encode(frame), *stream.encode(None)])
    return buffer.getvalue()


def mp3_info_says_10_s_of_40() -> bytes:
    data = mp3(40.0)
    at = data.index(b"Info") + 8  # after the tag's flags: the frame count
    frames = struct.unpack(">I", data[at : at + 4])[0]
    return data[:at] + struct.pack(">I", frames // 4) + data[at + 4 :]


def mp3_behind_a_big_id3_tag() -> bytes:
    size = 3 * 1024 * 1024
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + b"\x00" * size + mp3(5.0)


def wav_5_s() -> bytes:
    return wav(5.0)


def mp3_5_s() -> bytes:
    return mp3(5.0)


def mp3_cut_to_an_eighth() -> bytes:
    data = mp3(20.0)
    return data[: len(data) // 8]


def wav_cut_in_half() -> bytes:
    data = wav(10.0)
    return data[: len(data) // 2]


AUDIO = [
    Case(
        "wav whose byte rate is 4x", "audio", wav_byte_rate_times_4, "audio is 60.0 s by its fmt sample rate"
    ),
    Case(
        "cbr mp3 whose Info tag says 10 s of 40", "audio", mp3_info_says_10_s_of_40, "audio is 40.0 s by its"
    ),
    Case(
        "mp3 cut to an eighth",
        "audio",
        mp3_cut_to_an_eighth,
        "audio is cut short: its Info tag counts 20.0 s",
    ),
    Case("wav cut in half", "audio", wav_cut_in_half, "audio is cut short: its data chunk says 80000 bytes"),
    Case("mp3 behind a 3 MiB ID3 tag", "audio", mp3_behind_a_big_id3_tag, None),
    Case("wav", "audio", wav_5_s, None),
    Case("wav of 2 s", "audio", lambda: wav(2.0), None),
    Case("wav of 1.9 s", "audio", lambda: wav(1.9), "audio is 1.9 s; it must be 2-30 s"),
    Case("wav of 30 s", "audio", lambda: wav(30.0), None),
    Case("wav of 30.5 s", "audio", lambda: wav(30.5), "audio is 30.5 s; it must be 2-30 s"),
    Case("mp3", "audio", mp3_5_s, None),
]

CORPUS = [*IMAGES, *CLIPS, *AUDIO]


# -- serving a file as a server would

URL = "https://media.example/input"


class MediaServer:
    """Serves one file through httpx's mock transport, honouring Range unless told not to; counts the
    requests and the bytes sent (a body is made only as the client pulls it)."""

    def __init__(self, data: bytes, *, honour_range: bool = True, announce_size: bool = True) -> None:
        self.data = data
        self.honour_range = honour_range
        self.announce_size = announce_size
        self.sent = 0
        self.requests = 0
        self.ranges: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        asked = request.headers.get("range")
        if self.honour_range and asked:
            self.ranges.append(asked)
            match = re.fullmatch(r"bytes=(\d+)-(\d+)", asked)
            assert match is not None
            first, last = int(match[1]), min(int(match[2]), len(self.data) - 1)
            if first >= len(self.data):
                return httpx.Response(416, headers={"Content-Range": f"bytes */{len(self.data)}"})
            headers = {"Content-Range": f"bytes {first}-{last}/{len(self.data)}"}
            return httpx.Response(206, headers=headers, content=self._body(first, last))
        headers = {"Content-Length": str(len(self.data))} if self.announce_size else {}
        return httpx.Response(200, headers=headers, content=self._body(0, len(self.data) - 1))

    def _body(self, first: int, last: int) -> Iterator[bytes]:
        for offset in range(first, last + 1, 16 * 1024):  # sent only as the client pulls it
            piece = self.data[offset : min(offset + 16 * 1024, last + 1)]
            self.sent += len(piece)
            yield piece

    def probe(self, kind: Kind, **kwargs: int) -> MediaInfo:
        with httpx.Client(transport=httpx.MockTransport(self)) as client:
            return probe(client, URL, kind, **kwargs)
