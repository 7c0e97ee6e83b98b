"""Counting what in-process work costs in calls: AWS API calls, outbound HTTP and the local stack's Lambda
invocations, each with its time, its bytes and the function it was made for.

Everything hooks in from outside the project's code:
- AWS: botocore's `before-call` / `after-call` / `after-call-error` events. The handlers join botocore's list
  of built-in handlers, which every botocore session registers as it is made (boto3's default session, and
  the fresh sessions powertools' parameter providers make), and boto3's default session if it exists already.
  Every client made after `install()` reports; a client made before it does not.
- HTTP: `httpx.HTTPTransport.handle_request` is wrapped once, class-wide (httpx has no process-wide hook, and
  the gateway builds its clients inside its own code; the URL guard's transport extends this one), so every
  sync httpx client in the process reports: the gateway's, the simulators' and the benchmark's own.
- Which function: `i2v_local.iam.current_function`, set by `stack.Function.invoke` around a handler call; the
  IAM recorder's hooks carry it into a function's worker pools (the sweeper's), so `install()` installs them
  (a recorder stopped at once: its botocore hook then records nothing).
- Lambda: `watch(stack)` wraps `invoke` on each of the stack's Function objects (the instances only).

`counting()` yields a Tally that receives every call and invocation (on any thread) while its block runs.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from i2v_local.iam import Recorder, current_function

if TYPE_CHECKING:
    import httpx

    from i2v_local.stack import LocalStack

KEEP_BYTES = 256 * 1024  # request and answer bodies up to this size are kept (to replay them, or read units)


@dataclass
class Call:
    """One AWS API call (`kind` "aws": service and operation as botocore names them) or one HTTP exchange
    (`kind` "http": host:port and method). `seconds` runs from the request to the end of the answer's body."""

    kind: str
    service: str
    operation: str
    function: str | None  # logical id of the function that made it; None outside any function
    started: float  # time.perf_counter()
    seconds: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    status: int | None = None  # None: no answer came (a connection error)
    sent: bytes = b""  # the request body (kept up to KEEP_BYTES)
    answer: bytes = b""  # the answer body, when not streamed and up to KEEP_BYTES (AWS calls)
    url: str = ""  # HTTP only: the full URL and the request headers, to replay it
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return (
            f"{self.service}.{self.operation}" if self.kind == "aws" else f"{self.operation} {self.service}"
        )

    @property
    def key_kind(self) -> str:
        """`TASK#`, `KEY#`, `HEALTH#`…: the kind of DynamoDB item the call names by its key `pk`, if one."""
        if self.service != "dynamodb" or not self.sent:
            return ""
        try:
            sent = json.loads(self.sent)
        except ValueError:
            return ""
        key = sent.get("Key") or sent.get("Item") or {}
        pk = key.get("pk", {}).get("S", "") if isinstance(key, dict) else ""
        return f"{pk.split('#', 1)[0]}#" if "#" in pk else ""

    @property
    def label(self) -> str:
        """`name`, with the kind of item for DynamoDB calls on one item."""
        return f"{self.name} {self.key_kind}".rstrip()


@dataclass(frozen=True)
class Invocation:
    function: str
    started: float
    seconds: float
    cold: bool  # a new container was loaded for it (approximate when invocations overlap)


@dataclass
class Tally:
    """Calls and invocations seen while a `counting()` block ran."""

    calls: list[Call] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def add_invocation(self, invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)

    def snapshot(self) -> tuple[list[Call], list[Invocation]]:
        with self._lock:
            return sorted(self.calls, key=lambda c: c.started), list(self.invocations)

    def counts(self, where: Callable[[Call], bool] = lambda call: True) -> Counter[str]:
        calls, _ = self.snapshot()
        return Counter(call.name for call in calls if where(call))


_tallies: list[Tally] = []
_tallies_lock = threading.Lock()
_install_lock = threading.Lock()
_installed = False
_CONTEXT_KEY = "i2v_benchmark_call"  # where a call in flight waits in botocore's per-request context


def _report(call: Call) -> None:
    with _tallies_lock:
        tallies = list(_tallies)
    for tally in tallies:
        tally.add_call(call)


@contextmanager
def counting() -> Iterator[Tally]:
    """Every call and invocation made while the block runs, on any thread."""
    install()
    tally = Tally()
    with _tallies_lock:
        _tallies.append(tally)
    try:
        yield tally
    finally:
        with _tallies_lock:
            _tallies.remove(tally)


def install() -> None:
    """Hook botocore, httpx and the function context (once per process; idle outside `counting()`)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        import boto3
        import botocore.handlers

        hooks: list[tuple[str, Callable[..., None]]] = [
            ("before-call", _before_call),
            ("after-call", _after_call),
            ("after-call-error", _after_call_error),
        ]
        botocore.handlers.BUILTIN_HANDLERS.extend(hooks)
        if boto3.DEFAULT_SESSION is not None:
            for event, handler in hooks:
                boto3.DEFAULT_SESSION.events.register(event, handler, unique_id=f"{_CONTEXT_KEY}-{event}")
        _hook_httpx()
        # The IAM recorder's hooks run a function's worker threads in its context; a recorder stopped at once
        # leaves them in place and records nothing.
        Recorder().install().stop()


# -- botocore ------------------------------------------------------------------------------------------


def _body_bytes(body: Any) -> tuple[int, bytes]:
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes | bytearray):
        return len(body), bytes(body[:KEEP_BYTES])
    if hasattr(body, "seek") and hasattr(body, "tell"):  # a file-like body: its length, not its bytes
        here = body.tell()
        size = body.seek(0, 2) - here
        body.seek(here)
        return int(size), b""
    return 0, b""


def _before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # Registered twice on a session made after install() that is also boto3's default: the first one counts.
    if not _tallies or _CONTEXT_KEY in context:
        return
    size, kept = _body_bytes(params.get("body", b""))
    context[_CONTEXT_KEY] = Call(
        kind="aws",
        service=model.service_model.service_name,
        operation=model.name,
        function=current_function.get(),
        started=time.perf_counter(),
        request_bytes=size,
        sent=kept,
    )


def _after_call(http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
    call: Call | None = context.pop(_CONTEXT_KEY, None)
    if call is None:
        return
    call.seconds = time.perf_counter() - call.started
    call.status = int(http_response.status_code)
    if model.has_streaming_output:  # the body is the caller's to read: its declared length
        call.response_bytes = int(http_response.headers.get("content-length") or 0)
    else:
        content: bytes = http_response.content or b""
        call.response_bytes = len(content)
        call.answer = content if len(content) <= KEEP_BYTES else b""
    _report(call)


def _after_call_error(context: dict[str, Any], **_: Any) -> None:
    call: Call | None = context.pop(_CONTEXT_KEY, None)
    if call is not None:
        call.seconds = time.perf_counter() - call.started
        _report(call)


# -- httpx ---------------------------------------------------------------------------------------------


def _hook_httpx() -> None:
    import httpx

    class CountedStream(httpx.SyncByteStream):
        """The answer's body as the caller reads it: its bytes counted, the call's time ended at close."""

        def __init__(self, inner: Any, call: Call) -> None:
            self._inner, self._call = inner, call

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._call.response_bytes += len(chunk)
                yield chunk

        def close(self) -> None:
            self._call.seconds = time.perf_counter() - self._call.started
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()

    send = httpx.HTTPTransport.handle_request

    @functools.wraps(send)
    def counted(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if not _tallies:
            return send(self, request)
        call = _http_call(request)
        try:
            response = send(self, request)
        except Exception:
            call.seconds = time.perf_counter() - call.started
            _report(call)
            raise
        call.status = response.status_code
        call.seconds = time.perf_counter() - call.started  # until the body is read and closed, below
        response.stream = CountedStream(response.stream, call)
        _report(call)
        return response

    httpx.HTTPTransport.handle_request = counted  # type: ignore[method-assign]


def _http_call(request: httpx.Request) -> Call:
    import httpx

    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed upload: its declared length only
        body = b""
    size = len(body) or int(request.headers.get("content-length") or 0)
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    return Call(
        kind="http",
        service=f"{url.host}:{port}",
        operation=request.method,
        function=current_function.get(),
        started=time.perf_counter(),
        request_bytes=size,
        sent=body[:KEEP_BYTES],
        url=str(url),
        headers=dict(request.headers.items()),
    )


# -- Lambda invocations on the local stack -------------------------------------------------------------


def watch(stack: LocalStack) -> None:
    """Report every invocation of the stack's functions (event sources, the HTTP runner and `stack.invoke`
    all go through `Function.invoke`): each Function instance's `invoke` is wrapped, once."""
    for function in stack.functions.values():
        if getattr(function.invoke, "counted", False):
            continue
        original = function.invoke

        def invoke(event: dict[str, Any], _original: Any = original, _function: Any = function) -> Any:
            cold_before = _function.cold_starts
            start = time.perf_counter()
            try:
                return _original(event)
            finally:
                took = time.perf_counter() - start
                cold = _function.cold_starts > cold_before
                if _tallies:
                    with _tallies_lock:
                        tallies = list(_tallies)
                    for tally in tallies:
                        tally.add_invocation(Invocation(_function.logical, start, took, cold))

        invoke.counted = True  # type: ignore[attr-defined]
        function.invoke = invoke  # type: ignore[method-assign]
