"""What the API says reads as words: a 401 that says how to get a key, a 409 that says how and when the task
ended, URL errors without regexes, ISO 8601 times everywhere, and no stale queue state or cancel link on a
task that has ended."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from i2v.models import Status
from i2v.runtime import Runtime
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.support import api_call, containers

ISO_8601 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True  # jobs stay queued at the provider: the tasks stay in flight


@pytest.fixture
def image(aws: LocalResources) -> str:
    return f"s3://{aws.refs['Bucket']}/inputs/demo/sample.png"


def created(body: dict[str, Any]) -> dict[str, Any]:
    status, task = api_call("POST", "/v1/videos", body)
    assert status == 202, task
    return task  # type: ignore[no-any-return]


def test_an_unknown_key_is_a_401_saying_where_a_key_comes_from() -> None:
    status, problem = api_call("GET", "/v1/videos", key="i2v_no_such_key")
    assert status == 401
    assert problem["title"] == "Invalid API key"
    assert problem["detail"] != problem["title"]  # not "Invalid API key: Invalid API key"
    assert "i2v keys create" in problem["detail"]
    assert "make local" in problem["detail"]


def test_cancelling_a_finished_task_says_how_and_when_it_ended(image: str) -> None:
    task = created({"image_url": image})
    assert api_call("POST", f"/v1/videos/{task['id']}/cancel")[0] == 200
    status, problem = api_call("POST", f"/v1/videos/{task['id']}/cancel")
    assert status == 409
    assert problem["title"] == "Task already finished"
    assert re.fullmatch(
        r"it was cancelled at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00; nothing to cancel", problem["detail"]
    ), problem["detail"]


@pytest.mark.parametrize(
    ("field", "url", "message"),
    [
        ("webhook_url", "ftp://hooks.example/x", "must be an https URL"),
        ("webhook_url", "hooks.example/x", "must be an https URL"),
        (
            "image_url",
            "ftp://media.example/a.png",
            "must be an http(s) URL, or an s3:// URL from POST /v1/uploads",
        ),
    ],
)
def test_a_url_of_the_wrong_kind_is_refused_in_words_not_with_the_regex(
    image: str, field: str, url: str, message: str
) -> None:
    status, problem = api_call("POST", "/v1/videos", {"image_url": image, field: url})
    assert status == 422
    assert {"field": field, "message": message} in problem["errors"]
    assert "\\S" not in problem["detail"]
    assert "pattern" not in problem["detail"]


def test_a_task_in_flight_shows_its_queue_state_and_a_cancel_link(rt: Runtime, image: str) -> None:
    task = created({"image_url": image})
    rt.tasks.update(task["id"], queue_state="rendering")  # the provider's word, as a status answer leaves it
    _, shown = api_call("GET", f"/v1/videos/{task['id']}")
    assert shown["queue_state"] == "rendering"
    assert shown["links"] == {"self": f"/v1/videos/{task['id']}", "cancel": f"/v1/videos/{task['id']}/cancel"}


def test_a_finished_task_shows_no_queue_state_and_no_cancel_link(rt: Runtime, image: str) -> None:
    task = created({"image_url": image})
    rt.tasks.update(task["id"], queue_state="rendering")
    _, cancelled = api_call("POST", f"/v1/videos/{task['id']}/cancel")
    assert cancelled["status"] == Status.CANCELLED
    _, shown = api_call("GET", f"/v1/videos/{task['id']}")
    _, page = api_call("GET", "/v1/videos")
    for view in (cancelled, shown, page["items"][0]):
        assert view["queue_state"] is None
        assert view["links"] == {"self": f"/v1/videos/{task['id']}"}  # absent, not null


def test_webhook_attempt_times_are_iso_8601_like_every_other_time(rt: Runtime, image: str) -> None:
    task = created({"image_url": image, "webhook_url": "http://127.0.0.1:9/hook"})
    owner = rt.records.claim_delivery(task["id"], 60)
    assert owner is not None
    rt.records.record_delivery(task["id"], owner, "HTTP 503", delivered=False)
    _, shown = api_call("GET", f"/v1/videos/{task['id']}")
    [attempt] = shown["webhook"]["attempts"]
    assert attempt["result"] == "HTTP 503"
    for when in (attempt["at"], shown["created_at"], shown["updated_at"]):
        assert ISO_8601.match(when), when
    assert abs(datetime.fromisoformat(attempt["at"]).timestamp() - rt.now()) < 60


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "https://10.1.2.3/hook",
        "http://192.168.1.20:8080/hook",
        "http://172.16.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
    ],
)
def test_the_local_stack_refuses_private_webhook_addresses_other_than_loopback(image: str, url: str) -> None:
    status, problem = api_call("POST", "/v1/videos", {"image_url": image, "webhook_url": url})
    assert status == 422, problem
    [error] = problem["errors"]
    assert error["field"] == "webhook_url"
    assert error["message"].endswith("is a private or reserved address"), error


def test_the_local_stack_takes_http_webhooks_to_this_machine_only(image: str) -> None:
    for url in ("http://127.0.0.1:8765/hook", "http://localhost:8765/hook", "https://127.0.0.1:8765/hook"):
        assert api_call("POST", "/v1/videos", {"image_url": image, "webhook_url": url})[0] == 202, url
    status, problem = api_call(
        "POST", "/v1/videos", {"image_url": image, "webhook_url": "http://93.184.216.34/h"}
    )
    assert status == 422
    assert problem["errors"] == [
        {
            "field": "webhook_url",
            "message": "must be an https URL, or on the local stack http to 127.0.0.1 or localhost",
        }
    ]


def test_deployed_a_plain_http_webhook_is_refused_in_words(
    image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_ALLOW_PRIVATE_URLS", "false")
    containers.clear()  # new containers read the new environment
    status, problem = api_call(
        "POST", "/v1/videos", {"image_url": image, "webhook_url": "http://127.0.0.1:1/h"}
    )
    assert status == 422
    assert {"field": "webhook_url", "message": "must be an https URL"} in problem["errors"]
