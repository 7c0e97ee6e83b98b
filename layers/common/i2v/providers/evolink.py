"""The `evolink` provider: EvoLink's unified video API (model `wan2.7-image-to-video`), polled at
/v1/tasks/{id}. Sources: https://docs.evolink.ai/en/api-manual/video-series/wan2.7/wan2.7-image-to-video ,
https://docs.evolink.ai/en/api-manual/task-management/get-task-detail .
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ALL_DURATIONS,
    ALL_MODES,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderState,
    ProviderStatus,
    as_int,
    as_object,
    as_text,
    callback_json,
    job_id,
    json_body,
    state_of,
)

DEFAULT_BASE_URL = "https://api.evolink.ai"
MODEL = "wan2.7-image-to-video"
# EvoLink documents seed 1-2147483647; the model itself accepts 0. Seed 0 is refused (by routing, from
# CAPABILITIES) rather than rewritten: sending 1 would quietly give the video of another seed, and leaving
# it out a random one; either breaks the promise that a seed reproduces a result.
MIN_SEED = 1

STATES = {
    "pending": ProviderState.QUEUED,
    "processing": ProviderState.PROCESSING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    # Not in the task status enum, but the callback docs say callbacks fire for "cancelled" tasks and carry
    # the task object: if EvoLink ever reports the word, it means what it says, not "unknown".
    "cancelled": ProviderState.CANCELLED,
}
# A task-level error code that means the task was cancelled, not that generation failed.
CANCELLED_CODES = frozenset({"request_cancelled"})

# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: no 5xx. The error codes page
# (api-manual/task-management/error-codes on docs.evolink.ai) documents 500 internal_error/api_error with
# no word on whether the task exists, and task-level service_error/service_unavailable codes that arrive on
# a task that does exist.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    modes=ALL_MODES,  # first_frame, first_last_frame, video_continuation (generation_mode)
    durations=ALL_DURATIONS,  # 2-15
    resolutions=frozenset({"720p", "1080p"}),  # quality
    audio=True,  # audio_urls, in the two image modes
    callback=True,  # callback_url
    cancel=False,  # task_info.can_cancel exists, but no cancel endpoint is documented
    min_seed=MIN_SEED,
    # No watermark field is documented: silently dropping one would deliver an unmarked video to a client who
    # asked for the mark, so routing refuses such requests and fails over.
    watermark=False,
)


@dataclass
class EvolinkProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Routing has refused what EvoLink cannot take (seed 0, a watermark: see CAPABILITIES); EvoLink has
        # no watermark field, so `req.watermark` (then always false) is not sent.
        body: dict[str, Any] = {
            "model": MODEL,
            # Explicit, as EvoLink recommends: auto-selection could read the media differently from us.
            "generation_mode": mode.value,
            "quality": req.resolution,  # EvoLink's default is 720p, ours 1080p
            "duration": req.duration,
            "prompt_extend": req.prompt_extend,  # EvoLink's default is false, the model's (and ours) true
        }
        if req.prompt:
            body["prompt"] = req.prompt
        if req.negative_prompt:
            body["negative_prompt"] = req.negative_prompt
        if mode is Mode.VIDEO_CONTINUATION:
            body["video_urls"] = [req.video_url]
        else:
            body["image_start"] = req.image_url
        if req.last_frame_url:
            body["image_end"] = req.last_frame_url
        if req.audio_url:
            body["audio_urls"] = [req.audio_url]
        if req.seed is not None:
            body["seed"] = req.seed
        if callback_url:
            body["callback_url"] = callback_url
        return self.request("POST", "/v1/videos/generations", body)

    def parse_submit(self, resp: httpx.Response) -> str:
        data = json_body(resp)
        return job_id(data.get("id"), "id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/v1/tasks/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = json_body(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        error = as_object(data.get("error"))
        error_code = as_text(error.get("code"))
        if state is ProviderState.FAILED and error_code in CANCELLED_CODES:
            # The status enum has no cancelled value; a cancelled task can only surface as failed + this code.
            state = ProviderState.CANCELLED
        results = data.get("results")
        first = results[0] if isinstance(results, list) and results else None
        result_url = first if isinstance(first, str) else None
        task_info = as_object(data.get("task_info"))
        return ProviderStatus(
            state=state,
            raw_status=raw,
            progress=as_int(data.get("progress")),
            result_url=result_url,
            error_code=error_code,
            error_message=as_text(error.get("message")),
            eta_seconds=as_int(task_info.get("estimated_time")),
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # no cancel endpoint is documented (the docs show only task_info.can_cancel)

    def callback_task_id(self, body: bytes) -> str | None:
        task_id = callback_json(body).get("id")  # "consistent with the task query API response"
        return task_id if isinstance(task_id, str) else None


PROVIDER = Declaration(
    name="evolink", adapter=EvolinkProvider, capabilities=CAPABILITIES, default_base_url=DEFAULT_BASE_URL
)
