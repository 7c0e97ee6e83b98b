"""The engine under every provider simulator: a real HTTP server on loopback, a task table, render workers,
result files with expiring links, callbacks with the provider's retry habits, fault switches, and the
account's capacity (caps on jobs in flight and on submits per minute, with counters tests and the bench read).

A provider's simulator subclasses `Simulator` and only says how its API looks (routes, bodies, statuses).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import math
import queue
import secrets
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from i2v_local.render import RenderError, RenderJob, render

log = logging.getLogger("i2v_local.simulator")


@dataclass
class Faults:
    """Switches tests flip to make a simulator misbehave the way real hosts do."""

    fail_submits: int = 0  # answer the next N submits with 503
    rate_limit_submits: int = 0  # answer the next N submits with 429 + Retry-After
    rate_limit_polls: int = 0
    retry_after: float = 1.0
    drop_callbacks: bool = False
    duplicate_callbacks: int = 1  # deliver each callback this many times
    stall: bool = False  # tasks never leave the queue
    unknown_status: str | None = None  # report this raw status instead of the real one
    expire_results: bool = False  # result links answer 403 as if their signature expired
    fail_render: str | None = None  # fail every task with this message
    hang_submit_after_accept: bool = False  # accept the job, then never answer the submit
    error_after_accept: int | None = None  # make the job, then answer the submit with this status (a 5xx)
    delay_submits: float = 0.0  # each submit waits this long before it is handled (no job exists meanwhile)
    delay_polls: float = 0.0  # each status query waits this long before it is answered
    # Hold each task that starts rendering at `processing` with this progress until the switch is cleared
    # (set back to None); the render then runs as usual. Lets a test observe a task mid-render.
    hold_progress: int | None = None
    # Render this many seconds whatever was asked (hosts may deliver another length than requested, e.g. a
    # continuation with its input clip), so what is billed can be told from what was requested.
    render_seconds: int | None = None


@dataclass
class Capacity:
    """The account's limits at the host, set by tests and the bench at any time (None: no limit)."""

    # Jobs of the account in flight at once: from the submit that makes one until it ends (succeeded, failed
    # or cancelled). A submit past it makes nothing and is refused, unless the host queues it instead
    # (`Simulator.queues_over_capacity`), where only running jobs count.
    max_in_flight: int | None = None
    max_submits_per_minute: int | None = None  # submit requests in any sliding 60 s
    # Each job runs at least this long from the start of its processing to its end, whatever the render
    # takes, so a burst of long jobs runs in minutes. Read on every turn: lowering it lets running jobs end.
    job_seconds: float | None = None


# Why a submit was refused for capacity: the cap on jobs in flight, or on submits per minute.
Refusal = Literal["in_flight", "per_minute"]
WINDOW_SECONDS = 60.0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _AnswerInstead(Exception):
    """Raised inside a route to answer with `response` instead of the route's own reply."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response

    def get_response(self, environ: Any = None) -> Response:
        return self.response


@dataclass
class SimTask:
    id: str
    inputs: dict[str, str]  # role (first_frame, last_frame, clip, audio) -> URL
    duration: int
    short_side: int
    seed: int
    callback_url: str | None
    request: dict[str, Any]
    state: str = "queued"  # queued | processing | succeeded | failed | cancelled (mapped per provider)
    progress: int = 0
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    video: Path | None = None


class Simulator:
    name = "sim"
    result_ttl_seconds = 3600
    # How the host takes its key: this header, with this value around it ({key}).
    auth_header = "Authorization"
    auth_value = "Bearer {key}"
    # What the shared contract suite (tests/contract/test_engine.py) needs to know of the host: a job id in
    # its own format that it never issued, and how it answers a query for one (None: a 404).
    never_issued = "never-issued"
    unknown_job_answer: str | None = None
    # The account's secret for signing callbacks, for a host that signs them with one (the local stack hands
    # it to the gateway as I2V_<NAME>_WEBHOOK_SECRET); "" for a host that does not.
    webhook_secret = ""
    # A host whose queue takes every submit and holds jobs past the concurrency cap until a running one ends
    # (they are not refused); "in flight" then means running, which is all such a host counts.
    queues_over_capacity = False

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        self.api_key = api_key
        self.faults = Faults()
        self.capacity = Capacity()
        self.peak_in_flight = 0  # the most jobs in flight at once so far, as counted here
        self.refusals: Counter[str] = Counter()  # submits refused, by Refusal or by the fault switch's name
        self.tasks: dict[str, SimTask] = {}
        self.lock = threading.Lock()
        self.submits = 0  # submit requests received (after auth), for tests
        self.cancels: list[str] = []  # job ids named by cancel requests received for known jobs, for tests
        self.callbacks_sent: list[tuple[str, int | None]] = []  # (url, status or None on error)
        # (task id, how its callback ended: "delivered", "gave up", "dropped" or "no callback URL"), one per
        # announced outcome (and per duplicate), so tests can wait for the end instead of sleeping past it.
        self.callbacks_settled: list[tuple[str, str]] = []
        self.downloads: dict[str, int] = {}  # result downloads per task, for tests
        self.status_queries: Counter[str] = Counter()  # GETs naming a job, per job, for tests and benchmarks
        self.render_scale = render_scale  # < 1 renders smaller frames, for fast tests
        self._workdir = Path(tempfile.mkdtemp(prefix=f"i2v-{self.name}-"))
        self.workers = workers  # jobs that run at once while no cap is set; with one, the cap does
        self._jobs: queue.Queue[str | None] = queue.Queue()  # made jobs in order, for the dispatcher
        self._running = 0  # job threads alive
        self._slot_freed = threading.Condition(self.lock)
        self._submit_times: deque[float] = deque()  # when each submit of the last minute passed the limit
        self._secret = secrets.token_bytes(16)
        # One client for the host's own requests (input fetches, callbacks), shared by its threads: a client
        # per request built a TLS context each time, a tenth of a burst's CPU.
        self.http = httpx.Client()
        self._released = threading.Event()  # set on stop: frees submits held by hang_submit_after_accept
        self._server: BaseWSGIServer | None = None
        self._routes = Map([Rule("/files/<task_id>.mp4", endpoint="file", methods=["GET"]), *self.rules()])

    # -- what a provider subclass defines ---------------------------------------------------------
    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        raise NotImplementedError

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        """Headers a callback carries besides its content type: a host that signs its webhooks says how."""
        return {}

    callback_retries: tuple[float, ...] = (1, 2, 4)  # waits between attempts after a failure
    callback_timeout: float = 10.0

    # -- server -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self, port: int = 0) -> Simulator:
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        threading.Thread(target=self._dispatch, daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._jobs.put(None)
        if self._server is not None:
            self._server.shutdown()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        adapter = self._routes.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            if endpoint == "file":
                response = self._file(request, **args)
            elif not self.authorized(request):
                response = self.unauthorized()
            else:
                if request.method == "GET":
                    named = [*args.values(), *request.args.values()]
                    self.status_queries.update(job for job in named if job in self.tasks)
                response = getattr(self, endpoint)(request, **args)
        except Exception as exc:  # a werkzeug HTTPException is itself a response
            if hasattr(exc, "get_response"):
                response = exc.get_response(environ)
            else:
                log.exception("simulator error")
                response = self.json({"error": "internal"}, 500)
        return response(environ, start_response)

    def authorized(self, request: Request) -> bool:
        expected = self.auth_value.format(key=self.api_key)
        return hmac.compare_digest(request.headers.get(self.auth_header, ""), expected)

    def unauthorized(self) -> Response:
        return self.json({"error": "unauthorized"}, 401)

    @staticmethod
    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)

    def body(self, request: Request) -> dict[str, Any] | None:
        try:
            data = json.loads(request.get_data(as_text=True) or "null")
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    # -- faults and limits shared by every API shape ----------------------------------------------
    def submit_fault(self) -> Response | None:
        """The answer to a submit turned away before it is read: the per-minute cap's refusal, or a 503 or
        429 a fault asks for (counted as a received submit either way). Every submit route calls it first."""
        with self.lock:
            self.submits += 1
        if self.faults.delay_submits:
            self._released.wait(self.faults.delay_submits)
        with self.lock:
            wait = self._past_submit_rate()
            if wait is not None:
                self.refusals["per_minute"] += 1
            elif self.faults.fail_submits > 0:
                self.faults.fail_submits -= 1
                return self.server_error()
            elif self.faults.rate_limit_submits > 0:
                self.faults.rate_limit_submits -= 1
                self.refusals["rate_limit_submits"] += 1
                return self.rate_limited()
        return None if wait is None else self.over_capacity("per_minute", wait)

    def poll_fault(self) -> Response | None:
        if self.faults.delay_polls:
            self._released.wait(self.faults.delay_polls)
        with self.lock:
            if self.faults.rate_limit_polls > 0:
                self.faults.rate_limit_polls -= 1
                self.refusals["rate_limit_polls"] += 1
                return self.rate_limited()
        return None

    def _past_submit_rate(self) -> float | None:
        """With the lock held, for a submit just received: None if the per-minute cap lets it through (it is
        then counted in the window), else the whole seconds until the window has room again."""
        now = time.monotonic()
        while self._submit_times and self._submit_times[0] <= now - WINDOW_SECONDS:
            self._submit_times.popleft()
        limit = self.capacity.max_submits_per_minute
        if limit is not None and len(self._submit_times) >= limit:
            oldest = self._submit_times[0] if self._submit_times else now
            return float(max(1, math.ceil(oldest + WINDOW_SECONDS - now)))
        self._submit_times.append(now)
        return None

    @property
    def in_flight(self) -> int:
        """Jobs in flight now: made and not ended, or for a host that queues past its cap, running."""
        with self.lock:
            return self._in_flight()

    def _in_flight(self) -> int:
        # Counted from the states (lock held), so every way a job ends (its render, a cancel, a subclass's
        # own ending such as an expiry) frees its place without bookkeeping of its own.
        counted = ("processing",) if self.queues_over_capacity else ("queued", "processing")
        return sum(1 for task in self.tasks.values() if task.state in counted)

    def _note_peak(self) -> None:
        """With the lock held, after a job entered flight."""
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight())

    def hang_if_asked(self) -> None:
        """Call after the job exists and before answering: the hang fault makes the answer never come, and
        `error_after_accept` replaces it with an error status (the job stays)."""
        if self.faults.hang_submit_after_accept:
            self._released.wait(60)
        if self.faults.error_after_accept is not None:
            raise _AnswerInstead(self.json({"error": "upstream error"}, self.faults.error_after_accept))

    def server_error(self) -> Response:
        return self.json({"error": "service unavailable"}, 503)

    def rate_limited(self) -> Response:
        return self.json({"error": "rate limited"}, 429, {"Retry-After": f"{self.faults.retry_after:g}"})

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        """How the host refuses a submit past a cap of the account (`why`); `retry_after` is when to try again
        in seconds, for a host that says so. Each simulator words it as its host documents; this default
        stands in where the host documents nothing."""
        return self.json({"error": "rate limited"}, 429, {"Retry-After": f"{retry_after:g}"})

    def status_word(self, task: SimTask, words: Mapping[str, str]) -> str:
        """The provider's word for the task's state (`words` maps ours to theirs); the fault overrides it."""
        return self.faults.unknown_status or words[task.state]

    # -- tasks ------------------------------------------------------------------------------------
    def create(
        self,
        inputs: Mapping[str, str | None],
        duration: int,
        resolution: str,
        callback_url: str | None,
        request: dict[str, Any],
        seed: int | None = None,
    ) -> SimTask:
        """Make one job (see `accept`: past the cap on jobs in flight, the submit is refused instead)."""
        [task] = self.accept(self.new_task(inputs, duration, resolution, callback_url, request, seed))
        return task

    def new_task(
        self,
        inputs: Mapping[str, str | None],
        duration: int,
        resolution: str,
        callback_url: str | None,
        request: dict[str, Any],
        seed: int | None = None,
    ) -> SimTask:
        """A job not made yet: `accept` makes it (with any others of the same submit)."""
        return SimTask(
            id=self.new_id(),
            inputs={role: url for role, url in inputs.items() if url},
            duration=duration,
            short_side=1080 if resolution.lower() == "1080p" else 720,
            seed=seed or 0,
            callback_url=callback_url,
            request=request,
        )

    def accept(self, *tasks: SimTask) -> list[SimTask]:
        """Make the jobs of one submit and hand them to the workers, all or none: if they would take the
        account past its cap on jobs in flight, nothing is made and the submit is answered with the host's
        refusal instead (raised, so the route's own reply is never sent). A host that queues past its cap
        makes them all; they wait until running ones end."""
        with self.lock:
            cap = self.capacity.max_in_flight
            refused = (
                not self.queues_over_capacity and cap is not None and self._in_flight() + len(tasks) > cap
            )
            if refused:
                self.refusals["in_flight"] += 1
            else:
                self.tasks.update((task.id, task) for task in tasks)
                self._note_peak()
        if refused:
            # GUESS for every host: when a place frees is unknown at submit time; the fault switch's value.
            raise _AnswerInstead(self.over_capacity("in_flight", self.faults.retry_after))
        if not self.faults.stall:
            for task in tasks:
                self._jobs.put(task.id)
        return list(tasks)

    def new_id(self) -> str:
        return secrets.token_hex(12)

    def cancel_requested(self, task: SimTask) -> bool:
        """A cancel request for a known job arrived (each cancel route calls this): note it, then cancel the
        job if it is still in flight. False when it had already ended."""
        with self.lock:
            self.cancels.append(task.id)
        return self.cancel_task(task)

    def cancel_task(self, task: SimTask) -> bool:
        """End the job as cancelled if it is still in flight; tests call it directly for a cancel made on the
        host's side (console, support), which no API request announces."""
        with self.lock:
            if task.state not in ("queued", "processing"):
                return False
            task.state = "cancelled"
            task.finished_at = time.time()
        self._notify(task)
        return True

    def result_url(self, task: SimTask) -> str | None:
        if task.state != "succeeded":
            return None
        expires = int((task.finished_at or time.time()) + self.result_ttl_seconds)
        return f"{self.base_url}/files/{task.id}.mp4?expires={expires}&sig={self._sign(task.id, expires)}"

    def _sign(self, task_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _file(self, request: Request, task_id: str) -> Response:
        task = self.tasks.get(task_id)
        expires = request.args.get("expires", "0")
        sig = request.args.get("sig", "")
        valid = expires.isdigit() and hmac.compare_digest(sig, self._sign(task_id, int(expires)))
        if task is None or task.video is None or not valid:
            return Response("not found", status=404)
        with self.lock:
            self.downloads[task_id] = self.downloads.get(task_id, 0) + 1
        if self.faults.expire_results or int(expires) < time.time():
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", status=403
            )
        return Response(task.video.read_bytes(), mimetype="video/mp4")

    # -- the render workers -----------------------------------------------------------------------
    def run_slots(self) -> int:
        """How many jobs run at once: the cap on jobs in flight when one is set (so all of them progress
        together, and a host that queues past it runs no more), else the simulator's `workers`."""
        cap = self.capacity.max_in_flight
        return self.workers if cap is None else cap

    def _dispatch(self) -> None:
        """Start the made jobs in order, each on a thread of its own, while fewer than `run_slots()` run."""
        while (task_id := self._jobs.get()) is not None:
            task = self.tasks[task_id]
            with self._slot_freed:
                while self._running >= self.run_slots() and task.state == "queued":
                    # Woken when a job ends; the timeout picks up a cap raised meanwhile, and the stop.
                    if self._released.is_set():
                        return
                    self._slot_freed.wait(0.05)
                if task.state != "queued":  # cancelled while it waited: it takes no slot
                    continue
                self._running += 1
            threading.Thread(target=self._run, args=(task,), daemon=True).start()

    def _run(self, task: SimTask) -> None:
        try:
            self._process(task)
        finally:
            with self._slot_freed:
                self._running -= 1
                self._slot_freed.notify_all()

    def _process(self, task: SimTask) -> None:
        with self.lock:
            if task.state != "queued":
                return
            task.state = "processing"
            self._note_peak()
        started = time.monotonic()
        self._hold(task)
        if task.state != "processing":  # cancelled while held
            return
        try:
            task.video = self.render_task(task)
            outcome, error = "succeeded", None
        except (RenderError, httpx.HTTPError, OSError) as exc:
            outcome, error = "failed", str(exc)
        if not self._last_out(task, started):  # the simulator stopped: the job never ends
            return
        with self.lock:
            if task.state != "processing":  # cancelled meanwhile
                return
            task.state, task.error, task.finished_at = outcome, error, time.time()
            if outcome == "succeeded":
                task.progress = 100
        self._notify(task)

    def _last_out(self, task: SimTask, started: float) -> bool:
        """Keep the job processing until `capacity.job_seconds` have passed since it started (read on every
        turn) or it is cancelled; False if the simulator stopped first."""
        while task.state == "processing":
            seconds = self.capacity.job_seconds
            left = started + seconds - time.monotonic() if seconds else 0.0
            if left <= 0:
                return True
            if self._released.wait(min(left, 0.05)):
                return False
        return True

    def _hold(self, task: SimTask) -> None:
        """With the hold_progress fault on, the task shows that progress until the fault is cleared (tests
        reset `faults` after each test), it is cancelled, or the simulator stops."""
        while (held := self.faults.hold_progress) is not None and task.state == "processing":
            task.progress = held
            if self._released.wait(0.05):
                return

    def render_task(self, task: SimTask) -> Path:
        """Fetch the inputs and render. Subclasses extend it to note start times or check parameters late."""
        if self.faults.fail_render:
            raise RenderError(self.faults.fail_render)
        folder = self._workdir / task.id
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for role, url in task.inputs.items():
            resp = self.http.get(url, timeout=30, follow_redirects=True)
            resp.raise_for_status()
            paths[role] = folder / role
            paths[role].write_bytes(resp.content)
        out = folder / "out.mp4"
        prompt, negative_prompt = self.prompts(task)
        job = RenderJob(
            duration=self.faults.render_seconds or task.duration,
            short_side=max(240, int(task.short_side * self.render_scale) // 2 * 2),
            first_frame=paths.get("first_frame"),
            last_frame=paths.get("last_frame"),
            clip=paths.get("clip"),
            audio=paths.get("audio"),
            seed=task.seed,
            prompt=prompt,
            negative_prompt=negative_prompt,
        )
        render(job, out, on_progress=lambda f: setattr(task, "progress", min(99, int(f * 100))))
        return out

    def prompts(self, task: SimTask) -> tuple[str, str]:
        """The prompt and negative prompt the request carried, which the renderer draws as a caption. Most
        APIs put them at the top of the body; a subclass whose API nests them says where."""
        return _text(task.request.get("prompt")), _text(task.request.get("negative_prompt"))

    # -- callbacks --------------------------------------------------------------------------------
    def _notify(self, task: SimTask) -> None:
        if not task.callback_url:
            self._settled(task.id, "no callback URL")
            return
        if self.faults.drop_callbacks:
            self._settled(task.id, "dropped")
            return
        body = json.dumps(self.callback_body(task)).encode()
        headers = {"Content-Type": "application/json", **self.callback_headers(task, body)}
        for _ in range(max(1, self.faults.duplicate_callbacks)):
            args = (task.id, task.callback_url, body, headers)
            threading.Thread(target=self._deliver, args=args, daemon=True).start()

    def _deliver(self, task_id: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        waits = (0.0, *self.callback_retries)
        for wait in waits:
            time.sleep(wait)
            try:
                resp = self.http.post(url, content=body, headers=headers, timeout=self.callback_timeout)
                self.callbacks_sent.append((url, resp.status_code))
                if 200 <= resp.status_code < 300:
                    self._settled(task_id, "delivered")
                    return
            except httpx.HTTPError:
                self.callbacks_sent.append((url, None))
        self._settled(task_id, "gave up")

    def _settled(self, task_id: str, outcome: str) -> None:
        with self.lock:
            self.callbacks_settled.append((task_id, outcome))


def simulator_for(provider: str) -> type[Simulator]:
    """A provider's simulator class, found by the provider's name: `SIMULATOR` in i2v_local/sim_<name>.py."""
    module_name = f"{__package__}.sim_{provider}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise LookupError(f"provider {provider!r} has no simulator: i2v_local/sim_{provider}.py") from None
    found: type[Simulator] = module.SIMULATOR
    return found
