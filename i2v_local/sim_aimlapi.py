"""Simulator for AI/ML API's universal video endpoint serving `alibaba/wan-2-7-i2v`.

POST /v2/video/generations and GET /v2/video/generations?generation_id=<id> both answer {id, status, video,
error, meta}; errors are {message, path, requestId, statusCode, timestamp}. No callbacks, no cancel.

Sources: https://docs.aimlapi.com/api-references/video-models/alibaba-cloud/wan-2.7-image-to-video ;
the error shape is from docs/errors-and-messages/ in AI/ML API's docs repository, aimlapi/api-docs.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

MODEL = "alibaba/wan-2-7-i2v"
PATH = "/v2/video/generations"
REQUIRED = ("model", "prompt", "image_url")
DURATIONS = (5, 10, 15)
RESOLUTIONS = ("720p", "1080p")
MAX_NEGATIVE_PROMPT = 500

# SimTask state -> the OpenAPI status enum. Nothing can cancel a task here (no cancel endpoint), so
# "cancelled" only exists to keep the table total.
STATE_NAMES = {
    "queued": "queued",
    "processing": "generating",
    "succeeded": "completed",
    "failed": "error",
    "cancelled": "error",
}

_NANOID = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# Messages quoted from docs/errors-and-messages/errors-with-status-code-4xx.md and -5xx.md.
UNAUTHORIZED = (
    "This request requires a valid API key. You can create a new API key on the Billing page: "
    "https://aimlapi.com/app/keys"
)
OUT_OF_CREDITS = (
    "You've run out of credits. Please top up your balance or update your payment method to "
    "continue: https://aimlapi.com/app/billing/"
)


class AimlapiSimulator(Simulator):
    name = "aimlapi"
    never_issued = "AAAAAAAAAAAAAAAAAAAAA"  # 21 characters of nanoid's alphabet, like the ids it issues
    # Result URL lifetime is NOT FOUND in the docs; the engine's one hour stands in for it.

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.out_of_credits = False  # answer submits with the documented 403

    def rules(self) -> list[Rule]:
        return [
            Rule(PATH, endpoint="submit", methods=["POST"]),
            Rule(PATH, endpoint="fetch", methods=["GET"]),
        ]

    def new_id(self) -> str:
        # The doc example's id is "6_slPtsld56BC5D7MSfaH": 21 characters of nanoid's URL-safe alphabet.
        return "".join(secrets.choice(_NANOID) for _ in range(21))

    # -- the provider's shapes --------------------------------------------------------------------
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {
            "message": message,
            "path": PATH,  # both operations live on this one path
            "requestId": str(uuid.uuid4()),
            "statusCode": str(status),  # a string in the documented example
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return self.json(body, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, UNAUTHORIZED)

    def server_error(self) -> Response:
        return self.error(503, "Service unavailable")

    def rate_limited(self) -> Response:
        # The docs document the 429 message but no Retry-After header; the engine's header is kept so the
        # client's Retry-After path is exercised (clients without it fall back to backoff anyway).
        return self.error(429, "Too Many Requests", {"Retry-After": f"{self.faults.retry_after:g}"})

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # The 4xx page's 429 "Too Many Requests" is for "rate or concurrency limit" alike; it documents no
        # Retry-After, so none is sent.
        return self.error(429, "Too Many Requests")

    def task_json(self, task: SimTask) -> dict[str, Any]:
        done = task.state == "succeeded"
        # GUESS: the docs give the error shape {name, message} but no example name.
        error = {"name": "GenerationError", "message": task.error or "generation failed"}
        return {
            "id": task.id,
            "status": self.status_word(task, STATE_NAMES),
            "video": {"url": self.result_url(task)} if done else None,
            "error": error if task.state == "failed" else None,
            "meta": {"usage": _usage(task.duration)} if done else None,
        }

    # -- endpoints --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        data = self.body(request)
        issues = ["(root): Expected object"] if data is None else _check(data)
        if data is None or issues:
            return self.error(400, "\n".join(["Body validation error!", *issues]))
        if self.out_of_credits:
            return self.error(403, OUT_OF_CREDITS)
        # Fields the schema does not name (last_frame_url, video_url, ...) are dropped, not refused: the
        # schema does not close the object (no additionalProperties: false) and the validator's messages
        # are zod's, whose objects strip unknown keys by default. Hence routing's mode check.
        inputs = {"first_frame": str(data["image_url"])}
        if data.get("audio_url"):
            inputs["audio"] = str(data["audio_url"])
        task = self.create(
            inputs=inputs,
            duration=int(data.get("duration", 10)),  # documented default "10"
            resolution=str(data.get("resolution", "1080p")),  # documented default
            callback_url=None,  # no webhooks for video generations
            request=data,
            seed=data.get("seed"),
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json(self.task_json(task))

    def fetch(self, request: Request) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task_id = request.args.get("generation_id")
        if not task_id:
            # GUESS: the query is validated like the body; the exact wording is not documented.
            return self.error(400, "Query validation error!\ngeneration_id: Required")
        task = self.tasks.get(task_id)
        if task is None:
            # The 404 row of the docs has no message ("-"); this wording is a guess.
            return self.error(404, f"Generation {task_id} not found")
        return self.json(self.task_json(task))


def _check(data: dict[str, Any]) -> list[str]:
    """The body validator's issues, one "<field>: <message>" line each, in the zod wording the docs quote."""
    issues: list[str] = []
    if "model" not in data:
        issues.append("model: Required")
    elif data["model"] != MODEL:
        issues.append(f"model: Invalid enum value. Expected '{MODEL}', received {_show(data.get('model'))}")
    for key in ("prompt", "image_url", "audio_url", "negative_prompt"):
        value = data.get(key)
        if key not in data:
            if key in REQUIRED:
                issues.append(f"{key}: Required")
        elif not isinstance(value, str):
            issues.append(f"{key}: Expected string, received {_kind(value)}")
        elif key.endswith("_url") and not value.startswith(("http://", "https://", "data:")):
            # "A direct link to an online image or a Base64-encoded local image". This simulator's render
            # worker fetches http(s) only, so a data: URI passes validation but ends in `error`.
            issues.append(f"{key}: Invalid url")
        elif key == "negative_prompt" and len(value) > MAX_NEGATIVE_PROMPT:
            issues.append(f"{key}: String must contain at most {MAX_NEGATIVE_PROMPT} character(s)")
    # An empty prompt is valid: the schema requires the field but sets no minLength.
    if "resolution" in data and data["resolution"] not in RESOLUTIONS:
        received = _show(data["resolution"])
        issues.append(f"resolution: Invalid enum value. Expected '720p' | '1080p', received {received}")
    if "duration" in data and not _is_duration(data["duration"]):
        received = _show(data["duration"])
        issues.append(f"duration: Invalid enum value. Expected 5 | 10 | 15, received {received}")
    for key in ("enable_prompt_expansion", "enhance_prompt", "watermark"):
        if key in data and not isinstance(data[key], bool):
            issues.append(f"{key}: Expected boolean, received {_kind(data[key])}")
    if "seed" in data and (isinstance(data["seed"], bool) or not isinstance(data["seed"], int)):
        issues.append(f"seed: Expected integer, received {_kind(data['seed'])}")
    return issues


def _is_duration(value: Any) -> bool:
    # The schema says integer, yet its default is "10" and the doc's own Python example sends "duration": "5":
    # a validator that refused its documented example would be wrong, so the digit strings pass too.
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return isinstance(value, int) and value in DURATIONS


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "float"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else ("undefined" if value is None else str(value))


def _usage(duration: int) -> dict[str, float]:
    # GUESS: the doc example (duration 5, 1080p) used 120000 credits / $0.06; scaled linearly by duration.
    credits = 24_000 * duration
    return {"credits_used": credits, "usd_spent": round(credits / 2_000_000, 4)}


SIMULATOR = AimlapiSimulator
