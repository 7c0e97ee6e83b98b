"""Simulator for Novita's `wan2.7-i2v` API, and, configured without webhooks, for HighwayAPI's copy of it.

POST /v3/async/wan2.7-i2v -> {task_id}; GET /v3/async/task-result?task_id=...; no cancel endpoint;
webhooks POST {"event_type": "ASYNC_TASK_RESULT", "payload": <task-result>} to extra.webhook.url.
"""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

STATUS_NAMES = {
    "queued": "TASK_STATUS_QUEUED",
    "processing": "TASK_STATUS_PROCESSING",
    "succeeded": "TASK_STATUS_SUCCEED",
    "failed": "TASK_STATUS_FAILED",
    "cancelled": "TASK_STATUS_CANCELED",
}
RESOLUTIONS = ("720P", "1080P")
# The wan2.7-i2v reference (https://novita.ai/docs/api-reference/model-apis-wan2.7-i2v),
# and word for word HighwayAPI's copy (https://docs.jiekou.ai/en/docs/models/reference-wan2.7-i2v):
# prompt "Length limit: 0 - 5000", negative_prompt "Length limit: 0 - 500",
# duration "Range: [2, 15] integer", seed "Range: [0, 2147483647]".
MAX_PROMPT = 5000
MAX_NEGATIVE_PROMPT = 500
MIN_DURATION, MAX_DURATION = 2, 15
MAX_SEED = 2_147_483_647
# Renderer input role -> Novita's field for it.
MEDIA_FIELDS = {
    "first_frame": "image_url",
    "last_frame": "last_frame_url",
    "clip": "first_clip_url",
    "audio": "driving_audio_url",
}
# Not documented; a guess in the style of Novita's other task types.
TASK_TYPE = "WAN_2_7_I2V"


class NovitaSimulator(Simulator):
    name = "novita"
    never_issued = "00000000-0000-4000-8000-000000000000"
    # Novita: "retried up to five times" with a 5 s timeout
    # (https://novita.ai/docs/api-reference/model-apis-webhook). The spacing is not documented; we double
    # from 1 s, the usual habit, so five retries span about half a minute.
    callback_retries = (1.0, 2.0, 4.0, 8.0, 16.0)
    callback_timeout = 5.0

    def __init__(
        self,
        api_key: str = "sim-key",
        render_scale: float = 1.0,
        workers: int = 1,
        *,
        name: str = "novita",
        webhooks: bool = True,
    ) -> None:
        self.name = name  # before super().__init__, which names its work folder after it
        self.webhooks = webhooks
        # Keys that authenticate but may not use this model (the errors guide's 403).
        self.restricted_keys: set[str] = set()
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)

    def rules(self) -> list[Rule]:
        return [
            Rule("/v3/async/wan2.7-i2v", endpoint="submit", methods=["POST"]),
            Rule("/v3/async/task-result", endpoint="task_result", methods=["GET"]),
        ]

    # -- error bodies -----------------------------------------------------------------------------
    # The errors guide (https://novita.ai/docs/guides/error) lists 400/401/403/429/503 but does not
    # document a body. We use the {"code", "reason", "message", "metadata"} shape and reason words that
    # public client code records for Novita and JieKou (INVALID_REQUEST_BODY, FAILED_TO_AUTH, ACCESS_DENY,
    # RATE_LIMIT_EXCEEDED, SERVICE_NOT_AVAILABLE). TASK_NOT_FOUND with 404 for an unknown task id is our
    # own guess.
    def error(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        body = {"code": status, "reason": reason, "message": message, "metadata": {}}
        return self.json(body, status, headers)

    def invalid(self, message: str) -> Response:
        return self.error(400, "INVALID_REQUEST_BODY", message)

    def unauthorized(self) -> Response:
        return self.error(401, "FAILED_TO_AUTH", "failed to authenticate API key")

    def authorized(self, request: Request) -> bool:
        return super().authorized(request) or self._key(request) in self.restricted_keys

    def rate_limited(self) -> Response:
        return self.error(
            429,
            "RATE_LIMIT_EXCEEDED",
            "requests are too frequent, please try again later",
            {"Retry-After": f"{self.faults.retry_after:g}"},
        )

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # The errors guide lists 429 for rate limits (TPM/RPM); the body is this simulator's guess above, and
        # no Retry-After is documented, so none is sent.
        return self.error(429, "RATE_LIMIT_EXCEEDED", "requests are too frequent, please try again later")

    def server_error(self) -> Response:
        return self.error(503, "SERVICE_NOT_AVAILABLE", "service unavailable")

    def new_id(self) -> str:
        return str(uuid.uuid4())

    @staticmethod
    def _key(request: Request) -> str:
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    # -- bodies -----------------------------------------------------------------------------------
    def result_json(self, task: SimTask) -> dict[str, Any]:
        """The Task Result API's body (the documented skeleton, with our values)."""
        running = task.state in ("queued", "processing")
        url = self.result_url(task)
        return {
            "extra": {
                "seed": str(task.seed),
                "enable_nsfw_detection": False,
                "debug_info": {
                    "request_info": "",
                    "submit_time_ms": str(int(task.created_at * 1000)),
                    "execute_time_ms": "",
                    "complete_time_ms": str(int(task.finished_at * 1000)) if task.finished_at else "",
                },
            },
            "task": {
                "task_id": task.id,
                "status": self.status_word(task, STATUS_NAMES),
                "reason": task.error or "",
                "task_type": TASK_TYPE,
                # Seconds left, roughly: the share of the clip not yet rendered.
                "eta": max(1, round(task.duration * (100 - task.progress) / 100)) if running else 0,
                "progress_percent": task.progress,
            },
            "images": [],
            "videos": [{"video_url": url, "video_url_ttl": str(self.result_ttl_seconds), "video_type": "mp4"}]
            if url
            else [],
            "audios": [],
        }

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return {"event_type": "ASYNC_TASK_RESULT", "payload": self.result_json(task)}

    # -- handlers ---------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        if self._key(request) in self.restricted_keys:
            return self.error(403, "ACCESS_DENY", "your account has no access to model wan2.7-i2v")
        data = self.body(request)
        if data is None:
            return self.invalid("request body must be a JSON object")
        problem = self.validate(data)
        if problem:
            return self.invalid(problem)
        callback_url = None
        if self.webhooks:
            webhook = (data.get("extra") or {}).get("webhook") or {}
            callback_url = webhook.get("url") or None
        task = self.create(
            inputs={role: str(data[field]) for role, field in MEDIA_FIELDS.items() if data.get(field)},
            duration=data.get("duration", 5),
            resolution=data.get("resolution", "1080P"),
            callback_url=callback_url,
            request=data,
            seed=data.get("seed"),
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json({"task_id": task.id})

    def validate(self, data: dict[str, Any]) -> str | None:
        """The checks the docs describe; the first problem found, or None."""
        for field in MEDIA_FIELDS.values():
            if field in data and (not isinstance(data[field], str) or not data[field]):
                return f"{field} must be a non-empty string"
        image, clip = data.get("image_url"), data.get("first_clip_url")
        if not image and not clip:
            return "image_url or first_clip_url is required"
        if image and clip:
            return "image_url and first_clip_url are mutually exclusive"
        if clip and data.get("driving_audio_url"):
            # The model's own rule (valid combinations in DashScope's API reference,
            # https://www.alibabacloud.com/help/en/model-studio/image-to-video-general-api-reference);
            # Novita's page does not repeat it.
            return "driving_audio_url cannot be combined with first_clip_url"
        duration = data.get("duration", 5)
        if type(duration) is not int or not MIN_DURATION <= duration <= MAX_DURATION:
            return f"duration must be an integer in [{MIN_DURATION}, {MAX_DURATION}]"
        if data.get("resolution", "1080P") not in RESOLUTIONS:
            return "resolution must be one of 720P, 1080P"
        for field, limit in (("prompt", MAX_PROMPT), ("negative_prompt", MAX_NEGATIVE_PROMPT)):
            value = data.get(field, "")
            if not isinstance(value, str) or len(value) > limit:
                return f"{field} must be a string of at most {limit} characters"
        seed = data.get("seed", 0)
        if type(seed) is not int or not 0 <= seed <= MAX_SEED:
            return f"seed must be an integer in [0, {MAX_SEED}]"
        for field in ("watermark", "prompt_extend"):
            if not isinstance(data.get(field, False), bool):
                return f"{field} must be a boolean"
        extra = data.get("extra", {})
        webhook = extra.get("webhook", {}) if isinstance(extra, dict) else None
        if not isinstance(webhook, dict) or not isinstance(webhook.get("url", ""), str):
            return "extra.webhook.url must be a string"
        return None

    def task_result(self, request: Request) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task_id = request.args.get("task_id", "")
        if not task_id:
            return self.invalid("task_id is required")
        task = self.tasks.get(task_id)
        if task is None:
            return self.error(404, "TASK_NOT_FOUND", f"task {task_id} not found")
        return self.json(self.result_json(task))


SIMULATOR = NovitaSimulator
