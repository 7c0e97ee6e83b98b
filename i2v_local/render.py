"""Embedded stand-in for the Wan 2.7 model: renders real H.264/AAC MP4s that plausibly animate the inputs.

It shows what it was asked: the prompt (and negative prompt) as a caption at the bottom of every frame, and
the seed choosing the direction of the camera's drift. Deterministic for a seed, streams frames straight into
the encoder and keeps no module-level state.
"""

from __future__ import annotations

import contextlib
import math
import unicodedata
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["RenderError", "RenderJob", "render"]

_MAX_DURATION = 15.0
_MAX_FPS = 60
_MIN_SHORT_SIDE = 64
_MAX_SHORT_SIDE = 2160

_ZOOM = 1.15  # Ken Burns end scale for a whole clip; a continuation tail zooms proportionally less
_DRIFT = 0.8  # fraction of the free margin the zoom centre wanders, in a direction the seed picks
# Seed n drifts n golden angles round the compass: neighbouring seeds (7 and 8) move 137.5 degrees apart,
# where a random angle per seed would often put them side by side.
_GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))
_FADE_FRACTION = 0.4

# veryfast is ~2x slower than ultrafast here but has deblocking/CABAC/B-frames: ultrafast at crf 23 is
# visibly blocky and ~5-10x bigger, while veryfast still renders 720p x 5 s in well under 3 s on 2 cores.
_PRESET = "veryfast"
_CRF = "23"
_GOP_SECONDS = 2  # keyframe every 2 s keeps browser seeking snappy

_AUDIO_RATE = 48_000
_AUDIO_LAYOUT = "stereo"
_AUDIO_BITRATE = 128_000
_AAC_FRAME = 1024

_PROGRESS_STEPS = 20

# The caption band: sizes are fractions of the output's short side, so 720p and 1080p read alike.
_CAPTION_FONT = 1 / 26  # 28 px at 720p, 42 px at 1080p
_CAPTION_MIN_FONT = 10
_CAPTION_PROMPT_LINES = 3
_CAPTION_BAND_ALPHA = 150  # the band darkens the picture under it; text is opaque
_CAPTION_TEXT = (255, 255, 255)
_CAPTION_NEGATIVE_TEXT = (255, 205, 120)  # amber, so "not: ..." is not read as part of the prompt
_ELLIPSIS = "\u2026"

_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "WEBP"})  # MPO: what PIL calls many camera JPEGs
_CLIP_DEMUXERS = frozenset({"mov", "mp4"})  # FFmpeg's one demuxer for the whole ISO-BMFF family
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})

# Tag and convert to BT.709 (the HD default players assume) so colours survive the round trip.
_AVCOL_BT709 = 1
_AVCOL_RANGE_MPEG = 1


@dataclass(frozen=True)
class RenderJob:
    """What to render; paths point at local files."""

    duration: float  # total output length in seconds (2-15)
    short_side: int = 720  # 720 or 1080: the output's shorter side in pixels
    first_frame: Path | None = None  # image (JPEG/PNG/BMP/WEBP)
    last_frame: Path | None = None  # image
    clip: Path | None = None  # MP4/MOV to continue
    audio: Path | None = None  # WAV/MP3 driving audio
    fps: int = 24
    seed: int = 0  # picks the direction of the zoom's drift; output is deterministic for a seed
    prompt: str = ""  # drawn as a caption, with the negative prompt, at the bottom of every frame
    negative_prompt: str = ""


class RenderError(Exception):
    """A job that cannot be rendered: bad parameters or an unreadable input (named in the message)."""


def render(job: RenderJob, out: Path, on_progress: Callable[[float], None] | None = None) -> None:
    """Write an MP4 to `out`. on_progress gets fractions 0.0..1.0, increasing, called at most ~20 times,
    last call 1.0.

    Raises RenderError for invalid jobs and unreadable inputs; a partially written `out` is removed.
    """
    n_frames = _validate(job)
    source = _open_source(job, n_frames)
    caption = _Caption.build(job.prompt, job.negative_prompt, source.size)
    out = Path(out)
    progress = _Progress(on_progress, n_frames)
    try:
        with contextlib.closing(source.frames) as frames:
            captioned = frames if caption is None else map(caption.over, frames)
            _encode(out, job, source.size, captioned, progress)
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink(missing_ok=True)
        raise
    progress.finished()


# --- job validation and input loading -------------------------------------------------------------


def _validate(job: RenderJob) -> int:
    if (job.first_frame is None) == (job.clip is None):
        raise RenderError("exactly one of first_frame or clip must be set")
    if job.audio is not None and job.clip is not None:
        raise RenderError("audio is only supported with first_frame, not with clip")
    if not (math.isfinite(job.duration) and 0 < job.duration <= _MAX_DURATION):
        raise RenderError(f"duration must be in (0, {_MAX_DURATION:g}] seconds, got {job.duration!r}")
    if not 1 <= job.fps <= _MAX_FPS:
        raise RenderError(f"fps must be in 1..{_MAX_FPS}, got {job.fps!r}")
    if not (_MIN_SHORT_SIDE <= job.short_side <= _MAX_SHORT_SIDE and job.short_side % 2 == 0):
        raise RenderError(
            f"short_side must be an even number in {_MIN_SHORT_SIDE}..{_MAX_SHORT_SIDE}, "
            f"got {job.short_side!r}"
        )
    n_frames = round(job.duration * job.fps)
    if n_frames < 1:
        raise RenderError(f"duration {job.duration!r} s is shorter than one frame at {job.fps} fps")
    for label, path in (
        ("first_frame", job.first_frame),
        ("last_frame", job.last_frame),
        ("clip", job.clip),
        ("audio", job.audio),
    ):
        if path is not None and not Path(path).is_file():
            raise RenderError(f"{label} {path} does not exist or is not a file")
    return n_frames


@dataclass(frozen=True)
class _Source:
    size: tuple[int, int]
    frames: Generator[_Frame, None, None]


def _open_source(job: RenderJob, n_frames: int) -> _Source:
    """Reads and checks every input up front, so bad input fails before any output is written."""
    angle = job.seed * _GOLDEN_ANGLE
    drift = (_DRIFT * math.cos(angle), _DRIFT * math.sin(angle))
    if job.audio is not None:
        _probe_audio(Path(job.audio))

    if job.first_frame is not None:
        short_side = job.short_side
        image, oriented = _read_image(
            "first_frame", Path(job.first_frame), lambda dims: _working_size(_output_size(dims, short_side))
        )
        size = _output_size(oriented, job.short_side)
        base = _Picture.from_image(_cover(image, _working_size(size)))
        last = _load_last(job, size)
        frames: Generator[_Frame, None, None] = _zoom_frames(
            base, size, n_frames, _ZOOM, drift, skip_start=False
        )
        if last is not None:
            frames = _fade_to(frames, n_frames, max(1, round(n_frames * _FADE_FRACTION)), last)
        return _Source(size, frames)

    assert job.clip is not None
    clip = _probe_clip(Path(job.clip))
    size = _output_size((clip.width, clip.height), job.short_side)
    n_clip = min(n_frames, max(1, round(clip.length * job.fps)))
    last = _load_last(job, size)
    frames = _clip_frames(Path(job.clip), size, job.fps, n_clip, n_frames, drift)
    if last is not None:
        # Fade over the continuation; a clip that fills the whole duration has none, so use its tail.
        window = n_frames - n_clip if n_clip < n_frames else max(1, round(n_frames * _FADE_FRACTION))
        frames = _fade_to(frames, n_frames, window, last)
    return _Source(size, frames)


def _load_last(job: RenderJob, size: tuple[int, int]) -> _Picture | None:
    if job.last_frame is None:
        return None
    image, _ = _read_image("last_frame", Path(job.last_frame), lambda _dims: size)
    return _Picture.from_image(_cover(image, size))


def _read_image(
    label: str, path: Path, cover_size: Callable[[tuple[int, int]], tuple[int, int]]
) -> tuple[Image.Image, tuple[int, int]]:
    """Decodes the image upright as RGB, at least big enough to cover `cover_size(upright size)`.

    Returns the image and its full upright size (the decoded one may be smaller, see draft).
    """
    try:
        with Image.open(path) as img:
            if img.format not in _IMAGE_FORMATS:
                raise RenderError(f"{label} {path} is a {img.format} image; expected JPEG, PNG, BMP or WEBP")
            stored_w, stored_h = img.size
            rotated = img.getexif().get(_EXIF_ORIENTATION) in _ROTATED_ORIENTATIONS
            upright_size = (stored_h, stored_w) if rotated else (stored_w, stored_h)
            cover_w, cover_h = cover_size(upright_size)
            scale = max(cover_w / upright_size[0], cover_h / upright_size[1])
            # JPEG can decode at 1/2..1/8 scale for free: phone photos are often 4x the output size.
            img.draft("RGB", (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))
            rgb = ImageOps.exif_transpose(img).convert("RGB")
            rgb.load()
    except RenderError:
        raise
    except Exception as exc:
        # PIL reports bad files through many unrelated exception types; all mean "unreadable" here.
        raise RenderError(f"{label} {path} is not a readable image: {exc}") from exc
    return rgb, upright_size


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    width, height = size
    src_w, src_h = img.size
    scale = max(width / src_w, height / src_h)
    crop_w, crop_h = width / scale, height / scale
    # Clamped: float rounding can put an exact fit a hair outside the image, which PIL rejects.
    left, top = max(0.0, (src_w - crop_w) / 2), max(0.0, (src_h - crop_h) / 2)
    box = (left, top, min(float(src_w), left + crop_w), min(float(src_h), top + crop_h))
    return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _output_size(source: tuple[int, int], short_side: int) -> tuple[int, int]:
    width, height = source
    if width <= 0 or height <= 0:
        raise RenderError(f"input has no usable dimensions ({width}x{height})")
    long_side = max(2, round(short_side * max(width, height) / min(width, height) / 2) * 2)
    return (long_side, short_side) if width >= height else (short_side, long_side)


def _working_size(size: tuple[int, int]) -> tuple[int, int]:
    # Pre-scaled once so the most zoomed-in frame still samples ~1:1 instead of upscaling.
    return _even(size[0] * _ZOOM), _even(size[1] * _ZOOM)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


@dataclass(frozen=True)
class _ClipInfo:
    width: int  # display size: sample aspect ratio applied
    height: int
    length: float  # seconds from the first frame's start to the last frame's end


def _probe_clip(path: Path) -> _ClipInfo:
    """Demuxes without decoding: cheap, and gives a length that does not trust container metadata."""
    try:
        with av.open(str(path), mode="r") as container:
            if not _CLIP_DEMUXERS & set(container.format.name.split(",")):
                raise RenderError(f"clip {path} is a {container.format.name} file; expected MP4 or MOV")
            if not container.streams.video:
                raise RenderError(f"clip {path} has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            sar = stream.sample_aspect_ratio
            if sar is not None and sar > 0:
                width = round(width * sar)
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            time_base = stream.time_base or Fraction(1, 90_000)
            fallback_duration = 1 / rate / time_base
            start: int | None = None
            end = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                packet_end = packet.pts + (packet.duration or round(fallback_duration))
                start = packet.pts if start is None else min(start, packet.pts)
                end = max(end, packet_end)
    except RenderError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise RenderError(f"clip {path} is not a readable video: {exc}") from exc
    if start is None:
        raise RenderError(f"clip {path} has no video frames")
    if width <= 0 or height <= 0:
        raise RenderError(f"clip {path} has no usable dimensions ({width}x{height})")
    return _ClipInfo(width, height, float((end - start) * time_base))


def _probe_audio(path: Path) -> None:
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise RenderError(f"audio {path} has no audio stream")
    except RenderError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise RenderError(f"audio {path} is not a readable audio file: {exc}") from exc


# --- pictures and frame generators ------------------------------------------------------------------


@dataclass(frozen=True)
class _Picture:
    """A yuv420p picture as three 8-bit PIL planes: zoom and blend touch 1.5 bytes/pixel instead of 4
    (PIL stores RGB as RGBX), and no RGB->YUV conversion is needed per frame."""

    y: Image.Image
    u: Image.Image
    v: Image.Image

    @classmethod
    def from_image(cls, img: Image.Image) -> _Picture:
        rgb = VideoFrame.from_ndarray(np.asarray(img.convert("RGB")), format="rgb24")
        return cls.from_frame(rgb, img.size)

    @classmethod
    def from_frame(cls, frame: VideoFrame, size: tuple[int, int]) -> _Picture:
        width, height = size
        yuv = _to_output_format(frame, size).to_ndarray().reshape(-1)
        luma, chroma = width * height, (width // 2) * (height // 2)
        return cls(
            Image.fromarray(yuv[:luma].reshape(height, width)),
            Image.fromarray(yuv[luma : luma + chroma].reshape(height // 2, width // 2)),
            Image.fromarray(yuv[luma + chroma :].reshape(height // 2, width // 2)),
        )

    @property
    def size(self) -> tuple[int, int]:
        return self.y.size

    def crop_resize(self, size: tuple[int, int], box: tuple[float, float, float, float]) -> _Picture:
        width, height = size
        half = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)
        bilinear = Image.Resampling.BILINEAR
        return _Picture(
            self.y.resize(size, bilinear, box=box),
            self.u.resize((width // 2, height // 2), bilinear, box=half),
            self.v.resize((width // 2, height // 2), bilinear, box=half),
        )

    def blend(self, other: _Picture, alpha: float) -> _Picture:
        return _Picture(
            Image.blend(self.y, other.y, alpha),
            Image.blend(self.u, other.u, alpha),
            Image.blend(self.v, other.v, alpha),
        )

    def to_frame(self) -> VideoFrame:
        width = self.y.width
        buf = np.concatenate([np.asarray(plane).reshape(-1) for plane in (self.y, self.u, self.v)])
        return VideoFrame.from_ndarray(buf.reshape(-1, width), format="yuv420p")


# Clip frames pass through untouched unless they need blending, which saves a round trip via PIL.
_Frame = _Picture | VideoFrame


def _to_output_format(frame: VideoFrame, size: tuple[int, int]) -> VideoFrame:
    return frame.reformat(
        width=size[0],
        height=size[1],
        format="yuv420p",
        dst_colorspace="ITU709",
        dst_color_range=_AVCOL_RANGE_MPEG,
    )


def _ease(t: float) -> float:
    # Smoothstep: moves start and end at rest instead of jerking.
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


def _zoom_frames(
    base: _Picture,
    size: tuple[int, int],
    count: int,
    zoom_end: float,
    drift: tuple[float, float],
    *,
    skip_start: bool,
) -> Generator[_Picture, None, None]:
    """A Ken Burns zoom-in on `base` (pre-scaled to the working size): frame 0 shows all of it, unless
    skip_start, where the segment continues a frame already shown at scale 1."""
    base_w, base_h = base.size
    for index in range(count):
        # skip_start: the frame at t=0 was already shown, so end-align the steps; else span both ends.
        steps = count if skip_start else max(1, count - 1)
        eased = _ease((index + 1 if skip_start else index) / steps)
        scale = zoom_end**eased
        box_w, box_h = base_w / scale, base_h / scale
        # The drift grows with `eased` while the free margin grows faster (it is concave in eased), so
        # the box stays inside the picture for |drift| <= 1.
        centre_x = base_w / 2 + drift[0] * eased * (base_w - base_w / zoom_end) / 2
        centre_y = base_h / 2 + drift[1] * eased * (base_h - base_h / zoom_end) / 2
        x0 = min(max(0.0, centre_x - box_w / 2), base_w - box_w)
        y0 = min(max(0.0, centre_y - box_h / 2), base_h - box_h)
        yield base.crop_resize(size, (x0, y0, x0 + box_w, y0 + box_h))


def _fade_to(
    frames: Iterator[_Frame], total: int, window: int, target: _Picture
) -> Generator[_Frame, None, None]:
    """Crossfades the last `window` of `total` frames into `target`, ending exactly on it."""
    start = total - window
    for index, frame in enumerate(frames):
        if index < start:
            yield frame
            continue
        alpha = _ease((index - start + 1) / window)
        if alpha >= 1.0:
            yield target
            continue
        picture = frame if isinstance(frame, _Picture) else _Picture.from_frame(frame, target.size)
        yield picture.blend(target, alpha)


def _clip_frames(
    path: Path,
    size: tuple[int, int],
    fps: int,
    n_clip: int,
    n_total: int,
    drift: tuple[float, float],
) -> Generator[_Frame, None, None]:
    """The clip resampled to `fps`, then a zoom continuing from its last frame up to `n_total` frames."""
    last = yield from _clip_head(path, size, fps, n_clip, need_last=n_clip < n_total)
    if n_clip < n_total and last is not None:
        n_tail = n_total - n_clip
        zoom_end = 1 + (_ZOOM - 1) * n_tail / n_total
        base = _Picture.from_frame(last, _working_size(size))
        yield from _zoom_frames(base, size, n_tail, zoom_end, drift, skip_start=True)


def _clip_head(
    path: Path, size: tuple[int, int], fps: int, count: int, *, need_last: bool
) -> Generator[_Frame, None, VideoFrame | None]:
    """Yields `count` frames, each the clip frame nearest its time; returns the clip's final frame."""
    try:
        with av.open(str(path), mode="r") as container:
            decoded = _timed_frames(container)
            current = next(decoded, None)
            if current is None:
                raise RenderError(f"clip {path} has no decodable video frames")
            following = next(decoded, None)
            for index in range(count):
                at = index / fps
                while following is not None and abs(following[0] - at) <= abs(current[0] - at):
                    current, following = following, next(decoded, None)
                yield _to_output_format(current[1], size)
            if not need_last:
                return None
            while following is not None:
                current, following = following, next(decoded, None)
            return current[1]
    except RenderError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise RenderError(f"clip {path} could not be decoded: {exc}") from exc


def _timed_frames(container: InputContainer) -> Iterator[tuple[float, VideoFrame]]:
    """Decoded frames with their time in seconds since the clip's first frame."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    step = float(1 / (stream.average_rate or stream.guessed_rate or Fraction(25)))
    origin: float | None = None
    previous = -step
    for frame in container.decode(stream):
        if frame.pts is not None and frame.time_base is not None:
            raw = float(frame.pts * frame.time_base)
            origin = raw if origin is None else origin
            at = raw - origin
        else:
            at = previous + step
        previous = at
        yield at, frame


# --- the caption ------------------------------------------------------------------------------------------

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class _Caption:
    """The prompt band, rasterised once as yuv420p planes with an alpha mask per plane size; each frame
    then costs three masked pastes, not a text layout."""

    top: int  # first row of the band; even, so the chroma planes' band starts at top // 2
    band: _Picture
    alpha: Image.Image  # luma-sized
    alpha_chroma: Image.Image

    @classmethod
    def build(cls, prompt: str, negative_prompt: str, size: tuple[int, int]) -> _Caption | None:
        prompt, negative_prompt = _printable(prompt), _printable(negative_prompt)
        if not prompt and not negative_prompt:
            return None
        width, height = size
        font_size = max(_CAPTION_MIN_FONT, round(min(size) * _CAPTION_FONT))
        font = ImageFont.load_default(size=font_size)  # Pillow's built-in scalable font: nothing to ship
        margin = round(font_size * 0.6)
        text_width = max(1, width - 2 * margin)
        lines = [(line, _CAPTION_TEXT) for line in _wrap(prompt, font, text_width, _CAPTION_PROMPT_LINES)]
        if negative_prompt:
            negative = _wrap(f"not: {negative_prompt}", font, text_width, 1)
            lines += [(line, _CAPTION_NEGATIVE_TEXT) for line in negative]
        line_height = round(font_size * 1.25)
        band_height = min(_even(len(lines) * line_height + margin), height // 2 * 2)
        rgb = Image.new("RGB", (width, band_height))
        alpha = Image.new("L", (width, band_height), _CAPTION_BAND_ALPHA)
        draw_rgb, draw_alpha = ImageDraw.Draw(rgb), ImageDraw.Draw(alpha)
        for index, (line, colour) in enumerate(lines):
            at = (margin, margin // 2 + index * line_height)
            draw_rgb.text(at, line, font=font, fill=colour)
            draw_alpha.text(at, line, font=font, fill=255)
        return cls(height - band_height, _Picture.from_image(rgb), alpha, alpha.reduce(2))

    def over(self, frame: _Frame) -> _Picture:
        picture = (
            frame if isinstance(frame, _Picture) else _Picture.from_frame(frame, (frame.width, frame.height))
        )
        return _Picture(
            _paste(picture.y, self.band.y, self.alpha, self.top),
            _paste(picture.u, self.band.u, self.alpha_chroma, self.top // 2),
            _paste(picture.v, self.band.v, self.alpha_chroma, self.top // 2),
        )


def _printable(text: str) -> str:
    """One line of text the built-in font can show: whitespace runs collapsed, and accents dropped (its
    glyphs are ASCII and a little punctuation, so "café" reads "cafe", not "caf" and a box). Scripts it
    lacks (Chinese, Cyrillic, emoji) still draw as boxes, which at least shows they arrived."""
    bare = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return " ".join(bare.split())


def _paste(plane: Image.Image, band: Image.Image, alpha: Image.Image, top: int) -> Image.Image:
    out = plane.copy()  # pictures are shared between frames (a fade's target, the zoom's base)
    out.paste(band, (0, top), alpha)
    return out


def _wrap(text: str, font: _Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` pixels in at most `max_lines`, the last ending in an ellipsis if text is
    left over. Hand-rolled because Pillow's ImageText.wrap refuses a word wider than the line, and text
    without spaces (Chinese, Japanese, a long URL) is one such word: here it breaks between characters."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while len(lines) < max_lines and font.getlength(line) > width:
            cut = max(1, _fitting(line, font, width))
            lines.append(line[:cut])
            line = line[cut:]
        if len(lines) >= max_lines:  # and `line` still holds text
            return [*lines[: max_lines - 1], _ellipsized(lines[max_lines - 1], font, width)]
    return [*lines, line] if line else lines


def _ellipsized(line: str, font: _Font, width: int) -> str:
    return line[: _fitting(line, font, width, _ELLIPSIS)].rstrip() + _ELLIPSIS


def _fitting(text: str, font: _Font, width: int, suffix: str = "") -> int:
    """The length of the longest prefix of `text` that, followed by `suffix`, is no wider than `width`."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + suffix) <= width:
            low = middle
        else:
            high = middle - 1
    return low


# --- encoding ------------------------------------------------------------------------------------------


def _encode(
    out: Path,
    job: RenderJob,
    size: tuple[int, int],
    frames: Iterator[_Frame],
    progress: _Progress,
) -> None:
    try:
        container = av.open(str(out), mode="w", format="mp4", options={"movflags": "+faststart"})
    except (av.error.FFmpegError, OSError) as exc:
        raise RenderError(f"cannot write output {out}: {exc}") from exc
    with container:
        video = _add_video_stream(container, size, job.fps)
        audio = _AudioTrack(container, Path(job.audio), job.duration) if job.audio is not None else None
        try:
            # The file is only created here (PyAV opens lazily), so this is where a bad path shows up.
            container.start_encoding()
        except (av.error.FFmpegError, OSError) as exc:
            raise RenderError(f"cannot write output {out}: {exc}") from exc
        time_base = Fraction(1, job.fps)
        for index, item in enumerate(frames):
            frame = item.to_frame() if isinstance(item, _Picture) else item
            frame.pts = index
            frame.time_base = time_base
            container.mux(video.encode(frame))
            if audio is not None:
                # Encode audio in step with video so the muxer never has to buffer one stream for long.
                audio.write_until((index + 1) / job.fps)
            progress.frames_done(index + 1)
        container.mux(video.encode(None))
        if audio is not None:
            audio.finish()


def _add_video_stream(container: OutputContainer, size: tuple[int, int], fps: int) -> VideoStream:
    video = container.add_stream("libx264", rate=fps, options={"preset": _PRESET, "crf": _CRF})
    video.width, video.height = size
    video.pix_fmt = "yuv420p"
    video.gop_size = _GOP_SECONDS * fps
    context = video.codec_context
    context.colorspace = _AVCOL_BT709
    context.color_primaries = _AVCOL_BT709
    context.color_trc = _AVCOL_BT709
    context.color_range = _AVCOL_RANGE_MPEG
    return video


class _AudioTrack:
    """AAC from the driving audio: resampled to 48 kHz stereo, cut or silence-padded to the duration."""

    def __init__(self, container: OutputContainer, path: Path, duration: float) -> None:
        self._container = container
        self._stream: AudioStream = container.add_stream("aac", rate=_AUDIO_RATE)
        self._stream.layout = _AUDIO_LAYOUT
        self._stream.format = "fltp"
        self._stream.bit_rate = _AUDIO_BITRATE
        self._total = round(duration * _AUDIO_RATE)
        self._sent = 0
        self._chunks = _audio_samples(path, self._total)
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._time_base = Fraction(1, _AUDIO_RATE)

    def write_until(self, seconds: float) -> None:
        target = min(self._total, round(seconds * _AUDIO_RATE))
        while self._sent + _AAC_FRAME <= target:
            self._send(_AAC_FRAME)

    def finish(self) -> None:
        while self._sent < self._total:
            self._send(min(_AAC_FRAME, self._total - self._sent))
        self._container.mux(self._stream.encode(None))
        self._chunks.close()

    def _send(self, count: int) -> None:
        while self._pending_len < count:
            chunk = next(self._chunks)  # never exhausted first: the generator pads to self._total
            self._pending.append(chunk)
            self._pending_len += chunk.shape[1]
        joined = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        rest = joined[:, count:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_len = rest.shape[1]
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(joined[:, :count]), format="fltp", layout=_AUDIO_LAYOUT
        )
        frame.sample_rate = _AUDIO_RATE
        frame.pts = self._sent
        frame.time_base = self._time_base
        self._container.mux(self._stream.encode(frame))
        self._sent += count


def _audio_samples(path: Path, total: int) -> Generator[np.ndarray, None, None]:
    """Float32 (2, n) chunks of exactly `total` samples: the decoded audio, then silence if it ran out."""
    produced = 0
    try:
        with av.open(str(path), mode="r") as container:
            resampler = av.AudioResampler(format="fltp", layout=_AUDIO_LAYOUT, rate=_AUDIO_RATE)
            decoded: Iterator[av.AudioFrame | None] = iter(container.decode(container.streams.audio[0]))
            for frame in _then_none(decoded):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().astype(np.float32, copy=False)
                    take = min(samples.shape[1], total - produced)
                    produced += take
                    yield samples[:, :take]
                    if produced >= total:
                        return
    except (av.error.FFmpegError, OSError) as exc:
        raise RenderError(f"audio {path} could not be decoded: {exc}") from exc
    while produced < total:
        take = min(_AUDIO_RATE, total - produced)
        produced += take
        yield np.zeros((2, take), dtype=np.float32)


def _then_none(frames: Iterator[av.AudioFrame | None]) -> Iterator[av.AudioFrame | None]:
    # A trailing None flushes the resampler's buffered tail.
    yield from frames
    yield None


class _Progress:
    """Reports at most _PROGRESS_STEPS increasing fractions; 1.0 only once the file is complete."""

    def __init__(self, callback: Callable[[float], None] | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._reported = 0

    def frames_done(self, done: int) -> None:
        if self._callback is None:
            return
        step = min(done * _PROGRESS_STEPS // self._total, _PROGRESS_STEPS - 1)
        if step > self._reported:
            self._reported = step
            self._callback(step / _PROGRESS_STEPS)

    def finished(self) -> None:
        if self._callback is not None:
            self._callback(1.0)
