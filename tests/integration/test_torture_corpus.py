"""The torture corpus (tests/corpus.py) as users send it: each file from an HTTP server that honours Range,
each through `POST /v1/uploads` (S3's presigned PUT, then its s3:// URL), and each image through the drop
folder. A file outside a limit is a 422 naming its field (a failed upload, saying why); a valid one is
accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest

from i2v.models import Status
from i2v.runtime import Runtime
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.corpus import CORPUS, Case
from tests.support import api_call, drive_until_ended, invoke, s3_event

FIELD = {"image": "image_url", "video": "video_url", "audio": "audio_url"}
EXTENSION = {"image": "", "video": ".mp4", "audio": ""}
CONTENT_TYPE = {"image": "image/png", "video": "video/mp4", "audio": "audio/mpeg"}  # what a browser says


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True  # accepted jobs stay queued: this is about what the gateway lets through


def request_for(case: Case, url: str) -> dict[str, Any]:
    """The smallest request that sends the file as its kind of input (a clip's task covers 10 s)."""
    if case.kind == "video":
        return {"video_url": url, "duration": 10}
    if case.kind == "audio":
        return {"image_url": "s3://i2v-local-media-123456789012/inputs/demo/sample.png", "audio_url": url}
    return {"image_url": url}


def assert_verdict(case: Case, status: int, answer: dict[str, Any]) -> None:
    if case.refused is None:
        assert status == 202, answer
        return
    assert status == 422, answer
    messages = [e["message"] for e in answer["errors"] if e["field"] == FIELD[case.kind]]
    assert any(case.refused in message for message in messages), answer


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_each_file_over_http_is_accepted_or_refused_naming_its_field(
    case: Case, media_server: tuple[Path, str]
) -> None:
    folder, base = media_server
    name = f"Été n° {CORPUS.index(case)} {case.name}"  # as people name files
    (folder / name).write_bytes(case.data)
    status, answer = api_call("POST", "/v1/videos", request_for(case, f"{base}/{quote(name)}"))
    assert_verdict(case, status, answer)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_each_file_through_uploads_is_accepted_or_refused_naming_its_field(case: Case) -> None:
    ticket = {"filename": f"Été {case.name}{EXTENSION[case.kind]}", "content_type": CONTENT_TYPE[case.kind]}
    status, upload = api_call("POST", "/v1/uploads", ticket)
    assert status == 201, upload
    headers = {"Content-Type": ticket["content_type"]}  # as signed
    put = httpx.put(upload["put_url"], content=case.data, headers=headers, timeout=60)
    assert put.status_code == 200, put.text
    status, answer = api_call("POST", "/v1/videos", request_for(case, upload["url"]))
    assert_verdict(case, status, answer)


IMAGES = [case for case in CORPUS if case.kind == "image"]


@pytest.mark.parametrize("case", IMAGES, ids=lambda case: case.name)
def test_each_image_through_the_drop_folder_is_a_task_or_a_failed_task_saying_why(
    case: Case, rt: Runtime, aws: LocalResources
) -> None:
    key = f"uploads/demo/Été/n° {IMAGES.index(case)}.png"
    boto3.client("s3").put_object(Bucket=aws.refs["Bucket"], Key=key, Body=case.data)
    invoke("s3_trigger", s3_event(aws.refs["Bucket"], key))
    [task] = rt.tasks.list_for_tenant("demo", 10, None)[0]
    if case.refused is None:
        assert task.status is Status.SUBMITTED, task.error
    else:
        assert task.status is Status.FAILED
        assert task.error is not None
        assert case.refused in task.error.message, task.error


def test_every_accepted_file_is_rendered_by_the_provider(
    rt: Runtime, aws: LocalResources, local_sim: LocalSimulator
) -> None:
    """None is accepted and then fails at the provider: the local host decodes each input to render."""
    local_sim.faults.stall = False
    local_sim.faults.render_seconds = 1  # the inputs are decoded all the same; a shorter video is drawn
    accepted = [case for case in CORPUS if case.refused is None]
    ids = {}
    for case in accepted:
        ticket = {"filename": f"{case.name}{EXTENSION[case.kind]}", "content_type": CONTENT_TYPE[case.kind]}
        _, upload = api_call("POST", "/v1/uploads", ticket)
        httpx.put(upload["put_url"], content=case.data, headers={"Content-Type": ticket["content_type"]})
        status, task = api_call("POST", "/v1/videos", request_for(case, upload["url"]))
        assert status == 202, task
        ids[case.name] = task["id"]
    ended = drive_until_ended(rt, aws, list(ids.values()), seconds=300)
    outcomes = {name: (t.status, t.error and t.error.message) for name, t in zip(ids, ended, strict=True)}
    assert outcomes == {name: (Status.SUCCEEDED, None) for name in ids}
