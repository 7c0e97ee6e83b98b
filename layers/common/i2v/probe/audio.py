"""Audio (WAV and MP3): the duration from every field that says it, tags stepped over unread."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from i2v.probe.common import SAME_SECONDS, MediaInfo, ProbeError, RangedFile, agreed, size_of

_NOT_AUDIO = "not a WAV or MP3 file"


def read(file: RangedFile) -> MediaInfo:
    head = file.read_at(0, 12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        audio_format, said = "wav", _wav_durations(file)
    else:
        audio_format, said = "mp3", _mp3_durations(file)
    duration, durations = agreed(said)
    return MediaInfo("audio", audio_format, size_of(file), duration=duration, durations=durations)


def _wav_durations(file: RangedFile) -> list[tuple[str, float]]:
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
            if file.size is not None and size in (0, 0xFFFFFFFF):
                data_size = file.size - position - 8
            elif file.size is not None and position + 8 + size > file.size + 1:  # a missing pad byte is fine
                held = file.size - position - 8
                raise ProbeError(
                    f"audio is cut short: its data chunk says {size} bytes; the file holds {held}"
                )
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


def _skip_id3v2(file: RangedFile) -> int:
    position = 0
    while (tag := file.read_at(position, 10))[:3] == b"ID3" and len(tag) == 10:
        size = 0
        for byte in tag[6:10]:  # "syncsafe": 7 bits a byte
            size = size << 7 | byte & 0x7F
        footer = 10 if tag[5] & 0x10 else 0
        position += 10 + size + footer  # a cover picture in the tag is stepped over unread
    return position


def _first_mp3_frame(file: RangedFile) -> tuple[int, _Mp3Frame]:
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


def _mp3_durations(file: RangedFile) -> list[tuple[str, float]]:
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
    by_size = (size_of(file) - position) * 8 / frame.bitrate
    if header is None:
        return [("size / bitrate", by_size)]
    held = by_size - header.trimmed
    if held < header.seconds - SAME_SECONDS:
        raise ProbeError(
            f"audio is cut short: its Info tag counts {header.seconds:.1f} s; the file holds {held:.1f} s"
        )
    return [(header.name, header.seconds), ("size / bitrate", held)]


@dataclass(frozen=True)
class _Mp3Header:
    name: str  # which header, as messages name it
    seconds: float
    trimmed: float = 0.0  # seconds of encoder priming and padding its frame count includes


def _mp3_header(file: RangedFile, position: int, frame: _Mp3Frame) -> _Mp3Header | None:
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
