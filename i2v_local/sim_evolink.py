"""Simulator for EvoLink's unified video API with model `wan2.7-image-to-video`.

POST /v1/videos/generations -> 200 task object (`task-unified-<epoch>-<8 chars>`, status pending);
GET /v1/tasks/<id>; callbacks POST the task object when a task completes, fails or is cancelled.

Sources: https://docs.evolink.ai/en/api-manual/video-series/wan2.7/wan2.7-image-to-video ,
https://docs.evolink.ai/en/api-manual/task-management/get-task-detail .
"""

from __future__ import annotations

import ipaddress
import secrets
import string
import time
from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

MODEL = "wan2.7-image-to-video"
ID_PREFIX = "task-unified-"
MODES = ("first_frame", "first_last_frame", "video_continuation")
QUALITIES = ("720p", "1080p")
MAX_SEED = 2_147_483_647
MAX_CALLBACK_URL = 2048

# Our task states in EvoLink's words. The status enum has no "cancelled": a cancelled task is reported as
# failed with the documented task error code request_cancelled (the callback still fires, as documented).
STATE_NAMES = {
    "queued": "pending",
    "processing": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
}

# HTTP error `type` per status. invalid_request_error, authentication_error and api_error are documented;
# the others are NOT FOUND in the docs and are plausible guesses in the same style.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
}

# The media each mode requires, allows, and refuses (EvoLink's generation_mode description).
MODE_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # mode -> (required, allowed)
    "first_frame": (frozenset({"image_start"}), frozenset({"image_start", "audio_urls"})),
    "first_last_frame": (
        frozenset({"image_start", "image_end"}),
        frozenset({"image_start", "image_end", "audio_urls"}),
    ),
    "video_continuation": (frozenset({"video_urls"}), frozenset({"video_urls", "image_end"})),
}
# The six valid combinations when generation_mode is omitted, and the mode each one selects.
COMBINATIONS = {
    frozenset({"image_start"}): "first_frame",
    frozenset({"image_start", "audio_urls"}): "first_frame",
    frozenset({"image_start", "image_end"}): "first_last_frame",
    frozenset({"image_start", "image_end", "audio_urls"}): "first_last_frame",
    frozenset({"video_urls"}): "video_continuation",
    frozenset({"video_urls", "image_end"}): "video_continuation",
}


class Invalid(Exception):
    """A request EvoLink answers with 400 invalid_request; `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class EvolinkSimulator(Simulator):
    name = "evolink"
    never_issued = "task-unified-1757169743-zzzzzzzz"
    result_ttl_seconds = 24 * 3600  # "Generated video links are valid for 24 hours"
    callback_retries = (1, 2, 4)  # documented: up to 3 retries, 1/2/4 s after a failure
    callback_timeout = 10.0  # documented

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.quota_exhausted = False  # answer submits with 402 insufficient_quota
        self.model_access_denied = False  # answer submits with 403 model_access_denied

    def rules(self) -> list[Rule]:
        return [
            Rule("/v1/videos/generations", endpoint="submit", methods=["POST"]),
            Rule("/v1/tasks/<task_id>", endpoint="get", methods=["GET"]),
        ]

    def new_id(self) -> str:
        alphabet = string.ascii_lowercase + string.digits
        return f"{ID_PREFIX}{int(time.time())}-{''.join(secrets.choice(alphabet) for _ in range(8))}"

    # -- EvoLink's shapes -------------------------------------------------------------------------
    def error(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = {"error": {"code": code, "message": message, "type": ERROR_TYPES[status], "param": param}}
        return self.json(body, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "unauthorized", "Invalid or missing API key")

    def server_error(self) -> Response:
        return self.error(500, "internal_error", "Internal server error, please try again later")

    def rate_limited(self) -> Response:
        # EvoLink documents the 429 code but not a Retry-After header; sending one lets tests check the
        # client honours it when present.
        return self.error(
            429,
            "rate_limit_exceeded",
            "Rate limit exceeded, please slow down",
            headers={"Retry-After": f"{self.faults.retry_after:g}"},
        )

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # The documented 429 `rate_limit_exceeded` (error codes page); no Retry-After is documented.
        return self.error(429, "rate_limit_exceeded", "Rate limit exceeded, please slow down")

    def task_json(self, task: SimTask) -> dict[str, Any]:
        in_flight = task.state in ("queued", "processing")
        progress = 100 if task.state == "succeeded" else (task.progress if task.state == "processing" else 0)
        body: dict[str, Any] = {
            "created": int(task.created_at),
            "id": task.id,
            "model": MODEL,
            "object": "video.generation.task",
            "progress": progress,
            "status": self.status_word(task, STATE_NAMES),
            "task_info": {"can_cancel": in_flight},
            "type": "video",
        }
        if in_flight:
            body["task_info"]["estimated_time"] = estimated_seconds(task)
        url = self.result_url(task)
        if url:
            body["results"] = [url]
        if task.state == "cancelled":
            body["error"] = task_error("request_cancelled", "The task was cancelled")
        elif task.state == "failed":
            message = task.error or "generation failed"
            body["error"] = task_error(task_error_code(message), message)
        return body

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return self.task_json(task)  # "consistent with the task query API response"

    # -- endpoints --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        if self.quota_exhausted:
            return self.error(402, "insufficient_quota", "Insufficient quota, please top up your balance")
        if self.model_access_denied:
            return self.error(403, "model_access_denied", f"Your token has no access to model {MODEL}")
        data = self.body(request)
        if data is None:
            return self.error(400, "invalid_request", "Request body must be a JSON object")
        try:
            media = validate(data)
        except Invalid as exc:
            return self.error(400, "invalid_request", str(exc), exc.param)
        task = self.create(
            inputs={
                "first_frame": media.get("image_start", ""),
                "last_frame": media.get("image_end", ""),
                "clip": media.get("video_urls", ""),
                "audio": media.get("audio_urls", ""),
            },
            duration=data.get("duration", 5),
            resolution=data.get("quality", "720p"),  # EvoLink's default
            callback_url=data.get("callback_url"),
            request=data,
            seed=data.get("seed"),
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        body = self.task_json(task)
        body["task_info"] = {"can_cancel": True, "estimated_time": estimated_seconds(task)}
        body["usage"] = {
            "billing_rule": "per_second",
            "credits_reserved": credits(task),
            "user_group": "default",
        }
        return self.json(body)

    def get(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        if not task_id.startswith(ID_PREFIX):  # the docs give the code and message; 400 is our pick
            return self.error(400, "invalid_task_id", f"Task ID must start with '{ID_PREFIX}'", "task_id")
        task = self.tasks.get(task_id)
        if task is None:
            return self.error(404, "task_not_found", f"Task {task_id} not found", "task_id")
        return self.json(self.task_json(task))


def validate(data: dict[str, Any]) -> dict[str, str]:
    """Check a submit body the way EvoLink documents it; returns the media URLs by field name."""
    if data.get("model") != MODEL:
        raise Invalid(f"model must be {MODEL}", "model")
    for field, limit in (("prompt", 5000), ("negative_prompt", 500)):
        if field in data and not isinstance(data[field], str):
            raise Invalid(f"{field} must be a string", field)
        # Longer prompts are documented as auto-truncated, not refused.
        if isinstance(data.get(field), str):
            data[field] = data[field][:limit]
    media: dict[str, str] = {}
    for field in ("image_start", "image_end"):
        if data.get(field) is not None:
            media[field] = _url(data[field], field)
    for field in ("video_urls", "audio_urls"):
        if data.get(field) is not None:
            urls = data[field]
            if not isinstance(urls, list) or len(urls) != 1:
                raise Invalid(f"{field} must be an array with exactly 1 element", field)
            media[field] = _url(urls[0], field)
    given = frozenset(media)
    mode = data.get("generation_mode")
    if mode is None:
        if given not in COMBINATIONS:
            named = ", ".join(sorted(given)) or "none"
            raise Invalid(
                f"unsupported combination of materials: {named}; expected "
                "image_start [+ image_end] [+ audio_urls], or video_urls [+ image_end]"
            )
    elif mode not in MODE_RULES:
        raise Invalid(f"generation_mode must be one of {', '.join(MODES)}", "generation_mode")
    else:
        required, allowed = MODE_RULES[mode]
        missing, refused = sorted(required - given), sorted(given - allowed)
        if missing:
            raise Invalid(f"{missing[0]} is required in {mode} mode", missing[0])
        if refused:
            raise Invalid(f"{refused[0]} is not allowed in {mode} mode", refused[0])
    quality = data.get("quality", "720p")
    if quality not in QUALITIES:
        raise Invalid("quality must be one of 720p, 1080p", "quality")
    duration = data.get("duration", 5)
    if not _is_int(duration) or not 2 <= duration <= 15:
        raise Invalid("duration must be an integer between 2 and 15", "duration")
    seed = data.get("seed")
    if seed is not None and (not _is_int(seed) or not 1 <= seed <= MAX_SEED):
        raise Invalid(f"seed must be an integer between 1 and {MAX_SEED}", "seed")
    if "prompt_extend" in data and not isinstance(data["prompt_extend"], bool):
        raise Invalid("prompt_extend must be a boolean", "prompt_extend")
    if data.get("callback_url") is not None:
        _check_callback_url(data["callback_url"])
    return media


def _url(value: Any, field: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"{field} must be an http(s) URL", field)
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_callback_url(url: Any) -> None:
    """EvoLink takes HTTPS callback URLs only and refuses internal IPs.

    This simulator is a local stand-in whose callbacks go to the gateway on this machine, so it also takes
    http:// and https:// URLs on loopback; every other plain-http or private-address URL is refused as the
    real service would.
    """
    if not isinstance(url, str) or len(url) > MAX_CALLBACK_URL:
        raise Invalid(f"callback_url must be a URL of at most {MAX_CALLBACK_URL} characters", "callback_url")
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = _ip(host)
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if loopback and parts.scheme in ("http", "https"):
        return
    if parts.scheme != "https" or not host:
        raise Invalid("callback_url must use HTTPS", "callback_url")
    if address is not None and (address.is_private or address.is_link_local):
        raise Invalid("callback_url must not point to an internal IP address", "callback_url")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def task_error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "type": "task_error"}


def task_error_code(message: str) -> str:
    """The documented task-level error code closest to why the render failed."""
    lowered = message.lower()
    if "policy" in lowered or "refused" in lowered:
        return "content_policy_violation"
    if "for url" in lowered or "connect" in lowered:  # an input could not be fetched
        return "resource_not_found"
    if "image" in lowered:
        return "image_processing_error"
    return "invalid_parameters"


def estimated_seconds(task: SimTask) -> int:
    # The local renderer needs roughly a second per output second at 720p, more at 1080p.
    return max(1, round(task.duration * task.short_side / 720))


def credits(task: SimTask) -> float:
    # A placeholder rate: the docs' credits_reserved is a generic example, and billing follows duration.
    return round(task.duration * (1.5 if task.short_side == 1080 else 1.0), 2)


SIMULATOR = EvolinkSimulator
