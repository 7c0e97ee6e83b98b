"""Idempotency-Key on POST /v1/videos: replays return the first task without touching media or providers."""

from __future__ import annotations

import shutil
from pathlib import Path

from i2v_local.sim_local import LocalSimulator
from tests.support import api_call


def test_replay_returns_the_first_task_even_after_its_media_url_stopped_working(
    tenant: str, local_sim: LocalSimulator, media_server: tuple[Path, str]
) -> None:
    local_sim.faults.stall = True
    folder, base = media_server
    shutil.copy(folder / "sample.png", folder / "replay.png")
    body = {"image_url": f"{base}/replay.png", "duration": 3}
    status, first = api_call("POST", "/v1/videos", body, headers={"Idempotency-Key": "replay-1"})
    assert status == 202
    (folder / "replay.png").unlink()  # e.g. a presigned link that has expired
    status, again = api_call("POST", "/v1/videos", body, headers={"Idempotency-Key": "replay-1"})
    assert status == 202
    assert again["id"] == first["id"]
    assert local_sim.submits == 1


def test_reused_key_with_another_body_is_a_422(
    tenant: str, local_sim: LocalSimulator, media_server: tuple[Path, str]
) -> None:
    local_sim.faults.stall = True
    image = f"{media_server[1]}/sample.png"
    api_call("POST", "/v1/videos", {"image_url": image}, headers={"Idempotency-Key": "k"})
    status, problem = api_call(
        "POST", "/v1/videos", {"image_url": image, "seed": 1}, headers={"Idempotency-Key": "k"}
    )
    assert status == 422
    assert problem["title"] == "Idempotency-Key reused with a different request"
    assert local_sim.submits == 1
