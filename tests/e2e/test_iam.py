"""IAM proven on the local stack: every AWS call each function makes is one its role (as SAM translates
template.yaml) allows, and every grant a role has is one its function uses.

moto allows everything, so this is what proves the template. The flows below are a representative set:
upload, create (with and without an Idempotency-Key), get, list, cancel, provider callbacks (success and
failure), the sweeper polling, timing out and ending tasks, ingest, webhook delivery with a retry, the S3 drop
folder (metadata, sidecar, refused options) and the small routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from i2v.runtime import Runtime
from i2v_local import iam
from i2v_local.stack import LocalStack
from tests.e2e.flows import create, finished, stored_item, tasks_for_key, wait_for
from tests.tool_venv import tool_python

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = (
    "ApiFunction",
    "CallbackFunction",
    "SweeperFunction",
    "PollFunction",
    "IngestFunction",
    "DeliverFunction",
    "S3TriggerFunction",
)

# Grants for paths these flows do not reach: (function, action, a fragment of the resource) -> why needed.
RARELY_USED = {
    # After-end step "discard a stray output" (an ingest died after storing the MP4 and its lease lapsed):
    # whichever function ends such a task reads the object's task-id metadata, then deletes it.
    ("ApiFunction", "s3:DeleteObject", "/outputs/"): "discards a stray output when a cancel ends its task",
    ("CallbackFunction", "s3:GetObject", "/outputs/"): "reads a stray output's task-id before discarding it",
    (
        "CallbackFunction",
        "s3:DeleteObject",
        "/outputs/",
    ): "discards a stray output when a callback ends its task",
    ("SweeperFunction", "s3:GetObject", "/outputs/"): "reads a stray output's task-id before discarding it",
    ("SweeperFunction", "s3:DeleteObject", "/outputs/"): "discards a stray output when a sweep ends its task",
    ("IngestFunction", "s3:GetObject", "/outputs/"): "reads a stray output's task-id before discarding it",
    (
        "IngestFunction",
        "s3:DeleteObject",
        "/outputs/",
    ): "discards the video it stored when the task ended meanwhile",
    (
        "IngestFunction",
        "s3:AbortMultipartUpload",
        "/outputs/",
    ): "aborts its multipart upload when a download fails",
    ("IngestFunction", "dynamodb:GetItem", ":table/"): "reads the task when its lease or move was lost",
    # The sweeper submits a task whose create call died before submitting (it holds an expired submit lease):
    # it routes by provider health, signs a callback URL and presigns the inputs, as the create call would.
    ("SweeperFunction", "dynamodb:BatchGetItem", ":table/"): "reads provider health to route a resubmit",
    ("SweeperFunction", "secretsmanager:GetSecretValue", "CallbackSecret"): "signs a resubmit's callback URL",
    ("SweeperFunction", "ssm:GetParameter", "public-base-url"): "builds a resubmit's callback URL",
    ("SweeperFunction", "s3:GetObject", "/inputs/"): "presigns a resubmit's inputs",
    ("SweeperFunction", "s3:GetObject", "/uploads/"): "presigns a resubmitted drop-folder image",
    # The poll worker takes the same turns as the sweep: its rarer paths are the sweep's (above), and ending a
    # task itself (a time-out found by a timed turn) and what that end owes.
    ("SweeperFunction", "sqs:SendMessage*", "IngestQueue"): "a sweep's own turn finds a job done",
    # A turn reads its task only when the claim fails (an ended task owing steps, or one another turn has).
    ("SweeperFunction", "dynamodb:GetItem", ":table/"): "reads a task whose turn it could not claim",
    ("PollFunction", "dynamodb:GetItem", ":table/"): "reads a task whose turn it could not claim",
    # Locally a timed turn usually reaches a running task before the 2 s sweep: the sweep then queues none.
    ("SweeperFunction", "sqs:SendMessage*", "PollQueue"): "queues the next turn of a task it polled itself",
    ("PollFunction", "dynamodb:BatchGetItem", ":table/"): "reads provider health to route a resubmit",
    ("PollFunction", "secretsmanager:GetSecretValue", "CallbackSecret"): "signs a resubmit's callback URL",
    ("PollFunction", "secretsmanager:GetSecretValue", "ProviderKeysSecret"): "reads the hosts' keys deployed",
    ("PollFunction", "ssm:GetParameter", "public-base-url"): "builds a resubmit's callback URL",
    ("PollFunction", "s3:GetObject", "/inputs/"): "presigns a resubmit's inputs",
    ("PollFunction", "s3:GetObject", "/uploads/"): "presigns a resubmitted drop-folder image",
    ("PollFunction", "s3:GetObject", "/outputs/"): "reads a stray output's task-id before discarding it",
    ("PollFunction", "s3:DeleteObject", "/outputs/"): "discards a stray output when a turn ends its task",
    ("PollFunction", "events:PutEvents", "event-bus/"): "announces a task its turn ended (timed out, failed)",
    ("PollFunction", "sqs:SendMessage*", "DeliveryQueue"): "queues the webhook of a task its turn ended",
    # A host whose result links take the account's key (Declaration.keyed_results): the ingest reads the keys.
    ("IngestFunction", "secretsmanager:GetSecretValue", "ProviderKeysSecret"): "downloads a keyed result",
    # A released slot dispatches the next waiting task (i2v.capacity): its turn goes to the poll queue. No
    # task waits in these flows; the ingest releases a slot only when a callback's release was lost.
    ("CallbackFunction", "sqs:SendMessage*", "PollQueue"): "dispatches a waiting task to the slot it frees",
    ("IngestFunction", "sqs:SendMessage*", "PollQueue"): "dispatches a waiting task to the slot it frees",
    ("IngestFunction", "dynamodb:Query", "by_queue"): "finds the next waiting task for the slot it frees",
    # A drop-folder task whose metadata names a webhook and that no provider takes ends in the trigger.
    ("S3TriggerFunction", "sqs:SendMessage*", "DeliveryQueue"): "queues the webhook of a task it ended",
}


def rarely_used(logical: str, grant: iam.Grant) -> bool:
    return any(
        (logical, grant.action) == (function, action) and fragment in grant.resource
        for function, action, fragment in RARELY_USED
    )


@pytest.fixture(scope="module")
def module_monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def recorder(stack: LocalStack) -> Iterator[iam.Recorder]:
    recorder = iam.Recorder().install()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[int]]]:
    """A webhook receiver on loopback that answers 500 to the first request of each task, then 204."""
    seen: list[int] = []
    tasks: set[str] = set()

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        task_id = request.get_json()["data"]["id"]
        first = task_id not in tasks
        tasks.add(task_id)
        seen.append(500 if first else 204)
        return Response(status=500 if first else 204)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", seen
    server.shutdown()


def delivered(api: httpx.Client, task_id: str) -> None:
    wait_for(lambda: (api.get(f"/v1/videos/{task_id}").json().get("webhook") or {}).get("delivered"), 30)


@pytest.fixture(scope="module")
def flows(
    stack: LocalStack,
    recorder: iam.Recorder,
    receiver: tuple[str, list[int]],
    module_monkeypatch: pytest.MonkeyPatch,
) -> dict[str, list[iam.Call]]:
    """Runs the flows once for the module; the calls each function made, by function."""
    hook, _ = receiver
    sims = stack.simulators
    rt = Runtime.from_environment()
    s3 = boto3.client("s3")
    # Deployed, the functions read the API's URL from SSM (the local stack hands it over directly): read it
    # as deployed. New containers (all but the sweeper's, already ticking) see this environment.
    module_monkeypatch.delenv("I2V_PUBLIC_BASE_URL")
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
    ) as api:
        # Upload a local file, then animate it: callback provider, ingest, a webhook retried once.
        ticket = api.post("/v1/uploads", json={"filename": "s.png", "content_type": "image/png"}).json()
        image = (ROOT / "assets/sample.png").read_bytes()
        httpx.put(ticket["put_url"], content=image, headers={"Content-Type": "image/png"}).raise_for_status()
        body = {"image_url": ticket["url"], "duration": 2, "resolution": "720p", "webhook_url": hook}
        done = create(api, body, **{"Idempotency-Key": "iam-1"})
        assert finished(api, done["id"])["status"] == "succeeded"
        delivered(api, done["id"])
        assert api.get("/v1/videos", params={"limit": 5}).status_code == 200
        assert api.get("/v1/providers").status_code == 200
        assert api.get("/v1/webhooks/secret").status_code == 200
        assert api.get("/v1/usage", params={"group_by": "day"}).status_code == 200

        # A polled provider: the poll worker's timed turns poll it (the sweep is paused, so it cannot take
        # a turn first) and queue the ingest, each turn queuing the next.
        stack.pause("SweeperFunction")
        polled = create(api, {**body, "provider": "oxen"})
        assert finished(api, polled["id"])["status"] == "succeeded"
        stack.resume("SweeperFunction")

        # A provider's callback reporting a failure: the callback function ends the task (no turn may find
        # the failure first: the poll workers' turns run side by side and are quick to).
        sims["local"].faults.fail_render = "content refused"
        stack.pause("PollFunction")
        stack.pause("SweeperFunction")
        failed = create(api, body)
        assert finished(api, failed["id"])["status"] == "failed"
        stack.resume("PollFunction")
        stack.resume("SweeperFunction")
        sims["local"].faults.fail_render = None

        # Cancel at the provider; and a task past its deadline, timed out by the sweeper.
        sims["local"].faults.stall = True
        cancelled = create(api, body)
        assert api.post(f"/v1/videos/{cancelled['id']}/cancel").status_code == 200
        stack.pause("PollFunction")  # the sweep, not a timed turn, finds it overdue
        overdue = create(api, body)
        rt.tasks.update(overdue["id"], deadline_at=int(time.time()) - 1)
        assert finished(api, overdue["id"])["status"] == "timed_out"
        stack.resume("PollFunction")

        # The drop folder: options from metadata, from a sidecar, and refused ones.
        folder = f"uploads/{stack.tenant}/iam"
        s3.put_object(Bucket=stack.bucket, Key=f"{folder}/meta.png", Body=image, Metadata={"duration": "2"})
        s3.put_object(Bucket=stack.bucket, Key=f"{folder}/side.json", Body=b'{"duration": 2}')
        s3.put_object(Bucket=stack.bucket, Key=f"{folder}/side.png", Body=image)
        s3.put_object(Bucket=stack.bucket, Key=f"{folder}/bad.png", Body=image, Metadata={"duration": "99"})
        for name in ("meta", "side", "bad"):
            wait_for(lambda name=name: tasks_for_key(api, f"{folder}/{name}.png"))
        sims["local"].faults.stall = False
        for task in (cancelled, overdue, failed):
            delivered(api, task["id"])
        wait_for(lambda: all(not stored_item(rt, t["id"]).get("outbox") for t in (cancelled, overdue)))
    return recorder.by_function()


@pytest.fixture(scope="module")
def policies(stack: LocalStack) -> dict[str, iam.Policy]:
    assert stack.resources is not None
    roles = iam.translated_roles(ROOT / "template.yaml", tool_python())
    return {logical: iam.Policy.from_role(role, stack.resources) for logical, role in roles.items()}


def test_every_function_made_aws_calls_in_the_flows(flows: dict[str, list[iam.Call]]) -> None:
    assert set(flows) == set(FUNCTIONS)


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_call_a_function_makes_is_allowed_by_its_role(
    logical: str, flows: dict[str, list[iam.Call]], policies: dict[str, iam.Policy]
) -> None:
    assert policies[logical].refused(flows[logical]) == []


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_grant_in_a_functions_role_is_used(
    logical: str, flows: dict[str, list[iam.Call]], policies: dict[str, iam.Policy]
) -> None:
    unused = [str(g) for g in policies[logical].unused(flows[logical]) if not rarely_used(logical, g)]
    assert unused == []


@pytest.mark.parametrize("entry", sorted(RARELY_USED), ids=" ".join)
def test_each_rarely_used_grant_is_one_the_role_still_has(
    entry: tuple[str, str, str], policies: dict[str, iam.Policy]
) -> None:
    logical = entry[0]
    _, action, fragment = entry
    assert [g for g in policies[logical].own if g.action == action and fragment in g.resource]
