"""Simulator for Alibaba Cloud Model Studio (DashScope), native wan2.7-i2v API.

POST /api/v1/services/aigc/video-generation/video-synthesis with X-DashScope-Async: enable -> {request_id,
output: {task_id, task_status}}; GET /api/v1/tasks/<task_id>. Polling only: no callbacks, no cancel endpoint.

Sources: https://www.alibabacloud.com/help/en/model-studio/image-to-video-general-api-reference ,
https://platform.qianwenai.com/docs/api-reference/video-generation/wan27-image-to-video/query-result .
"""

from __future__ import annotations

import hmac
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import av
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
MODEL = re.compile(r"^wan2\.7-i2v(-\d{4}-\d{2}-\d{2})?$")  # the alias or a dated snapshot (zh example)

STATE_NAMES = {
    "queued": "PENDING",
    "processing": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "cancelled": "CANCELED",
}
# DashScope media type -> the render engine's input role.
ROLES = {
    "first_frame": "first_frame",
    "last_frame": "last_frame",
    "first_clip": "clip",
    "driving_audio": "audio",
}
# The model's only accepted media sets; anything else is an InvalidParameter.
VALID_COMBINATIONS = frozenset(
    frozenset(combo)
    for combo in (
        {"first_frame"},
        {"first_frame", "driving_audio"},
        {"first_frame", "last_frame"},
        {"first_frame", "last_frame", "driving_audio"},
        {"first_clip"},
        {"first_clip", "last_frame"},
    )
)
URL_SCHEMES = ("http://", "https://", "oss://", "data:")  # public URL, OSS temporary URL, base64 data URI
RESOLUTIONS = ("720P", "1080P")
# The wan2.7 image-to-video API reference
# (https://www.alibabacloud.com/help/en/model-studio/image-to-video-general-api-reference):
# parameters.duration "int 2-15", parameters.seed "0-2147483647".
MIN_DURATION, MAX_DURATION = 2, 15
MAX_SEED = 2_147_483_647
# DashScope's docs do not state prompt lengths; these are the model's limits as the other hosts
# document them. They only word a type error: over-long prompts are truncated, not refused (see _parse).
MAX_PROMPT = 5000
MAX_NEGATIVE_PROMPT = 500
# Times are "YYYY-MM-DD HH:mm:ss.SSS" with no zone; the official samples read like China time (GUESS).
CHINA = timezone(timedelta(hours=8))


class DashscopeSimulator(Simulator):
    name = "dashscope"
    never_issued = "00000000-0000-4000-8000-000000000000"
    unknown_job_answer = "a 200 whose task_status is UNKNOWN (documented; see test_dashscope.py)"
    result_ttl_seconds = 24 * 3600  # "video_url ... valid for 24 hours"
    task_ttl_seconds = 24 * 3600  # "task_id is valid for 24 hours"; then the query says UNKNOWN

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.denied_keys: set[str] = set()  # real keys without access to the model -> 403
        self.overdue_keys: set[str] = set()  # keys of accounts in arrears -> 400 Arrearage
        self._auth = threading.local()  # why the current request's key failed (one thread per request)
        self._scheduled: dict[str, float] = {}  # task id -> when the worker picked it up
        self._clip_seconds: dict[str, float] = {}  # task id -> length of the clip it continued

    def new_id(self) -> str:
        return str(uuid.uuid4())  # task ids are UUIDs, like request ids

    def rules(self) -> list[Rule]:
        return [
            Rule(SUBMIT_PATH, endpoint="submit", methods=["POST"]),
            Rule("/api/v1/tasks/<task_id>", endpoint="query", methods=["GET"]),
            # DashScope answers a path (or method) it does not serve with a 400, not a 404.
            Rule("/<path:rest>", endpoint="bad_url"),
        ]

    # -- DashScope's error shapes -----------------------------------------------------------------
    # {"request_id", "code", "message"} is the DashScope-wide convention (Model Studio error-code page; the zh
    # wan2.7 reference shows it once, for InvalidApiKey on submit). Per-error bodies for wan2.7 are not shown.
    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        return self.json({"request_id": str(uuid.uuid4()), "code": code, "message": message}, status, headers)

    def invalid(self, message: str) -> Response:
        return self.error(400, "InvalidParameter", message)

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if hmac.compare_digest(header, f"Bearer {self.api_key}"):
            return True
        key = header.removeprefix("Bearer ").strip()
        if not key:
            self._auth.reason = "missing"
        elif key in self.denied_keys:
            self._auth.reason = "denied"
        elif key in self.overdue_keys:
            self._auth.reason = "overdue"
        else:
            self._auth.reason = "invalid"
        return False

    def unauthorized(self) -> Response:
        reason = getattr(self._auth, "reason", "invalid")
        if reason == "missing":
            return self.error(401, "InvalidApiKey", "No API-key provided.")  # the zh wan2.7 page's example
        if reason == "denied":
            return self.error(403, "Model.AccessDenied", "Model access denied.")
        if reason == "overdue":
            return self.error(
                400, "Arrearage", "Access denied, please make sure your account is in good standing."
            )
        return self.error(401, "InvalidApiKey", "Invalid API-key provided.")

    def server_error(self) -> Response:
        # Spelling as on the error-code page.
        return self.error(
            500,
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
        )

    def rate_limited(self) -> Response:
        # DashScope documents 429 Throttling.RateQuota but no Retry-After header (GUESS that it may send one);
        # the simulator sends it so the client's Retry-After path is exercised.
        return self.error(
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
            {"Retry-After": f"{self.faults.retry_after:g}"},
        )

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # 429 Throttling.RateQuota as above, without a Retry-After (none is documented). GUESS for the cap on
        # tasks in flight (the Wan 2.1 page listed 2 concurrent tasks): its refusal is not shown, so the same.
        return self.error(
            429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
        )

    def bad_url(self, request: Request, rest: str) -> Response:
        return self.invalid("url error, please check url!")

    # -- submit -----------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        if request.headers.get("X-DashScope-Async") != "enable":
            # 403 AccessDenied is how DashScope words the sibling "does not support asynchronous calls"
            # refusal in public reports; the status for this one is a GUESS, the message is documented.
            return self.error(403, "AccessDenied", "current user api does not support synchronous calls")
        data = self.body(request)
        if data is None:
            return self.invalid("The request body is not a valid JSON object.")
        parsed = self._parse(data)
        if isinstance(parsed, Response):
            return parsed
        media, parameters = parsed
        task = self.create(
            inputs={ROLES[kind]: url for kind, url in media.items()},
            duration=parameters["duration"],
            resolution=parameters["resolution"],
            callback_url=None,
            request=data,
            seed=parameters.get("seed"),
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json(
            {"request_id": str(uuid.uuid4()), "output": {"task_status": "PENDING", "task_id": task.id}}
        )

    def _parse(self, data: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]] | Response:
        """Validate like DashScope: the media set, then the parameters with their documented defaults."""
        model = data.get("model")
        if not model:
            return self.error(
                400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
            )
        if not isinstance(model, str) or not MODEL.match(model):
            return self.invalid("Model not exist.")
        inputs = data.get("input")
        if not isinstance(inputs, dict):
            return self.error(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
        for field, limit in (("prompt", MAX_PROMPT), ("negative_prompt", MAX_NEGATIVE_PROMPT)):
            # Over-long prompts are truncated by DashScope, not refused; only the type is checked.
            if inputs.get(field) is not None and not isinstance(inputs[field], str):
                return self.invalid(f"input.{field} must be a string of at most {limit} characters.")
        media = inputs.get("media")
        if not isinstance(media, list) or not media:
            # Wording ours; a reseller reports the upstream text as "... must provide an image".
            return self.invalid(
                "input.media is required: the image-to-video model must be given a first_frame or first_clip."
            )
        found: dict[str, str] = {}
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            url = item.get("url") if isinstance(item, dict) else None
            if kind not in ROLES:
                return self.invalid(f"input.media[].type must be one of {', '.join(ROLES)}; got {kind!r}.")
            if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
                return self.invalid(
                    f"input.media[].url of {kind} must be an http(s) URL, an oss:// URL or a data URI."
                )
            if kind in found:
                return self.invalid(f"Each media type may appear only once; {kind} appears twice.")
            found[kind] = url
        if frozenset(found) not in VALID_COMBINATIONS:
            return self.invalid(f"Invalid media combination: {'+'.join(found)}.")
        parameters = data.get("parameters", {})
        if not isinstance(parameters, dict):
            return self.invalid("parameters must be an object.")
        resolution = parameters.get("resolution", "1080P")
        if resolution not in RESOLUTIONS:
            return self.invalid(
                f"parameters.resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}."
            )
        duration = parameters.get("duration", 5)
        if not _is_int(duration) or not MIN_DURATION <= duration <= MAX_DURATION:
            return self.invalid(
                f"parameters.duration must be an integer in [{MIN_DURATION}, {MAX_DURATION}]; "
                f"got {duration!r}."
            )
        for flag in ("prompt_extend", "watermark"):
            if flag in parameters and not isinstance(parameters[flag], bool):
                return self.invalid(f"parameters.{flag} must be a boolean.")
        seed = parameters.get("seed")
        if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
            return self.invalid(f"parameters.seed must be an integer in [0, {MAX_SEED}]; got {seed!r}.")
        return found, {"resolution": resolution, "duration": duration, "seed": seed}

    # -- query ------------------------------------------------------------------------------------
    def query(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(task_id)
        if task is None or time.time() - task.created_at > self.task_ttl_seconds:
            # Documented: an unknown or expired task id is a 200 whose status is UNKNOWN, not a 404.
            return self.json(
                {"request_id": str(uuid.uuid4()), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            )
        return self.json(self.task_json(task))

    def task_json(self, task: SimTask) -> dict[str, Any]:
        output: dict[str, Any] = {
            "task_id": task.id,
            "task_status": self.status_word(task, STATE_NAMES),
            "submit_time": _timestamp(task.created_at),
        }
        scheduled = self._scheduled.get(task.id)
        if scheduled is not None:
            output["scheduled_time"] = _timestamp(scheduled)
        if task.finished_at is not None:
            output["end_time"] = _timestamp(task.finished_at)
        prompt = task.request.get("input", {}).get("prompt")
        if prompt:
            output["orig_prompt"] = prompt
        body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
        if task.state == "succeeded":
            output["video_url"] = self.result_url(task)
            body["usage"] = self._usage(task)
        elif task.state == "failed":
            # Which code a failed render carries is not documented for wan2.7; InternalError.Algo is the
            # DashScope family for model-side failures (the documented example shows InvalidParameter).
            output["code"] = "InternalError.Algo"
            output["message"] = task.error or "The model failed to generate the video."
        return body

    def _usage(self, task: SimTask) -> dict[str, int]:
        # Billing: duration = input_video_duration + output_video_duration; in continuation `duration` is the
        # total length including the given clip.
        given = min(round(self._clip_seconds.get(task.id, 0.0)), task.duration)
        return {
            "duration": task.duration,
            "input_video_duration": given,
            "output_video_duration": task.duration - given,
            "video_count": 1,
            "SR": task.short_side,
        }

    # -- the render worker ------------------------------------------------------------------------
    def prompts(self, task: SimTask) -> tuple[str, str]:
        inputs = task.request["input"]  # checked at submit: an object whose prompts are strings or absent
        return inputs.get("prompt") or "", inputs.get("negative_prompt") or ""

    def render_task(self, task: SimTask) -> Path:
        self._scheduled[task.id] = time.time()  # scheduled_time: when the worker picks the task up
        out = super().render_task(task)
        clip = out.parent / "clip"
        if "clip" in task.inputs and clip.is_file():
            self._clip_seconds[task.id] = _seconds(clip)
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(path: Path) -> float:
    # Only feeds the usage block: an unreadable length must not take the render worker down.
    try:
        with av.open(str(path)) as container:
            return container.duration / av.time_base if container.duration else 0.0
    except (av.error.FFmpegError, OSError):
        return 0.0


SIMULATOR = DashscopeSimulator
