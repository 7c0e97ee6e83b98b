"""The engine under every provider simulator: a real HTTP server on loopback, a task table, a render
worker, result files with expiring links, callbacks with the provider's retry habits, and fault switches.

A provider's simulator subclasses `Simulator` and only says how its API looks (routes, bodies, statuses).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import queue
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        self.api_key = api_key
        self.faults = Faults()
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
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self._secret = secrets.token_bytes(16)
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
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._released.set()
        for _ in self._workers:
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

    # -- faults shared by every API shape ---------------------------------------------------------
    def submit_fault(self) -> Response | None:
        """A 503 or 429 if a fault asks for one (counted as a received submit either way)."""
        with self.lock:
            self.submits += 1
        if self.faults.delay_submits:
            self._released.wait(self.faults.delay_submits)
        with self.lock:
            if self.faults.fail_submits > 0:
                self.faults.fail_submits -= 1
                return self.server_error()
            if self.faults.rate_limit_submits > 0:
                self.faults.rate_limit_submits -= 1
                return self.rate_limited()
        return None

    def poll_fault(self) -> Response | None:
        if self.faults.delay_polls:
            self._released.wait(self.faults.delay_polls)
        with self.lock:
            if self.faults.rate_limit_polls > 0:
                self.faults.rate_limit_polls -= 1
                return self.rate_limited()
        return None

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
        task = SimTask(
            id=self.new_id(),
            inputs={role: url for role, url in inputs.items() if url},
            duration=duration,
            short_side=1080 if resolution.lower() == "1080p" else 720,
            seed=seed or 0,
            callback_url=callback_url,
            request=request,
        )
        with self.lock:
            self.tasks[task.id] = task
        if not self.faults.stall:
            self._jobs.put(task.id)
        return task

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

    # -- the render worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            task_id = self._jobs.get()
            if task_id is None:
                return
            task = self.tasks[task_id]
            if task.state != "queued":
                continue
            task.state = "processing"
            self._hold(task)
            if task.state != "processing":  # cancelled while held
                continue
            try:
                task.video = self.render_task(task)
                outcome, error = "succeeded", None
            except (RenderError, httpx.HTTPError, OSError) as exc:
                outcome, error = "failed", str(exc)
            with self.lock:
                if task.state != "processing":  # cancelled meanwhile
                    continue
                task.state, task.error, task.finished_at = outcome, error, time.time()
                if outcome == "succeeded":
                    task.progress = 100
            self._notify(task)

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
        with httpx.Client(timeout=30, follow_redirects=True) as client:
            for role, url in task.inputs.items():
                resp = client.get(url)
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
                resp = httpx.post(url, content=body, headers=headers, timeout=self.callback_timeout)
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
