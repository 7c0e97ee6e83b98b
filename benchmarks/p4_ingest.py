"""P4 ingest: a 200 MB result streamed from a loopback URL into S3 (moto), by the Ingest function's use case.

What runs where (each its own process, so no process holds another's copy of the bytes):
- a loopback HTTP server serving a 200 MB file from disk (an MP4 `ftyp` box, then random bytes; MB = 2**20);
- moto's server (`i2v_local.aws.moto_server`) with the template's resources (`provision`);
- one fresh process per measured copy, with the functions' local environment (private URLs allowed).

Two copies of the same bytes, each round, in that order:
- raw floor: plain `httpx` GET stream -> plain `boto3` `upload_fileobj` (8 MB parts, its default threads),
  no gateway logic;
- ingest: `i2v.ingest.ingest(Runtime.from_environment(), IngestMessage(...))` for a `processing` task whose
  result URL is the server's: the lease claim, the guarded fetch, sha256, the multipart upload and the
  `succeeded` move with its event, all timed.

Throughput is bytes / wall time of that one call (MB/s); ratio = ingest MB/s / raw MB/s, best of the rounds.
Peak RSS growth is of the copying process only: after a 1 MB warm-up copy by the same path (clients,
connection pools and service models loaded, as in a warm Lambda container), VmRSS is read, the kernel's
high-water mark is reset (`/proc/self/clear_refs` = 5), the 200 MB copy runs, and VmHWM - VmRSS-before is
the growth (worst of the rounds). Linux only (/proc).
"""

from __future__ import annotations

import gc
import io
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report import Goal, line, note, progress, section
from benchmarks.services import WAIT_SECONDS, serve_moto, server, spawn, wait_for_word

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MB = 1024 * 1024
SIZE = 200 * MB
WARM_SIZE = 1 * MB
RESULT, WARM = "result.mp4", "warm.mp4"
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # ingest refuses a result without it
ROUNDS = 3
PEAK_GOAL_MB = 64.0
RATIO_GOAL = 0.5


@dataclass(frozen=True)
class Copy:
    """One measured copy: wall time, bytes, and the copying process's RSS before and its peak during."""

    seconds: float
    size: int
    rss_before_kib: int
    peak_kib: int

    @property
    def mb_per_s(self) -> float:
        return self.size / MB / self.seconds

    @property
    def growth_mb(self) -> float:
        return (self.peak_kib - self.rss_before_kib) / 1024


# -- memory of this process ----------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(found.group(1))


def _measured(copy: Callable[[], int]) -> Copy:
    """Run `copy` (returning the bytes it copied) with its peak RSS growth and wall time recorded."""
    gc.collect()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    start = time.perf_counter()
    size = copy()
    seconds = time.perf_counter() - start
    return Copy(seconds, size, before, _status_kib("VmHWM"))


# -- child processes -----------------------------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_files(folder: str, conn: Connection) -> None:
    """Serve `folder` on a loopback port (files streamed from disk); send the base URL; stop on a word."""
    import threading

    def handler(*args: Any) -> _Quiet:
        return _Quiet(*args, directory=folder)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(f"http://127.0.0.1:{server.server_port}")
    wait_for_word(conn)
    server.shutdown()


def _reply(conn: Connection, measure: Callable[[], Copy]) -> None:
    try:
        conn.send(measure())
    except BaseException as exc:  # raised again in the parent, with its message
        conn.send(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _raw_copy(env: dict[str, str], files: str, bucket: str, conn: Connection) -> None:
    """The floor: the same bytes over the same loopback into the same moto, with no gateway code."""
    os.environ.update(env)

    def measure() -> Copy:
        import boto3
        import httpx

        s3 = boto3.client("s3")
        with httpx.Client(timeout=60) as http:

            def copy(name: str) -> int:
                with http.stream("GET", f"{files}/{name}") as resp:
                    resp.raise_for_status()
                    body = _Body(resp.iter_bytes(MB))
                    s3.upload_fileobj(io.BufferedReader(body), bucket, f"bench/raw-{name}")
                    return body.size

            copy(WARM)
            measured = _measured(lambda: copy(RESULT))
        s3.delete_object(Bucket=bucket, Key=f"bench/raw-{RESULT}")  # moto need not keep 200 MB per round
        return measured

    _reply(conn, measure)


def _ingest_copy(env: dict[str, str], files: str, conn: Connection) -> None:
    """The gateway: the Ingest function's use case on a runtime built as its container builds one."""
    os.environ.update(env)

    def measure() -> Copy:
        from i2v import layout
        from i2v.ingest import ingest
        from i2v.messages import IngestMessage
        from i2v.models import Mode, Status, Task, VideoRequest
        from i2v.runtime import Runtime
        from i2v.store import new_task_id

        rt = Runtime.from_environment()

        def processing_task() -> Task:
            now = int(time.time())
            task = Task(
                id=new_task_id(),
                tenant="bench",
                status=Status.PROCESSING,
                request=VideoRequest(image_url=f"s3://{rt.settings.bucket_name}/inputs/bench/in.png"),
                mode=Mode.FIRST_FRAME,
                provider="local",
                provider_task_id="bench",
                providers=["local"],
                created_at=now,
                updated_at=now,
                deadline_at=now + 3600,
                next_poll_at=now + 60,
            )
            rt.tasks.create(task)
            return task

        def copy(task: Task, name: str) -> int:
            outcome = ingest(rt, IngestMessage(task_id=task.id, result_url=f"{files}/{name}"))
            stored = rt.tasks.require(task.id).output
            if outcome != "succeeded" or stored is None:
                raise RuntimeError(f"ingest of {name} ended {outcome!r}")
            return stored.size

        copy(processing_task(), WARM)
        task = processing_task()  # made before the measurement: storing a task is not part of ingest
        measured = _measured(lambda: copy(task, RESULT))
        rt.s3.delete_object(Bucket=rt.settings.bucket_name, Key=layout.output_key(task))
        return measured

    _reply(conn, measure)


class _Body(io.RawIOBase):
    """An HTTP body as a raw stream that cannot seek: buffered, it reads as `upload_fileobj` expects."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if not self._left:
            self._left = memoryview(next(self._chunks, b""))
        into = memoryview(buffer).cast("B")
        taken = min(len(into), len(self._left))
        into[:taken] = self._left[:taken]
        self._left = self._left[taken:]
        self.size += taken
        return taken


# -- the parent ----------------------------------------------------------------------------------------------


def _in_child(target: Callable[..., None], *args: Any) -> Copy:
    ours, theirs = spawn.Pipe()
    process = spawn.Process(target=target, args=(*args, theirs))
    process.start()
    try:
        if not ours.poll(WAIT_SECONDS):
            raise RuntimeError(f"{target.__name__} did not answer in {WAIT_SECONDS:.0f} s")
        answer: Copy | Exception = ours.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join()
    if isinstance(answer, Exception):
        raise answer
    return answer


def _write_result(folder: Path) -> None:
    """The 200 MB result and a 1 MB warm-up file, written a megabyte at a time."""
    for name, size in ((RESULT, SIZE), (WARM, WARM_SIZE)):
        with (folder / name).open("wb") as out:
            out.write(FTYP + os.urandom(MB - len(FTYP)))
            for _ in range(size // MB - 1):
                out.write(os.urandom(MB))


def run() -> None:
    section(f"P4 ingest: a {SIZE // MB} MB result, loopback HTTP -> moto S3 (separate processes)")
    raw: list[Copy] = []
    ingested: list[Copy] = []
    with tempfile.TemporaryDirectory() as tmp:
        _write_result(Path(tmp))
        with server(serve_moto) as env, server(_serve_files, tmp) as files:
            bucket = env["I2V_BUCKET_NAME"]
            for i in range(ROUNDS):
                progress(2 * i, 2 * ROUNDS, "copies")
                raw.append(_in_child(_raw_copy, env, files, bucket))
                progress(2 * i + 1, 2 * ROUNDS, "copies")
                ingested.append(_in_child(_ingest_copy, env, files))
            progress(2 * ROUNDS, 2 * ROUNDS, "copies")

    floor = max(c.mb_per_s for c in raw)
    speed = max(c.mb_per_s for c in ingested)
    line("raw copy: httpx stream -> boto3 upload_fileobj", floor, "MB/s")
    line("ingest: i2v.ingest.ingest", speed, "MB/s", ratio=speed / floor, goal=Goal(at_least=RATIO_GOAL))
    line(
        "ingest: peak RSS growth of its process",
        max(c.growth_mb for c in ingested),
        "MB",
        goal=Goal(at_most=PEAK_GOAL_MB),
    )
    line("raw copy: peak RSS growth of its process", max(c.growth_mb for c in raw), "MB")
    note(
        f"(best MB/s and worst RSS growth of {ROUNDS} rounds; each copy in a fresh process, warmed by a "
        f"1 MB copy; ingest RSS before: {ingested[-1].rss_before_kib / 1024:.0f} MB)"
    )
