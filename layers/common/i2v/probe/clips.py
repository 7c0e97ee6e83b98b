"""Clips (ISO base media file format: MP4 and QuickTime MOV): every field that says how long and how large
the clip is, read from box headers only (the media data is stepped over), fragments included."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from i2v.probe.common import MediaInfo, OverBudget, ProbeError, RangedFile, agreed, size_of

_TOP_LEVEL_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}  # what a file opens with
_NOT_A_CLIP = "not an MP4/MOV file"


def _boxes(
    file: RangedFile, start: int, end: int | None, *, top: bool = False
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


def read(file: RangedFile) -> MediaInfo:
    first = file.read_at(0, 12)
    if len(first) < 8 or first[4:8] not in _TOP_LEVEL_BOXES:
        raise ProbeError(_NOT_A_CLIP)
    # Classic QuickTime files may have no ftyp at all.
    clip_format = "mov" if first[4:8] != b"ftyp" or first[8:12] == b"qt  " else "mp4"
    movie: _Movie | None = None
    fragments = 0  # in the video track's timescale, summed over moof boxes after the moov
    seen = 0
    # Every top-level box's header is read (one that runs past the end says the file is cut short); the
    # media data is stepped over unread. A fragmented clip has a moof to read every fragment.
    try:
        for box_type, payload, end in _boxes(file, 0, file.size, top=True):
            if box_type == b"moov":
                movie = _read_moov(file, payload, end)
            elif box_type == b"moof" and movie is not None and movie.video is not None:
                fragments += _fragment_length(file, payload, end, movie)
                seen += 1
    except OverBudget as exc:
        if not seen:
            raise
        raise ProbeError(
            f"a fragmented clip with fragments this short cannot be timed from its headers within"
            f" {file.max_read} bytes ({seen} fragments read); write it with a fragment per keyframe, or"
            " not fragmented"
        ) from exc
    if movie is None:
        raise ProbeError(f"{_NOT_A_CLIP}: it has no moov box (is the file complete?)")
    return movie.info(clip_format, size_of(file), fragments)


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
        duration, durations = agreed(said)
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


def _read_moov(file: RangedFile, start: int, end: int | None) -> _Movie:
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


def _read_trak(file: RangedFile, start: int, end: int | None) -> _Track:
    track = _Track()
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type == b"tkhd":
            body = file.read_at(payload, 96)
            track.display = _track_size(body)
            track.track_id, track.length = _track_id_and_length(body)
        elif box_type == b"mdia":
            _read_mdia(file, payload, box_end, track)
    return track


def _read_mdia(file: RangedFile, start: int, end: int | None, track: _Track) -> None:
    for box_type, payload, box_end in _boxes(file, start, end):
        if box_type == b"mdhd":
            track.timescale, track.media_length = _movie_header(file.read_at(payload, 32))  # same layout
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


def _sample_entry_size(body: bytes) -> tuple[int, int] | None:
    """The width and height of an stsd's first sample entry, where it is a visual one (ISO 14496-12,
    12.1.3: after the entry's box header, 6 reserved bytes, a data reference index and 16 bytes of
    reserved and pre-defined fields)."""
    if len(body) < 8 + 8 + 28:
        return None
    width, height = struct.unpack(">HH", body[8 + 8 + 24 : 8 + 8 + 28])
    return (width, height) if width and height else None


_STTS_ENTRIES_READ = 64 * 1024  # entries an stts is summed over at most (8 bytes each): ~hours of video


def _samples_length(file: RangedFile, start: int, end: int | None) -> int:
    """The sum of an stts box's sample durations (count x delta per entry)."""
    head = file.read_at(start, 8)
    if len(head) < 8:
        return 0
    count = min(_u32(head, 4), _STTS_ENTRIES_READ)
    if end is not None:
        count = min(count, (end - start - 8) // 8)
    table = file.read_at(start + 8, count * 8)
    return sum(n * delta for n, delta in struct.iter_unpack(">II", table[: len(table) // 8 * 8]))


def _fragment_length(file: RangedFile, start: int, end: int | None, movie: _Movie) -> int:
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


def _run_length(file: RangedFile, start: int, end: int | None, default: int) -> int:
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
