"""The `oxen` provider: Oxen.ai's async generation queue serving `wan-v2-7-image-to-video`.

Enqueue `POST /api/ai/queue`, poll `GET /api/ai/queue/{id}`, cancel `DELETE /api/ai/queue/{id}`; no webhooks.
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
    as_text,
    job_id,
    json_body,
    state_of,
)

DEFAULT_BASE_URL = "https://hub.oxen.ai"
MODEL = "wan-v2-7-image-to-video"

# The async_queue reference lists exactly these five words.
STATES = {
    "queued": ProviderState.QUEUED,
    "processing": ProviderState.PROCESSING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "cancelled": ProviderState.CANCELLED,
}

RESOLUTIONS = {"720p": "720P", "1080p": "1080P"}

# All three modes, 2-15 s, 720P/1080P and driving audio per the model page; cancel via DELETE. Completion
# is pushed only over an SSE stream, never to a callback URL, so the gateway polls.
#
# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: no 5xx. The error docs (inference-api/overview.mdx in the
# Oxen-AI/docs repository, the source of docs.oxen.ai) give the types unauthenticated, invalid_params,
# resource_not_found and unknown_error and never say a 5xx means "not enqueued". Follow-up:
# `GET /api/ai/queue` lists the queued and processing generations, so a submit with an unknown outcome could
# be matched there instead of failing the task.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    modes=ALL_MODES,
    durations=ALL_DURATIONS,
    audio=True,
    callback=False,
    cancel=True,
    submit_not_created=SUBMIT_NOT_CREATED,
)


@dataclass
class OxenProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # callback_url is dropped: Oxen has no webhook field, and the sweeper polls instead.
        body: dict[str, Any] = {
            "model": MODEL,
            # One request is one job for us; more would bill several videos under one task.
            "num_generations": 1,
            "prompt": req.prompt,
            "input_image": req.image_url,
            "end_image_url": req.last_frame_url,
            "input_video": req.video_url,
            "audio_url": req.audio_url,
            "resolution": RESOLUTIONS[req.resolution],
            "duration": req.duration,
            "prompt_extend": req.prompt_extend,
            "watermark": req.watermark,
            "negative_prompt": req.negative_prompt,
            "seed": req.seed,
        }
        return self.request("POST", "/api/ai/queue", {k: v for k, v in body.items() if v is not None})

    def parse_submit(self, resp: httpx.Response) -> str:
        data = json_body(resp)
        generations = data.get("generations")
        first = generations[0] if isinstance(generations, list) and generations else None
        return job_id(
            first.get("generation_id") if isinstance(first, dict) else None,
            "generations[0].generation_id",
            resp,
        )

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/api/ai/queue/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = json_body(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        # Oxen reports neither progress nor an ETA, and a failure carries only a message, no code.
        return ProviderStatus(
            state=state,
            raw_status=raw,
            result_url=as_text(data.get("result_url")) if state is ProviderState.SUCCEEDED else None,
            error_message=as_text(data.get("error_message")),
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return self.request("DELETE", f"/api/ai/queue/{quote(provider_task_id, safe='')}")


PROVIDER = Declaration(
    name="oxen", adapter=OxenProvider, capabilities=CAPABILITIES, default_base_url=DEFAULT_BASE_URL
)
