"""Novita AI's `wan2.7-i2v` async API (flat body, `task-result` polling, `extra.webhook` callbacks).

HighwayAPI (JieKou) documents the same schema at another host: i2v.providers.highway declares it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ALL_DURATIONS,
    ALL_MODES,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderError,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    as_int,
    callback_json,
    job_id,
    json_body,
    json_or_none,
    state_of,
)

DEFAULT_BASE_URL = "https://api.novita.ai"
SUBMIT_PATH = "/v3/async/wan2.7-i2v"
RESULT_PATH = "/v3/async/task-result"

# SUCCEED/FAILED are in Novita's docs (https://novita.ai/docs/api-reference/model-apis-webhook);
# QUEUED/PROCESSING and CANCELED come from public client code. There is no cancel endpoint, but a task
# cancelled on Novita's side must not look running.
STATES = {
    "TASK_STATUS_QUEUED": ProviderState.QUEUED,
    "TASK_STATUS_PROCESSING": ProviderState.PROCESSING,
    "TASK_STATUS_SUCCEED": ProviderState.SUCCEEDED,
    "TASK_STATUS_FAILED": ProviderState.FAILED,
    "TASK_STATUS_CANCELED": ProviderState.CANCELLED,
}

# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: no 5xx. The errors guide (https://novita.ai/docs/guides/error)
# lists 503 and 504 without saying whether the task was created, and documents no
# error body; its 400/401/403/429 are refusals. HighwayAPI documents no errors at all and shares this set.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

# All three modes (image_url / +last_frame_url / first_clip_url), 2-15 s, 720P|1080P, driving audio.
# Webhooks: Novita's generic `extra.webhook` for V3 async APIs (the wan2.7-i2v page itself lists no `extra`).
CAPABILITIES = Capabilities(
    modes=ALL_MODES,
    durations=ALL_DURATIONS,
    audio=True,
    callback=True,
    cancel=False,
    alpha=False,  # "PNG (no transparency)"
    submit_not_created=SUBMIT_NOT_CREATED,
)


@dataclass
class NovitaProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        body: dict[str, Any] = {
            "prompt": req.prompt,
            "image_url": req.image_url,
            "last_frame_url": req.last_frame_url,
            "first_clip_url": req.video_url,
            "driving_audio_url": req.audio_url,
            # Always explicit: the host's defaults (1080P, 5 s, rewrite on) are not a contract we rely on.
            "resolution": req.resolution.upper(),
            "duration": req.duration,
            "prompt_extend": req.prompt_extend,
            "watermark": req.watermark,
            "seed": req.seed,
            "negative_prompt": req.negative_prompt,
        }
        body = {k: v for k, v in body.items() if v is not None}
        if callback_url and self.capabilities.callback:
            body["extra"] = {"webhook": {"url": callback_url}}
        return self.request("POST", SUBMIT_PATH, body)

    def parse_submit(self, resp: httpx.Response) -> str:
        data = _body(resp)
        return job_id(data.get("task_id"), "task_id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", RESULT_PATH, params={"task_id": provider_task_id})

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        return parse_task_result(_body(resp), resp.text)

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # Novita documents no cancel for async tasks

    def callback_task_id(self, body: bytes) -> str | None:
        event = callback_json(body)  # {"event_type": "ASYNC_TASK_RESULT", "payload": <task-result>}
        payload = event.get("payload") if event.get("event_type") == "ASYNC_TASK_RESULT" else None
        task = payload.get("task") if isinstance(payload, dict) else None
        task_id = task.get("task_id") if isinstance(task, dict) else None
        return task_id if isinstance(task_id, str) else None


def parse_task_result(data: dict[str, Any], raw: str) -> ProviderStatus:
    """A task-result object; a webhook's `payload` has the same shape, so callbacks can use this too."""
    task = data.get("task")
    if not isinstance(task, dict):
        raise ProviderError("task-result answer has no task object", raw=raw)
    status = str(task.get("status"))
    state = state_of(STATES, status, raw)
    videos = data.get("videos")
    first = videos[0] if isinstance(videos, list) and videos and isinstance(videos[0], dict) else {}
    url = first.get("video_url")
    reason = task.get("reason")
    return ProviderStatus(
        state=state,
        raw_status=status,
        progress=as_int(task.get("progress_percent")),
        result_url=str(url) if url and state is ProviderState.SUCCEEDED else None,
        # Novita gives a free-text reason and no failure code; the service supplies a generic code.
        error_message=str(reason) if reason and state is ProviderState.FAILED else None,
        eta_seconds=as_int(task.get("eta")),
    )


def _body(resp: httpx.Response) -> dict[str, Any]:
    """Novita/JieKou errors look like {"code": 400, "reason": "INVALID_REQUEST_BODY", "message": "..."};
    the useful code is `reason` (the numeric `code` only repeats the HTTP status)."""
    if 400 <= resp.status_code < 500 and resp.status_code != 429:
        data = json_or_none(resp.content)
        if isinstance(data, dict) and isinstance(data.get("reason"), str):
            message = data.get("message")
            raise ProviderRejected(
                str(message) if message else data["reason"],
                status_code=resp.status_code,
                code=data["reason"],
                raw=resp.text,
            )
    return json_body(resp)


PROVIDER = Declaration(
    name="novita", adapter=NovitaProvider, capabilities=CAPABILITIES, default_base_url=DEFAULT_BASE_URL
)
