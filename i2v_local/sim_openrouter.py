"""Simulator for OpenRouter's video API with model `alibaba/wan-2.7` (image-to-video through `frame_images`).

POST /api/v1/videos -> 202 {"id", "polling_url" (relative), "status": "pending", "generation_id"};
GET /api/v1/videos/<id>; GET /api/v1/videos/<id>/content?index=0 -> the MP4, with the account's Bearer key
only; GET /api/v1/videos/models. No cancel endpoint. Callbacks POST a `video.generation.<status>` envelope
when a job ends, signed with `X-OpenRouter-Signature` when the workspace has a signing secret.

Sources: https://openrouter.ai/docs/features/video-generation ,
https://openrouter.ai/docs/api/api-reference/videos ,
https://openrouter.ai/docs/cookbook/video-generation/video-generation-webhooks , the OpenAPI document of
github.com/OpenRouterTeam/docs (openapi/openapi.yaml),
https://openrouter.ai/docs/api/reference/errors-and-debugging .
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

MODEL = "alibaba/wan-2.7"
VIDEOS = "/api/v1/videos"
FRAME_TYPES = ("first_frame", "last_frame")
# The global `resolution` enum (VideoGenerationRequest); Wan 2.7's own list is in /models only.
RESOLUTIONS = ("480p", "720p", "768p", "1080p", "1K", "2K", "4K")
WAN_RESOLUTIONS = ("720p", "1080p")  # GUESS: Wan 2.7's supported_resolutions
WAN_DURATIONS = tuple(range(2, 16))  # GUESS: Wan 2.7's supported_durations (the model's 2-15 s)
WAN_ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")  # GUESS: Wan 2.7's supported_aspect_ratios
PASSTHROUGH: tuple[str, ...] = ()  # GUESS: Wan 2.7's allowed_passthrough_parameters are not documented
PRICE_PER_SECOND = {720: 0.10, 1080: 0.15}  # GUESS: only "0.1" (lowest) is in the choose-model cookbook

# Our task states in OpenRouter's words (VideoGenerationResponse.status). `expired` is not a state of ours:
# the simulator marks it per job (`expire`).
STATE_NAMES = {
    "queued": "pending",
    "processing": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
CANCELLED_ERROR = "Job was cancelled"  # webhook cookbook, video.generation.cancelled
EXPIRED_ERROR = "Job exceeded maximum time to live"  # webhook cookbook, video.generation.expired


class Invalid(Exception):
    """A request OpenRouter answers with 400 {"error": {"code": 400, "message"}}."""


class OpenRouterSimulator(Simulator):
    name = "openrouter"
    never_issued = (
        "job-000000000000000000000000"  # GUESS: the ids' format ("abc123", "job-abc123" in examples)
    )
    # GUESS: neither the retry count, the schedule nor the timeout of webhook deliveries is documented.
    callback_retries = (1, 2, 4)
    callback_timeout = 10.0
    # The workspace's signing secret, used as-is as the HMAC key (both of the docs' samples). OpenRouter only
    # signs when one is set; a test makes a simulator with "" to see unsigned deliveries.
    webhook_secret = "sim-openrouter-webhook-signing-secret"  # noqa: S105 - the simulator's, on purpose

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.credits_exhausted = False  # answer submits with 402 "Insufficient credits"
        # The live API reference mentions a signed storage URL `urls[0]`; the OpenAPI document has no such
        # field. Off by default (the OpenAPI shape); on, finished jobs also carry `urls` (a signed link).
        self.storage_urls = False
        self.expired: set[str] = set()  # jobs ended as `expired`
        self.generation_ids: dict[str, str] = {}

    def rules(self) -> list[Rule]:
        return [
            Rule(VIDEOS, endpoint="submit", methods=["POST"]),
            Rule(f"{VIDEOS}/models", endpoint="models", methods=["GET"]),
            Rule(f"{VIDEOS}/<job_id>", endpoint="get", methods=["GET"]),
            Rule(f"{VIDEOS}/<job_id>/content", endpoint="content", methods=["GET"]),
        ]

    def new_id(self) -> str:
        return f"job-{secrets.token_hex(12)}"

    # -- OpenRouter's shapes ----------------------------------------------------------------------
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        # {"error": {"code": <int>, "message", "metadata"?}}, HTTP status = error.code (errors-and-debugging)
        return self.json({"error": {"code": status, "message": message}}, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "No auth credentials found")  # GUESS: the message's wording

    def server_error(self) -> Response:
        # 503 is in the general list; whether the job was made is not said (no "not created" 5xx).
        return self.error(503, "Service unavailable")

    def rate_limited(self) -> Response:
        # 429 "Rate limit exceeded", which may carry Retry-After (seconds)
        return self.error(429, "Rate limit exceeded", {"Retry-After": f"{self.faults.retry_after:g}"})

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # 429 "Rate limit exceeded"; a 429 "may carry Retry-After (seconds)" (errors-and-debugging): it does.
        return self.error(429, "Rate limit exceeded", {"Retry-After": f"{retry_after:g}"})

    def status_name(self, task: SimTask) -> str:
        if task.id in self.expired and not self.faults.unknown_status:
            return "expired"
        return self.status_word(task, STATE_NAMES)

    def job_json(self, task: SimTask) -> dict[str, Any]:
        status = self.status_name(task)
        body: dict[str, Any] = {
            "id": task.id,
            "generation_id": self.generation_ids.get(task.id),
            "polling_url": f"{VIDEOS}/{task.id}",  # GUESS: relative, as in the submit answer's example
            "status": status,
        }
        if task.state == "succeeded" and status == "completed":
            body["unsigned_urls"] = [f"{self.base_url}{VIDEOS}/{task.id}/content?index=0"]
            if self.storage_urls:
                body["urls"] = [self.result_url(task)]
            body["usage"] = {"cost": cost(task), "is_byok": False}
        elif task.state == "cancelled":
            body["error"] = CANCELLED_ERROR
        elif task.id in self.expired:
            body["error"] = EXPIRED_ERROR
        elif task.state == "failed":
            body["error"] = task.error or "Provider returned error"
        return body

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        data = self.job_json(task)
        status = data["status"]
        envelope_data = {
            "id": task.id,
            "status": status,
            "generation_id": data["generation_id"],
            "model": MODEL,
        }
        for key in ("unsigned_urls", "usage", "error"):
            if key in data:
                envelope_data[key] = data[key]
        created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"type": f"video.generation.{status}", "created_at": created, "data": envelope_data}

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        headers = {"X-OpenRouter-Idempotency-Key": f"{task.id}-{self.status_name(task)}"}
        if self.webhook_secret:
            stamp = str(int(time.time()))
            digest = hmac.new(
                self.webhook_secret.encode(), stamp.encode() + b"," + body, hashlib.sha256
            ).hexdigest()
            headers["X-OpenRouter-Signature"] = f"t={stamp},v1={digest}"
        return headers

    def expire(self, task: SimTask) -> None:
        """End an in-flight job as OpenRouter's `expired` ("Job exceeded maximum time to live")."""
        with self.lock:
            if task.state not in ("queued", "processing"):
                return
            self.expired.add(task.id)
            task.state, task.error, task.finished_at = "failed", EXPIRED_ERROR, time.time()
        self._notify(task)

    # -- endpoints --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        if self.credits_exhausted:
            return self.error(
                402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
            )
        data = self.body(request)
        if data is None:
            return self.error(400, "Request body must be a JSON object")
        try:
            frames = validate(data)
        except Invalid as exc:
            return self.error(400, str(exc))
        if data["model"] != MODEL:
            return self.error(404, f"Model {data['model']} not found")  # GUESS: 404 for an unknown model
        task = self.create(
            inputs={"first_frame": frames.get("first_frame"), "last_frame": frames.get("last_frame")},
            duration=data.get("duration", 5),  # GUESS: the default duration
            resolution=data.get("resolution", "720p"),  # GUESS: the default resolution
            callback_url=data.get("callback_url"),
            request=data,
            seed=data.get("seed"),
        )
        self.generation_ids[task.id] = f"gen-{int(task.created_at)}-{secrets.token_hex(5)}"
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        body = {
            "id": task.id,
            "generation_id": self.generation_ids[task.id],
            "polling_url": f"{VIDEOS}/{task.id}",  # relative, as in the OpenAPI example
            "status": "pending",
        }
        return self.json(body, 202)

    def get(self, request: Request, job_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(job_id)
        if task is None:
            return self.error(404, "Video generation job not found")  # GUESS: the message's wording
        return self.json(self.job_json(task))

    def content(self, request: Request, job_id: str) -> Response:
        # Reached only with the Bearer key (the base checks it for every route but its own /files links).
        task = self.tasks.get(job_id)
        index = request.args.get("index", "0")
        if not index.isdigit():
            return self.error(400, "index must be a non-negative integer")
        if task is None or task.video is None or int(index) != 0:
            return self.error(404, "Video not found")
        with self.lock:
            self.downloads[job_id] = self.downloads.get(job_id, 0) + 1
        if self.faults.expire_results:
            # GUESS: how long the content stays is not documented; a gone video answers like a missing one.
            return self.error(404, "Video not found")
        return Response(task.video.read_bytes(), mimetype="video/mp4")

    def models(self, request: Request) -> Response:
        # VideoModel (openapi.yaml). GUESS: every Wan 2.7 value below; the docs say to read them from here.
        model = {
            "id": MODEL,
            "canonical_slug": MODEL,
            "name": "Alibaba: Wan 2.7",
            "created": 1767225600,
            "supported_resolutions": list(WAN_RESOLUTIONS),
            "supported_aspect_ratios": list(WAN_ASPECT_RATIOS),
            "supported_sizes": None,
            "supported_durations": list(WAN_DURATIONS),
            "supported_frame_images": list(FRAME_TYPES),
            "upscale_factor": None,
            "creativity": None,
            "generate_audio": True,
            "seed": True,
            "allowed_passthrough_parameters": list(PASSTHROUGH),
            "pricing_skus": {
                "per-video-second": f"{PRICE_PER_SECOND[720]:.2f}",
                "per-video-second-1080p": f"{PRICE_PER_SECOND[1080]:.2f}",
            },
        }
        return self.json({"data": [model]})


def validate(data: dict[str, Any]) -> dict[str, str]:
    """Check a submit body as VideoGenerationRequest documents it; the frame URLs by frame_type."""
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise Invalid("model is required")
    if "prompt" in data and not isinstance(data["prompt"], str):
        raise Invalid("prompt must be a string")
    frames = _frames(data.get("frame_images"))
    if "first_frame" not in frames:
        # GUESS: this simulator renders image-to-video only; OpenRouter would make text-to-video of it.
        raise Invalid("frame_images must include a first_frame image (this simulator does image-to-video)")
    duration = data.get("duration", 5)
    if not _is_int(duration) or duration < 1:
        raise Invalid("duration must be an integer >= 1")
    if duration not in WAN_DURATIONS:
        raise Invalid(f"duration {duration} is not supported by {MODEL}")
    resolution = data.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        raise Invalid(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if resolution not in WAN_RESOLUTIONS:
        raise Invalid(f"resolution {resolution} is not supported by {MODEL}")
    seed = data.get("seed")
    if seed is not None and not _is_int(seed):
        raise Invalid("seed must be an integer")
    if "generate_audio" in data and not isinstance(data["generate_audio"], bool):
        raise Invalid("generate_audio must be a boolean")
    options = data.get("provider")
    if options is not None:
        for slug, given in (options.get("options") or {}).items() if isinstance(options, dict) else ():
            for key in given if isinstance(given, dict) else ():
                if key not in PASSTHROUGH:
                    raise Invalid(f"provider.options.{slug}.{key} is not an allowed passthrough parameter")
    if data.get("callback_url") is not None:
        _check_callback_url(data["callback_url"])
    return frames


def _frames(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise Invalid("frame_images must be an array")
    frames: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or item.get("type") != "image_url":
            raise Invalid('frame_images items must have type "image_url"')
        image = item.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str):
            raise Invalid("frame_images[].image_url.url must be an http(s) URL")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Invalid("frame_images[].image_url.url must be an http(s) URL")
        kind = item.get("frame_type")
        if kind not in FRAME_TYPES:
            raise Invalid("frame_images[].frame_type must be first_frame or last_frame")
        if kind in frames:
            raise Invalid(f"frame_images has more than one {kind}")  # GUESS: one of each
        frames[kind] = url
    return frames


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_callback_url(url: Any) -> None:
    """`callback_url` is HTTPS (create-videos reference). This local stand-in's callbacks go to the gateway on
    this machine, so it also takes http:// on loopback."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname:
        raise Invalid("callback_url must be a URL")
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise Invalid("callback_url must use HTTPS")


def cost(task: SimTask) -> float:
    return round(task.duration * PRICE_PER_SECOND[1080 if task.short_side == 1080 else 720], 4)


SIMULATOR = OpenRouterSimulator
