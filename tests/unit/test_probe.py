"""Probing input media from their first bytes, over HTTP Range requests, against the model's limits."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from i2v.media import UnsafeUrl
from i2v.probe import Kind, MediaInfo, ProbeError, limit_violations, probe
from tests.corpus import CORPUS, URL, Case, MediaServer

CHUNK = 64 * 1024  # what the prober asks for at a time
MB = 1_000_000  # the limits' unit


def probe_with(handler: Callable[[httpx.Request], httpx.Response], kind: Kind) -> MediaInfo:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return probe(client, URL, kind)


# -- media made at test time


def image_file(mode: str, size: tuple[int, int], fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "#3080c080").save(buffer, fmt, **options)  # half transparent where it can be
    return buffer.getvalue()


def noise_png(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def encode_clip(
    path: Path,
    container: str = "mp4",
    *,
    size: tuple[int, int] = (320, 240),
    frames: int = 25,
    noise: bool = False,
    faststart: bool = False,
) -> bytes:
    """An H.264 clip at 10 fps; noise at qp 0 makes the media data large."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as output:
        stream = output.add_stream("libx264", rate=10, options={"preset": "ultrafast", "qp": "0"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(3)
        for index in range(frames):
            shape = (size[1], size[0], 3)
            pixels = rng.integers(0, 256, shape, np.uint8) if noise else np.full(shape, index * 9, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path.read_bytes()


def wav_file(seconds: float, rate: int = 16000, channels: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * channels * int(seconds * rate))
    return buffer.getvalue()


def mp3_file(seconds: float, *, xing: bool = True, rate: int = 44100) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3", options={"write_xing": "1" if xing else "0"}) as output:
        stream = output.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 128_000
        tone = np.sin(np.arange(int(seconds * rate), dtype=np.float32) / 10)[np.newaxis, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return buffer.getvalue()


MP3_FRAME_HEADER = bytes.fromhex("fffb9000")  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417-byte frames


def cbr_mp3_frames(count: int, first: bytes = b"") -> bytes:
    frame = (MP3_FRAME_HEADER + first).ljust(417, b"\x00")
    plain = MP3_FRAME_HEADER.ljust(417, b"\x00")
    return frame + plain * (count - 1)


def id3v2_tag(payload_size: int) -> bytes:
    syncsafe = bytes((payload_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + b"\x00" * payload_size


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    times = struct.pack(">QQIQ" if version == 1 else ">IIII", 0, 0, timescale, duration)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + b"\x00" * 80)


def tkhd(width: int, height: int, *, version: int = 0) -> bytes:
    ids = struct.pack(">QQIIQ" if version == 1 else ">IIIII", 0, 0, 1, 0, 0)  # times, track id, duration
    picture = b"\x00" * 52 + struct.pack(">II", width << 16, height << 16)
    return box(b"tkhd", bytes([version, 0, 0, 7]) + ids + picture)


def trak(width: int, height: int, *, version: int = 0) -> bytes:
    return box(b"trak", tkhd(width, height, version=version) + box(b"mdia", b"\x00" * 64))


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About 14 MB of media data, with the moov box after it (the encoder's default)."""
    data = encode_clip(tmp_path_factory.mktemp("clips") / "noise.mp4", size=(640, 480), noise=True)
    assert data.find(b"moov") > data.find(b"mdat") > 0
    return data


@pytest.fixture(scope="module")
def big_faststart_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clips") / "noise-faststart.mp4"
    data = encode_clip(path, size=(640, 480), noise=True, faststart=True)
    assert 0 < data.find(b"moov") < data.find(b"mdat")
    return data


# -- images


def test_png_size_format_and_opacity_come_from_the_header() -> None:
    data = image_file("RGB", (640, 480), "PNG")
    assert MediaServer(data).probe("image") == MediaInfo("image", "png", len(data), 640, 480)


@pytest.mark.parametrize(
    ("mode", "options"),
    [("RGBA", {}), ("LA", {}), ("P", {"transparency": 0}), ("RGB", {"transparency": (48, 128, 192)})],
    ids=["rgba", "grey-alpha", "palette-transparency", "colour-key"],
)
def test_png_with_an_alpha_channel_or_transparency_reports_alpha(
    mode: str, options: dict[str, object]
) -> None:
    info = MediaServer(image_file(mode, (300, 300), "PNG", **options)).probe("image")
    assert info.has_alpha


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "jpeg"), ("BMP", "bmp")])
def test_jpeg_and_bmp_are_read(fmt: str, name: str) -> None:
    data = image_file("RGB", (1024, 256), fmt)
    assert MediaServer(data).probe("image") == MediaInfo("image", name, len(data), 1024, 256)


@pytest.mark.parametrize(
    ("mode", "lossless", "alpha"),
    [("RGB", False, False), ("RGB", True, False), ("RGBA", False, True), ("RGBA", True, True)],
    ids=["lossy-vp8", "lossless-vp8l", "lossy-alpha-vp8x", "lossless-alpha-vp8l"],
)
def test_webp_size_and_alpha_come_from_its_first_chunk(mode: str, lossless: bool, alpha: bool) -> None:
    data = image_file(mode, (700, 260), "WEBP", lossless=lossless)
    assert MediaServer(data).probe("image") == MediaInfo(
        "image", "webp", len(data), 700, 260, has_alpha=alpha
    )


def test_image_within_the_size_limit_is_read_whole_in_one_request() -> None:
    data = noise_png(2000, 2000)
    server = MediaServer(data)
    info = server.probe("image")
    assert (info.width, info.height, info.size_bytes) == (2000, 2000, len(data))
    assert 10 * MB < len(data) <= 20 * MB
    assert server.ranges == [f"bytes=0-{20 * MB - 1}"]
    assert server.sent == len(data)


def test_image_over_the_size_limit_is_refused_from_its_first_answer_alone() -> None:
    data = noise_png(2700, 2700)
    server = MediaServer(data)
    with pytest.raises(ProbeError, match=r"^image is 21\.9 MB; it must be at most 20 MB$"):
        server.probe("image")
    assert len(data) > 20 * MB
    assert server.ranges == [f"bytes=0-{20 * MB - 1}"]
    assert server.sent <= 2 * CHUNK


def test_server_ignoring_range_has_an_image_within_the_limit_read_whole() -> None:
    data = noise_png(2000, 2000)
    server = MediaServer(data, honour_range=False)
    info = server.probe("image")
    assert (info.width, info.height, info.size_bytes) == (2000, 2000, len(data))
    assert server.sent == len(data)


def test_server_ignoring_range_has_only_the_start_of_an_oversize_image_read() -> None:
    server = MediaServer(noise_png(2700, 2700), honour_range=False)
    with pytest.raises(ProbeError, match="at most 20 MB"):
        server.probe("image")
    assert server.sent <= 2 * CHUNK


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_torture_corpus(case: Case) -> None:
    server = MediaServer(case.data)
    try:
        problems = limit_violations(server.probe(case.kind))
    except ProbeError as exc:
        problems = [str(exc)]
    if case.refused is None:
        assert problems == []
    else:
        assert any(case.refused in problem for problem in problems), problems


def test_gif_is_not_an_accepted_image_format() -> None:
    with pytest.raises(ProbeError, match="not a JPEG, PNG, BMP or WEBP image"):
        MediaServer(image_file("RGB", (300, 300), "GIF")).probe("image")


def test_decompression_bomb_header_is_refused_without_decoding() -> None:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))  # no pixels at all
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + idat
    with pytest.raises(ProbeError, match="too many pixels; each side must be 240-8000 px"):
        MediaServer(data).probe("image")


# -- clips


def test_faststart_mp4_gives_format_size_and_duration(tmp_path: Path) -> None:
    data = encode_clip(tmp_path / "clip.mp4", faststart=True)
    assert MediaServer(data).probe("video") == MediaInfo("video", "mp4", len(data), 320, 240, 2.5)


def test_quicktime_brand_makes_a_mov(tmp_path: Path) -> None:
    data = encode_clip(tmp_path / "clip.mov", "mov", size=(240, 426))
    assert MediaServer(data).probe("video") == MediaInfo("video", "mov", len(data), 240, 426, 2.5)


def test_moov_after_mdat_is_found_without_reading_the_media_data(big_clip: bytes) -> None:
    server = MediaServer(big_clip)
    assert server.probe("video") == MediaInfo("video", "mp4", len(big_clip), 640, 480, 2.5)
    assert len(big_clip) > 10 * MB
    assert server.sent <= 3 * CHUNK


def test_faststart_clip_from_a_server_ignoring_range_is_read_from_the_start_only(
    big_faststart_clip: bytes,
) -> None:
    server = MediaServer(big_faststart_clip, honour_range=False)
    assert server.probe("video").duration == 2.5
    assert server.sent <= 2 * CHUNK


def test_moov_after_mdat_on_a_server_ignoring_range_stops_at_max_read(big_clip: bytes) -> None:
    server = MediaServer(big_clip, honour_range=False)
    with pytest.raises(ProbeError, match="could not read the header within 262144 bytes"):
        server.probe("video", max_read=256 * 1024)
    assert server.sent <= 256 * 1024 + CHUNK


def test_max_read_bounds_the_bytes_fetched_by_range_requests(big_clip: bytes) -> None:
    server = MediaServer(big_clip)
    with pytest.raises(ProbeError, match="could not read the header within 2048 bytes"):
        server.probe("video", max_read=2048)
    assert server.sent <= 2048


def test_64_bit_box_sizes_and_version_1_headers_are_read() -> None:
    moov = box(b"moov", mvhd(90000, 90000 * 7, version=1) + trak(0, 0) + trak(1920, 1080, version=1))
    data = FTYP + box(b"mdat", b"\x00" * 300_000, large=True) + moov
    server = MediaServer(data)
    assert server.probe("video") == MediaInfo("video", "mp4", len(data), 1920, 1080, 7.0)
    assert server.sent <= 2 * CHUNK


def test_mdat_running_to_the_end_of_the_file_after_moov_is_fine() -> None:
    moov = box(b"moov", mvhd(600, 1800) + trak(480, 640))
    data = FTYP + moov + struct.pack(">I4s", 0, b"mdat") + b"\x00" * 99
    assert MediaServer(data).probe("video") == MediaInfo("video", "mp4", len(data), 480, 640, 3.0)


def test_fragmented_mp4_takes_its_duration_from_mehd() -> None:
    mehd = box(b"mehd", b"\x00\x00\x00\x00" + struct.pack(">I", 4000))
    data = FTYP + box(b"moov", mvhd(1000, 0) + trak(1280, 720) + box(b"mvex", mehd))
    assert MediaServer(data).probe("video").duration == 4.0


def test_clip_without_a_video_track_is_a_probe_error() -> None:
    data = FTYP + box(b"moov", mvhd(1000, 5000) + trak(0, 0))
    with pytest.raises(ProbeError, match="no video track"):
        MediaServer(data).probe("video")


def test_clip_without_moov_is_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="no moov box"):
        MediaServer(FTYP + box(b"mdat", b"\x00" * 1000)).probe("video")


def test_box_larger_than_its_container_is_a_probe_error() -> None:
    moov = box(b"moov", struct.pack(">I4s", 5000, b"trak") + b"\x00" * 100)
    with pytest.raises(ProbeError, match="impossible size"):
        MediaServer(FTYP + moov).probe("video")


@pytest.mark.parametrize(
    "data",
    [b"this is not a video at all, just text" * 10, image_file("RGB", (300, 300), "PNG")],
    ids=["text", "png"],
)
def test_bytes_that_are_not_iso_bmff_are_not_a_clip(data: bytes) -> None:
    with pytest.raises(ProbeError, match="not an MP4/MOV file"):
        MediaServer(data).probe("video")


# -- audio


def test_wav_duration_is_its_data_size_over_its_byte_rate() -> None:
    data = wav_file(3.0)
    assert MediaServer(data).probe("audio") == MediaInfo("audio", "wav", len(data), duration=3.0)


def test_wav_chunks_before_the_data_are_stepped_over() -> None:
    data = wav_file(2.5, rate=8000, channels=1)
    fmt_end = 12 + 8 + 16
    odd_chunk = b"LIST" + struct.pack("<I", 5) + b"INFO!" + b"\x00"  # padded to an even length
    data = data[:fmt_end] + odd_chunk + data[fmt_end:]
    assert MediaServer(data).probe("audio").duration == 2.5


def test_streamed_wav_without_a_data_size_runs_to_the_end_of_the_file() -> None:
    data = bytearray(wav_file(4.0, rate=8000, channels=1))
    data[40:44] = b"\xff\xff\xff\xff"
    assert MediaServer(bytes(data)).probe("audio").duration == 4.0


def test_mp3_duration_from_its_info_header_excludes_encoder_delay_and_padding() -> None:
    data = mp3_file(2.5)
    assert data.startswith(b"ID3")
    info = MediaServer(data).probe("audio")
    assert (info.format, info.size_bytes) == ("mp3", len(data))
    assert info.duration == pytest.approx(2.5, abs=0.001)


def test_cbr_mp3_without_a_header_is_timed_by_bitrate_and_size() -> None:
    assert MediaServer(mp3_file(3.0, xing=False)).probe("audio").duration == pytest.approx(3.0, abs=0.05)
    frames = cbr_mp3_frames(200)
    assert MediaServer(frames).probe("audio").duration == pytest.approx(200 * 417 * 8 / 128_000)


def test_vbri_header_gives_the_frame_count() -> None:
    vbri = b"\x00" * 32 + b"VBRI" + struct.pack(">HHHII", 1, 0, 75, 0, 500)
    data = cbr_mp3_frames(10, first=vbri)
    assert MediaServer(data).probe("audio").duration == pytest.approx(500 * 1152 / 44100)


def test_large_id3_tag_is_skipped_unread() -> None:
    data = id3v2_tag(3 * MB) + mp3_file(2.5)
    server = MediaServer(data)
    assert server.probe("audio").duration == pytest.approx(2.5, abs=0.001)
    assert server.sent <= 3 * CHUNK


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)) * 40, b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 100, id3v2_tag(100)],
    ids=["garbage", "riff-not-wave", "tag-without-frames"],
)
def test_bytes_that_are_not_wav_or_mp3_are_not_audio(data: bytes) -> None:
    with pytest.raises(ProbeError, match="not a WAV or MP3 file"):
        MediaServer(data).probe("audio")


# -- fetching


def test_missing_file_is_a_probe_error_naming_the_status() -> None:
    with pytest.raises(ProbeError, match="HTTP 404 Not Found"):
        probe_with(lambda request: httpx.Response(404), "image")


def test_empty_file_is_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="empty"):
        MediaServer(b"").probe("audio")


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("timed out"), httpx.ReadTimeout("")],
)
def test_transport_failure_is_a_probe_error_that_does_not_say_which(failure: httpx.TransportError) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(ProbeError) as caught:
        probe_with(fail, "video")
    assert str(caught.value) == "media.example cannot be fetched"


def test_url_guard_refusal_propagates_for_the_caller_to_map() -> None:
    def guard(request: httpx.Request) -> httpx.Response:
        raise UnsafeUrl("media.example resolves to a private or reserved address (10.0.0.1)")

    with pytest.raises(UnsafeUrl):
        probe_with(guard, "image")


def test_server_that_does_not_say_the_size_is_a_probe_error() -> None:
    server = MediaServer(noise_png(300, 300), honour_range=False, announce_size=False)
    with pytest.raises(ProbeError, match="did not say how large"):
        server.probe("image", max_read=CHUNK)  # too little to read to the end and measure it
    assert server.sent <= 2 * CHUNK


def test_size_is_learnt_at_the_end_of_a_short_body_of_unknown_length() -> None:
    data = wav_file(2.0, rate=8000, channels=1)
    info = MediaServer(data, honour_range=False, announce_size=False).probe("audio")
    assert (info.size_bytes, info.duration) == (len(data), 2.0)


# -- limits


def image(width: int | None = 1280, height: int | None = 720, **changes: Any) -> MediaInfo:
    return replace(MediaInfo("image", "png", MB), width=width, height=height, **changes)


def clip(
    width: int | None = 1280, height: int | None = 720, duration: float | None = 5.0, **changes: Any
) -> MediaInfo:
    base = MediaInfo("video", "mp4", 10 * MB)
    return replace(base, width=width, height=height, duration=duration, **changes)


def audio(duration: float | None = 5.0, **changes: Any) -> MediaInfo:
    return replace(MediaInfo("audio", "wav", MB), duration=duration, **changes)


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (image(200, 300), "image is 200x300 px; each side must be 240-8000 px"),
        (image(8001, 2000), "image is 8001x2000 px; each side must be 240-8000 px"),
        (image(2000, 240), "image is 2000x240 px (8.3:1); its aspect ratio must be between 1:8 and 8:1"),
        (image(240, 2000), "image is 240x2000 px (1:8.3); its aspect ratio must be between 1:8 and 8:1"),
        (image(size_bytes=20 * MB + 1), "image is 20.1 MB; it must be at most 20 MB"),
        (image(format="gif"), "image is GIF; it must be JPEG, PNG, BMP or WEBP"),
        (image(width=None), "image size is unknown; each side must be 240-8000 px"),
        (clip(duration=12.0), "clip is 12.0 s; it must be 2-10 s"),
        (clip(duration=1.5), "clip is 1.5 s; it must be 2-10 s"),
        (clip(duration=10.02), "clip is 10.020 s; it must be 2-10 s"),
        (clip(duration=None), "clip duration is unknown; it must be 2-10 s"),
        (clip(4097, 2160), "clip is 4097x2160 px; each side must be 240-4096 px"),
        (clip(320, 200), "clip is 320x200 px; each side must be 240-4096 px"),
        (clip(4000, 480), "clip is 4000x480 px (8.3:1); its aspect ratio must be between 1:8 and 8:1"),
        (clip(size_bytes=101 * MB), "clip is 101.0 MB; it must be at most 100 MB"),
        (clip(format="webm"), "clip is WEBM; it must be MP4 or MOV"),
        (audio(1.9), "audio is 1.9 s; it must be 2-30 s"),
        (audio(31.0), "audio is 31.0 s; it must be 2-30 s"),
        (audio(size_bytes=16 * MB), "audio is 16.0 MB; it must be at most 15 MB"),
        (audio(format="ogg"), "audio is OGG; it must be WAV or MP3"),
    ],
)
def test_each_broken_limit_is_named(info: MediaInfo, message: str) -> None:
    assert limit_violations(info) == [message]


@pytest.mark.parametrize(
    "info",
    [
        image(240, 240),
        image(8000, 1000),
        image(1000, 8000, size_bytes=20 * MB, format="webp"),
        clip(240, 240, 2.0, format="mov"),
        clip(4096, 512, 10.0, size_bytes=100 * MB),
        audio(2.0, format="mp3"),
        audio(30.0, size_bytes=15 * MB),
    ],
)
def test_media_at_the_limits_breaks_none(info: MediaInfo) -> None:
    assert limit_violations(info) == []


def test_alpha_breaks_a_limit_only_where_forbidden() -> None:
    transparent = image(has_alpha=True)
    assert limit_violations(transparent) == []
    assert limit_violations(transparent, forbid_alpha=True) == [
        "image has transparency (an alpha channel); this provider needs it opaque"
    ]


def test_every_broken_limit_is_reported() -> None:
    assert len(limit_violations(image(100, 5000, size_bytes=30 * MB, format="tiff"))) == 4


def test_a_fragmented_clip_too_finely_cut_to_time_within_the_budget_says_so() -> None:
    # A fragment per frame, each larger than a read-ahead: every moof costs a request of its own.
    options = {"movflags": "frag_keyframe+empty_moov"}
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4", options=options) as output:
        stream = output.add_stream("libx264", rate=10, options={"preset": "ultrafast", "qp": "0", "g": "1"})
        stream.width, stream.height = 320, 240
        rng = np.random.default_rng(5)
        for _ in range(30):
            pixels = rng.integers(0, 256, (240, 320, 3), np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode())
    server = MediaServer(buffer.getvalue())
    with pytest.raises(ProbeError, match=r"fragments this short cannot be timed .* a fragment per keyframe"):
        server.probe("video", max_read=1024 * 1024)
