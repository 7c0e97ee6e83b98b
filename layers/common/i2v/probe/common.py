"""What every reader of the probe shares: the file over HTTP Range requests, what a probe finds, and how
fields of a file that disagree are weighed."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from i2v.models import Kind

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK = 64 * 1024  # read-ahead per range request: most headers fit in one, and requests cost more than bytes
HEADERS_READ = 4 * 1024 * 1024  # of a clip's or audio file's headers, at most
PROBE_DEADLINE_SECONDS = 5.0  # per URL: several media in one create stay well inside API Gateway's 29 s


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


class Unfetchable(ProbeError):
    """The server did not answer, or answered that it could not now (5xx, 429): it may another time."""


class OverBudget(ProbeError):
    """What is needed of the file lies past the bytes a probe may read."""


SAME_SECONDS = 0.05  # durations closer than this agree (rounding, an encoder's last frame)


def agreed(said: list[tuple[str, float]]) -> tuple[float, tuple[tuple[str, float], ...]]:
    """The duration, and what each field said where they disagree (then the longest is the duration)."""
    durations = [value for _, value in said]
    if max(durations) - min(durations) <= SAME_SECONDS:
        return said[0][1], ()
    return max(durations), tuple(said)


def size_of(file: RangedFile) -> int:
    if file.size is None and file.streaming:
        # A body of unknown length can still be measured if it ends within the budget.
        with contextlib.suppress(ProbeError):
            file.read_at(0, file.max_read)
    if file.size is None:
        raise ProbeError("the server did not say how large the file is")
    return file.size


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class RangedFile(io.RawIOBase):
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
        refusal = ProbeError if response.status_code < 500 and response.status_code != 429 else Unfetchable
        raise refusal(f"could not fetch the file: HTTP {response.status_code} {response.reason_phrase}")

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

    def _over_budget(self) -> OverBudget:
        hint = "; the server ignores Range requests" if self._ignores_range else ""
        return OverBudget(f"could not read the header within {self.max_read} bytes{hint}")

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

    def release(self) -> None:
        """End the open body, if any. Not close(): a reader wrapped around this view (Pillow's, through a
        BufferedReader) closes it when done with the header, while the image is still to be read whole."""
        if self._stream is not None:
            self._stream.close()
