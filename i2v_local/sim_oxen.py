"""Simulator for Oxen.ai's async queue (`/api/ai/queue`) serving `wan-v2-7-image-to-video`.

Like Oxen, enqueue checks only auth, credits, model and num_generations; model parameters are checked when the
generation runs, and a bad one ends it `failed` with an `error_message`. No webhooks: clients poll.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.render import RenderError
from i2v_local.simulator import Refusal, SimTask, Simulator

MODEL = "wan-v2-7-image-to-video"
# The model page's parameter table
# (https://docs.oxen.ai/inference-api/reference/models/wan-v2-7-image-to-video): prompt "Max 5000 characters",
# negative_prompt "Max 500 characters", duration "Range: 2 - 15", seed "Range: 0 - 2147483647".
MAX_PROMPT = 5000
MAX_NEGATIVE_PROMPT = 500
MIN_DURATION, MAX_DURATION = 2, 15
MAX_SEED = 2_147_483_647
# Oxen serves hundreds of models; the queue refuses text-only ones. One of each kind is enough here.
MODEL_OUTPUTS = {MODEL: "video", "claude-sonnet-4-6": "text"}

# SimTask states already are Oxen's words; the table keeps the mapping explicit like every simulator's.
STATUS_WORDS = {
    "queued": "queued",
    "processing": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
ACTIVE = ("queued", "processing")
ENVELOPE = ("model", "num_generations", "target_namespace")  # queue fields, not echoed as model parameters
MEDIA_FIELDS = ("input_image", "end_image_url", "input_video", "audio_url")
ROLES = {
    "first_frame": "input_image",
    "last_frame": "end_image_url",
    "clip": "input_video",
    "audio": "audio_url",
}

# Titles from inference-api/overview.mdx and async_queue.mdx where documented; the others are our wording.
TITLES = {
    "invalid_params": "Invalid parameters supplied, please check your request and try again.",
    "resource_not_found": "The requested resource could not be found",
    "unauthenticated": "Unauthenticated, please provide a valid API key",  # type documented, title NOT FOUND
    "unknown_error": "An unknown error occurred",  # type documented, title NOT FOUND
    "insufficient_credits": "Insufficient credits",  # NOT FOUND: the failed-generation example's wording
    "forbidden": "You do not have access to this namespace",  # NOT FOUND
    "rate_limited": "Rate limit exceeded",  # NOT FOUND for video; wording of the chat example's 429
}


class OxenSimulator(Simulator):
    name = "oxen"
    never_issued = "00000000-0000-4000-8000-000000000000"
    namespace = "sim-user"  # the account the API key belongs to; target_namespace defaults to it
    member_of: frozenset[str] = frozenset({"sim-org"})  # organisations the key may bill to

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.out_of_credits = False  # flip to make enqueue refuse with 402
        self._started: dict[str, int] = {}

    def rules(self) -> list[Rule]:
        return [
            Rule("/api/ai/queue", endpoint="enqueue", methods=["POST"]),
            Rule("/api/ai/queue", endpoint="list_generations", methods=["GET"]),
            Rule("/api/ai/queue/<generation_id>", endpoint="get_generation", methods=["GET"]),
            Rule("/api/ai/queue/<generation_id>", endpoint="cancel_generation", methods=["DELETE"]),
        ]

    def new_id(self) -> str:
        return str(uuid.uuid4())  # the docs type generation_id as a UUID

    # -- Oxen's error shapes ----------------------------------------------------------------------
    def problem(
        self, kind: str, status: int, detail: str | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Oxen's first error format: {"error": {type, title, detail?}, "status", "status_message"}."""
        error = {"type": kind, "title": TITLES[kind]}
        if detail:
            error["detail"] = detail
        return self.json({"error": error, "status": "error", "status_message": kind}, status, headers)

    def message_error(self, message: str, status: int) -> Response:
        """The second format, used by the queue's model checks: {"error": {"message": "..."}}."""
        return self.json({"error": {"message": message}}, status)

    def unauthorized(self) -> Response:
        return self.problem("unauthenticated", 401)

    def server_error(self) -> Response:
        return self.problem("unknown_error", 503)

    def rate_limited(self) -> Response:
        return self.problem("rate_limited", 429, headers={"Retry-After": f"{self.faults.retry_after:g}"})

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # Rate limits for video are NOT FOUND; the one 429 Oxen documents is its chat example's "Rate limit
        # exceeded", here in Oxen's error format. No Retry-After is documented, so none is sent.
        return self.problem("rate_limited", 429)

    def not_found(self) -> Response:
        # Documented verbatim for GET and DELETE on an unknown generation id.
        return self.problem("resource_not_found", 404)

    # -- the queue --------------------------------------------------------------------------------
    def enqueue(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        data = self.body(request)
        if data is None:
            return self.problem("invalid_params", 400, "request body must be a JSON object")
        refusal = self.enqueue_refusal(data)
        if refusal is not None:
            return refusal
        # All of a request's generations are made, or none (past the cap on jobs in flight).
        tasks = self.accept(*(self.generation(data) for _ in range(data.get("num_generations", 1))))
        self.hang_if_asked()  # the jobs exist; with the fault on, the caller never hears about them
        return self.json({"generations": [{"generation_id": t.id, "status": "queued"} for t in tasks]})

    def enqueue_refusal(self, data: dict[str, Any]) -> Response | None:
        """What Oxen checks before queueing: model, num_generations, namespace and credits. Nothing else.

        HTTP status codes for these are NOT FOUND in the docs; the messages are the documented ones.
        """
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return self.problem("invalid_params", 400, "model is required")
        if model not in MODEL_OUTPUTS:
            return self.message_error(f"Model not found: {model}", 404)
        if MODEL_OUTPUTS[model] not in ("image", "video"):
            return self.message_error(":unsupported_media_type", 400)
        count = data.get("num_generations", 1)
        if not _int_in(count, 1, 4):
            return self.problem("invalid_params", 400, "num_generations must be an integer between 1 and 4")
        target = data.get("target_namespace", self.namespace)
        if target != self.namespace and target not in self.member_of:
            return self.problem("forbidden", 403, f"cannot bill to namespace {target!r}")
        if self.out_of_credits:
            return self.problem("insufficient_credits", 402)
        return None

    def generation(self, data: dict[str, Any]) -> SimTask:
        """One generation of an enqueue request, not made yet (`accept` makes it)."""
        # Parameters are not validated yet (see render_task); pass the renderer only values it can take.
        duration = data.get("duration", 5)
        resolution = data.get("resolution", "1080P")
        seed = data.get("seed")
        return self.new_task(
            inputs={role: data[field] for role, field in ROLES.items() if isinstance(data.get(field), str)},
            duration=duration if _int_in(duration, MIN_DURATION, MAX_DURATION) else 5,
            resolution=resolution if resolution in ("720P", "1080P") else "1080P",
            callback_url=None,  # Oxen has no webhooks
            request=data,
            seed=seed if _int_in(seed, 0, MAX_SEED) else None,
        )

    def generation_json(self, task: SimTask) -> dict[str, Any]:
        params = task.request
        core: dict[str, Any] = {
            "generation_id": task.id,
            "model_name": params.get("model"),
            "prompt": params.get("prompt"),
            "media_type": "video",
            "status": self.status_word(task, STATUS_WORDS),
            "result_url": self.result_url(task),
            "error_message": task.error if task.state == "failed" else None,
            "enqueued_at": int(task.created_at),
            "started_at": self._started.get(task.id),
            "completed_at": int(task.finished_at) if task.finished_at is not None else None,
        }
        # "Any additional parameters from the original enqueue request ... are included in the response."
        echo = {k: v for k, v in params.items() if k not in ENVELOPE and k not in core}
        return {**core, **echo}

    def get_generation(self, request: Request, generation_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(generation_id)
        if task is None:
            return self.not_found()
        return self.json(self.generation_json(task))

    def list_generations(self, request: Request) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        args = request.args
        namespace = args.get("namespace", self.namespace)
        wanted_status = args.get("status")
        found = []
        for task in list(self.tasks.values()):
            params = task.request
            if params.get("target_namespace", self.namespace) != namespace:
                continue
            if "model" in args and params.get("model") != args["model"]:
                continue
            if args.get("media_type", "video") != "video":
                continue
            # Without a status filter only active generations are listed.
            if (task.state != wanted_status) if wanted_status else (task.state not in ACTIVE):
                continue
            found.append(self.generation_json(task))
        return self.json({"count": len(found), "generations": found})

    def cancel_generation(self, request: Request, generation_id: str) -> Response:
        task = self.tasks.get(generation_id)
        if task is None:
            return self.not_found()
        # On a terminal generation it "has no effect"; the docs show no other answer, so: the same body.
        self.cancel_requested(task)
        return self.json({"status": "success", "generation_id": task.id})

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        # Never sent (no callback URL exists at Oxen). This is the data of the SSE event
        # `media_generation_completed`, Oxen's only push, written down for reference.
        if task.state == "succeeded":
            return {
                "generation_id": task.id,
                "status": "succeeded",
                "media_type": "video",
                "model": task.request.get("model"),
                "url": self.result_url(task),
            }
        return {"generation_id": task.id, "status": task.state, "media_type": "video", "error": task.error}

    # -- running a generation ---------------------------------------------------------------------
    def render_task(self, task: SimTask) -> Path:
        self._started[task.id] = int(time.time())
        problem = parameter_problem(task.request)
        if problem is not None:
            # The wording of Oxen's sync endpoint for the same check (video_generation.mdx); the queue's own
            # wording for parameter failures is NOT FOUND.
            raise RenderError(f"Getting model response error: 422 - Value error, {problem}")
        return super().render_task(task)


def parameter_problem(params: dict[str, Any]) -> str | None:
    """The first way the request breaks the model's request schema or media rules, or None."""
    prompt = params.get("prompt")
    if not isinstance(prompt, str):
        return "prompt: field required"
    if len(prompt) > MAX_PROMPT:
        return f"prompt: at most {MAX_PROMPT} characters"
    negative = params.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > MAX_NEGATIVE_PROMPT):
        return f"negative_prompt: a string of at most {MAX_NEGATIVE_PROMPT} characters"
    for name in MEDIA_FIELDS:
        value = params.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            return f"{name}: must be a URI"
    first, clip = params.get("input_image"), params.get("input_video")
    if first and clip:
        return "input_image and input_video are mutually exclusive"
    if not first and not clip:
        return "one of input_image or input_video is required"
    if clip and params.get("audio_url"):
        # The model's own rule (driving audio only with a first frame); Oxen's page does not say.
        return "audio_url cannot be combined with input_video"
    if params.get("resolution", "1080P") not in ("720P", "1080P"):
        return "resolution: must be one of 720P, 1080P"
    duration = params.get("duration", 5)
    if not _int_in(duration, MIN_DURATION, MAX_DURATION):
        return f"duration: must be an integer between {MIN_DURATION} and {MAX_DURATION}"
    for flag in ("prompt_extend", "watermark"):
        if not isinstance(params.get(flag, False), bool):
            return f"{flag}: must be a boolean"
    seed = params.get("seed")
    if seed is not None and not _int_in(seed, 0, MAX_SEED):
        return f"seed: must be an integer between 0 and {MAX_SEED}"
    return None


def _int_in(value: Any, low: int, high: int) -> bool:
    # JSON true/false arrive as bool, a subclass of int: not an integer to a JSON schema.
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


SIMULATOR = OxenSimulator
