"""The `kestrel` provider: Kestrel's clip API (an invented host). POST /v2/clips, GET /v2/clips/{id}; a
webhook posts the clip object, signed (X-Kestrel-Signature). Its status answer does not echo the webhook URL,
so a submit whose answer is lost cannot be recovered (see the providers package's docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    Auth,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderState,
    ProviderStatus,
    as_text,
    callback_json,
    job_id,
    json_body,
    state_of,
)

STATES = {
    "waiting": ProviderState.QUEUED,
    "running": ProviderState.PROCESSING,
    "done": ProviderState.SUCCEEDED,
    "error": ProviderState.FAILED,
}

CAPABILITIES = Capabilities(
    modes=frozenset({Mode.FIRST_FRAME}),
    durations=frozenset(range(2, 11)),
    audio=False,
    callback=True,
    negative_prompt=False,
    prompt_extend=False,
    watermark=False,
)


@dataclass
class KestrelProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        body: dict[str, Any] = {
            "image": req.image_url,
            "prompt": req.prompt,
            "seconds": req.duration,
            "size": req.resolution,
            "seed": req.seed,
            "webhook": callback_url,
        }
        return self.request("POST", "/v2/clips", {k: v for k, v in body.items() if v is not None})

    def parse_submit(self, resp: httpx.Response) -> str:
        return job_id(json_body(resp).get("clip_id"), "clip_id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/v2/clips/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = json_body(resp)
        raw = str(data.get("state"))
        state = state_of(STATES, raw, resp.text)
        return ProviderStatus(
            state=state,
            raw_status=raw,
            result_url=as_text(data.get("video")) if state is ProviderState.SUCCEEDED else None,
            error_message=as_text(data.get("error")),
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # no cancel call

    def callback_task_id(self, body: bytes) -> str | None:
        clip_id = callback_json(body).get("clip_id")
        return clip_id if isinstance(clip_id, str) else None


PROVIDER = Declaration(
    name="kestrel",
    adapter=KestrelProvider,
    capabilities=CAPABILITIES,
    default_base_url="https://api.kestrel.invalid",
    auth=Auth(header="X-Api-Key", value="{key}"),
    max_in_flight=4,
    price={"720p": 0.05, "1080p": 0.08},
)
