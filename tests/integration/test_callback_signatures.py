"""A host that signs its callbacks: on top of the per-task token, a callback whose signature does not hold is
a 401 and changes nothing; one that holds is taken as any other. Public keys are fetched through the URL
guard and kept a while."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from i2v.config import Settings
from i2v.providers import local
from i2v.providers.local import LocalProvider
from i2v.runtime import PUBLIC_JSON_MAX_AGE, PUBLIC_JSON_MAX_BYTES, DocumentUnavailable, Runtime
from i2v.submit import callback_token
from i2v_local.sim_local import LocalSimulator
from tests.integration.test_callback_adoption import job_for, lost_submit
from tests.support import handler, invoke, load_event

SECRET = "whsec-local-test"


@dataclass
class SigningLocal(LocalProvider):
    """The local renderer's API as a host that signs its callbacks: HMAC-SHA256 of the body, hex, in
    X-Signature, keyed with the account's webhook secret."""

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        expected = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        given = headers.get("x-signature", "")
        return None if hmac.compare_digest(expected, given) else "X-Signature does not match the body"


@pytest.fixture
def signing(rt: Runtime, local_sim: LocalSimulator, tenant: str) -> Runtime:
    """The callback function's runtime, with `local` as a host that signs its callbacks."""
    local_sim.faults.stall = True
    function_rt: Runtime = inspect.unwrap(handler("callback")).__globals__["rt"]
    declared = replace(local.PROVIDER, adapter=SigningLocal)
    function_rt.providers["local"] = declared.build(local_sim.base_url, local_sim.api_key, SECRET)
    return function_rt


def callback(rt: Runtime, task_id: str, body: bytes, headers: dict[str, str]) -> int:
    event = load_event("callback.json")
    token = callback_token(rt, task_id)
    event.update(path=f"/v1/callbacks/local/{task_id}", body=body.decode(), isBase64Encoded=False)
    event["headers"] = {**event.get("headers", {}), **headers}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["pathParameters"] = {"provider": "local", "task_id": task_id}
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    status: int = invoke("callback", event)["statusCode"]
    return status


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(
    "sign",
    [
        lambda body: {},
        lambda body: signed(b"another body"),
        lambda body: signed(body, secret="not-the-secret"),
    ],
    ids=["unsigned", "signature-of-another-body", "signed-with-another-secret"],
)
def test_a_callback_whose_signature_does_not_hold_is_a_401_and_changes_nothing(
    signing: Runtime, rt: Runtime, sign: Callable[[bytes], dict[str, str]]
) -> None:
    task = lost_submit(rt)
    body = json.dumps({"id": job_for(rt, task.id), "status": "queued"}).encode()
    assert callback(rt, task.id, body, sign(body)) == 401
    assert rt.tasks.require(task.id) == task


def test_a_callback_whose_signature_holds_is_taken(signing: Runtime, rt: Runtime) -> None:
    task = lost_submit(rt)
    own = job_for(rt, task.id)
    body = json.dumps({"id": own, "status": "queued"}).encode()
    assert callback(rt, task.id, body, signed(body)) == 200
    assert rt.tasks.require(task.id).provider_task_id == own


@pytest.fixture
def documents(media_server: tuple[Path, str]) -> tuple[Path, str]:
    folder, base = media_server
    (folder / "jwks.json").write_text(json.dumps({"keys": [{"kid": "1"}]}))
    (folder / "huge.json").write_text(json.dumps({"pad": "x" * PUBLIC_JSON_MAX_BYTES}))
    return folder, base


def runtime(allow_private: bool, clock: list[float]) -> Runtime:
    settings = Settings(table_name="t", bucket_name="b", allow_private_urls=allow_private)
    return Runtime(settings=settings, clock=lambda: clock[0])


def test_a_public_document_is_fetched_once_while_it_is_fresh_then_again(documents: tuple[Path, str]) -> None:
    folder, base = documents
    clock = [1000.0]
    rt = runtime(True, clock)
    assert rt.public_json(f"{base}/jwks.json") == {"keys": [{"kid": "1"}]}
    (folder / "jwks.json").write_text(json.dumps({"keys": [{"kid": "2"}]}))  # the host rotates its key
    clock[0] += PUBLIC_JSON_MAX_AGE - 1
    assert rt.public_json(f"{base}/jwks.json") == {"keys": [{"kid": "1"}]}
    clock[0] += 1
    assert rt.public_json(f"{base}/jwks.json") == {"keys": [{"kid": "2"}]}


def test_a_public_document_goes_through_the_url_guard_and_is_bounded(documents: tuple[Path, str]) -> None:
    _, base = documents
    with pytest.raises(DocumentUnavailable, match="port"):  # a loopback port when deployed
        runtime(False, [0.0]).public_json(f"{base}/jwks.json")
    with pytest.raises(DocumentUnavailable, match="longer than"):
        runtime(True, [0.0]).public_json(f"{base}/huge.json")
