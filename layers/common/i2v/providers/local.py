"""The `local` provider: the embedded renderer behind a small task API (see i2v_local.sim_local).

It speaks a deliberately plain dialect so it documents the adapter shape the real hosts follow.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    callback_json,
    job_id,
    json_body,
    state_of,
)

STATES = {
    "queued": ProviderState.QUEUED,
    "rendering": ProviderState.PROCESSING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "cancelled": ProviderState.CANCELLED,
}


# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: the renderer's own API (i2v_local.sim_local) answers 503 only
# when it refuses a submit before making a job (overloaded); a 500, 502 or 504 may come after the job exists.
SUBMIT_NOT_CREATED = frozenset({503})

CAPABILITIES = Capabilities(
    modes=ALL_MODES,
    durations=ALL_DURATIONS,
    audio=True,
    callback=True,
    cancel=True,
    submit_not_created=SUBMIT_NOT_CREATED,
)


@dataclass
class LocalProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        body = {
            "prompt": req.prompt,
            "negative_prompt": req.negative_prompt,
            "image_url": req.image_url,
            "last_frame_url": req.last_frame_url,
            "video_url": req.video_url,
            "audio_url": req.audio_url,
            "resolution": req.resolution,
            "duration": req.duration,
            "prompt_extend": req.prompt_extend,
            "watermark": req.watermark,
            "seed": req.seed,  # absent: the renderer picks one and reports it
            "callback_url": callback_url,
        }
        return self.request("POST", "/v1/tasks", {k: v for k, v in body.items() if v is not None})

    def parse_submit(self, resp: httpx.Response) -> str:
        data = json_body(resp)
        return job_id(data.get("id"), "id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/v1/tasks/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = json_body(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        error = data.get("error") or {}
        return ProviderStatus(
            state=state,
            raw_status=raw,
            progress=data.get("progress"),
            result_url=data.get("video_url"),
            error_code=error.get("code"),
            error_message=error.get("message"),
            eta_seconds=data.get("eta_seconds"),
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return self.request("POST", f"/v1/tasks/{quote(provider_task_id, safe='')}/cancel")

    def callback_task_id(self, body: bytes) -> str | None:
        task_id = callback_json(body).get("id")  # callbacks carry the task object
        return task_id if isinstance(task_id, str) else None


PROVIDER = Declaration(
    name="local",
    adapter=LocalProvider,
    capabilities=CAPABILITIES,
    default_base_url="",
    # The local renderer (i2v_local.sim_local) queues what it cannot render yet; the demo and the tests send
    # it bursts, so its cap is set where a host's would be generous. ProviderSettings sets another.
    max_in_flight=64,
)
