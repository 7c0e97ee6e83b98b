"""Simulator for the `local` provider: the embedded renderer behind a plain task API.

POST /v1/tasks -> 201 {id, status}; GET /v1/tasks/<id>; POST /v1/tasks/<id>/cancel; callbacks POST the
task object (which echoes its callback_url) to callback_url when it finishes (10 s timeout, retries after 1,
2 and 4 s).

The video shows the request: its prompt and negative prompt as a caption, its seed as the camera's drift. A
request without a seed gets a random one, like the model's hosts, and the task object reports the seed used.
"""

from __future__ import annotations

import secrets
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import SimTask, Simulator

STATE_NAMES = {
    "queued": "queued",
    "processing": "rendering",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


MAX_SEED = 2_147_483_647


class LocalSimulator(Simulator):
    name = "local"
    never_issued = "no-such-task"
    # Our own API, documented by no host: refusals past the caps are the engine default (over_capacity).

    def rules(self) -> list[Rule]:
        return [
            Rule("/v1/tasks", endpoint="submit", methods=["POST"]),
            Rule("/v1/tasks/<task_id>", endpoint="get", methods=["GET"]),
            Rule("/v1/tasks/<task_id>/cancel", endpoint="cancel", methods=["POST"]),
        ]

    def task_json(self, task: SimTask) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": task.id,
            "status": self.status_word(task, STATE_NAMES),
            "progress": task.progress,
            "eta_seconds": 2 if task.state in ("queued", "processing") else None,
            "video_url": self.result_url(task),
            "seed": task.seed,
            # Echoed as sent: it ties the job to the gateway task that made it (adopting a callback's job).
            "callback_url": task.callback_url,
        }
        if task.error:
            body["error"] = {"code": "render_failed", "message": task.error}
        return body

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return self.task_json(task)

    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        data = self.body(request)
        if data is None:
            return self.json(
                {"error": {"code": "invalid_json", "message": "body must be a JSON object"}}, 400
            )
        image, clip = data.get("image_url"), data.get("video_url")
        if bool(image) == bool(clip):
            return self.json(
                {"error": {"code": "invalid_media", "message": "give image_url or video_url"}}, 400
            )
        duration = data.get("duration", 5)
        if not isinstance(duration, int) or not 2 <= duration <= 15:
            return self.json({"error": {"code": "invalid_duration", "message": "duration must be 2-15"}}, 400)
        seed = data.get("seed")
        if seed is None:
            seed = secrets.randbelow(MAX_SEED + 1)
        elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            message = f"seed must be an integer in 0-{MAX_SEED}"
            return self.json({"error": {"code": "invalid_seed", "message": message}}, 400)
        task = self.create(
            inputs={
                "first_frame": image,
                "clip": clip,
                "last_frame": data.get("last_frame_url"),
                "audio": data.get("audio_url"),
            },
            duration=duration,
            resolution=str(data.get("resolution", "1080p")),
            callback_url=data.get("callback_url"),
            request=data,
            seed=seed,
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json({"id": task.id, "status": "queued"}, 201)

    def get(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(task_id)
        if task is None:
            return self.json({"error": {"code": "not_found", "message": f"no task {task_id}"}}, 404)
        return self.json(self.task_json(task))

    def cancel(self, request: Request, task_id: str) -> Response:
        task = self.tasks.get(task_id)
        if task is None:
            return self.json({"error": {"code": "not_found", "message": f"no task {task_id}"}}, 404)
        if not self.cancel_requested(task):
            return self.json({"error": {"code": "not_cancellable", "message": f"task is {task.state}"}}, 409)
        return self.json(self.task_json(task))


SIMULATOR = LocalSimulator
