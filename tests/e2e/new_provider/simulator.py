"""Simulator for Kestrel's clip API (an invented host): X-Api-Key auth, HMAC-signed webhooks, 2-10 s."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import SimTask, Simulator

WORDS = {
    "queued": "waiting",
    "processing": "running",
    "succeeded": "done",
    "failed": "error",
    "cancelled": "error",
}


class KestrelSimulator(Simulator):
    name = "kestrel"
    auth_header = "X-Api-Key"
    auth_value = "{key}"
    never_issued = "clip_000000000000"

    def rules(self) -> list[Rule]:
        return [
            Rule("/v2/clips", endpoint="submit", methods=["POST"]),
            Rule("/v2/clips/<clip_id>", endpoint="clip", methods=["GET"]),
        ]

    def new_id(self) -> str:
        return f"clip_{secrets.token_hex(6)}"

    def submit(self, request: Request) -> Response:
        if fault := self.submit_fault():
            return fault
        data = self.body(request) or {}
        seconds, size = data.get("seconds"), data.get("size")
        if not isinstance(data.get("image"), str):
            return self.json({"error": "image is required"}, 422)
        if not isinstance(seconds, int) or not 2 <= seconds <= 10:
            return self.json({"error": "seconds must be 2-10"}, 422)
        if size not in ("720p", "1080p"):
            return self.json({"error": "size must be 720p or 1080p"}, 422)
        inputs = {"first_frame": data["image"]}
        task = self.create(inputs, seconds, size, data.get("webhook"), data, seed=data.get("seed"))
        self.hang_if_asked()
        return self.json({"clip_id": task.id, "state": "waiting"}, 202)

    def clip(self, request: Request, clip_id: str) -> Response:
        if fault := self.poll_fault():
            return fault
        task = self.tasks.get(clip_id)
        if task is None:
            return self.json({"error": "no such clip"}, 404)
        return self.json(self.clip_object(task))

    def clip_object(self, task: SimTask) -> dict[str, Any]:
        word = self.status_word(task, WORDS)
        return {"clip_id": task.id, "state": word, "video": self.result_url(task), "error": task.error}

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return self.clip_object(task)

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        signature = hmac.new(self.api_key.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Kestrel-Signature": f"sha256={signature}"}


SIMULATOR = KestrelSimulator
