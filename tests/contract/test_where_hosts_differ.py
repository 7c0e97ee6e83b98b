"""The hooks where hosts differ, without a host of their own: how a key is sent and checked, callbacks that
carry signature headers, and every option of the model that a host may lack, refused by name."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest

from i2v.models import Mode, VideoRequest
from i2v.providers import local
from i2v.providers.base import Auth, Capabilities, ProviderRejected
from i2v.providers.client import ProviderClient
from i2v_local.sim_local import LocalSimulator
from i2v_local.simulator import SimTask
from tests.contract.drive import Receiver, wait_until

API_KEY = Auth(header="X-Api-Key", value="{key}")
IMAGE = "https://in.example/a.png"


class KeyedSimulator(LocalSimulator):
    """The local renderer's API behind an `X-Api-Key` header, signing its callbacks with the account key."""

    auth_header, auth_value = API_KEY.header, API_KEY.value

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        return {"X-Signature": hmac.new(self.api_key.encode(), body, hashlib.sha256).hexdigest()}


def test_a_declared_auth_header_carries_the_key_and_no_bearer_goes_out() -> None:
    request = replace(local.PROVIDER, auth=API_KEY).build("https://host.example", "k-1").status("job")
    assert request.headers["X-Api-Key"] == "k-1"
    assert "Authorization" not in request.headers


def test_a_simulator_takes_the_key_only_in_the_header_its_host_documents(client: ProviderClient) -> None:
    with KeyedSimulator(render_scale=0.34) as sim:
        sim.faults.stall = True
        keyed = replace(local.PROVIDER, auth=API_KEY).build(sim.base_url, sim.api_key)
        bearer = local.PROVIDER.build(sim.base_url, sim.api_key)
        req = VideoRequest(image_url=IMAGE, duration=2)
        job = keyed.parse_submit(client.send(keyed.submit(req, Mode.FIRST_FRAME, None), is_submit=True))
        assert job in sim.tasks
        with pytest.raises(ProviderRejected) as refused:
            bearer.parse_status(client.send(bearer.status(job)))
    assert refused.value.status_code == 401


def test_a_signed_callback_carries_its_signature_over_the_exact_body_it_sends(
    client: ProviderClient, receiver: Receiver
) -> None:
    with KeyedSimulator(render_scale=0.34) as sim:
        sim.faults.stall = True
        adapter = replace(local.PROVIDER, auth=API_KEY).build(sim.base_url, sim.api_key)
        built = adapter.submit(VideoRequest(image_url=IMAGE, duration=2), Mode.FIRST_FRAME, receiver.url)
        job = adapter.parse_submit(client.send(built, is_submit=True))
        sim.cancel_task(sim.tasks[job])  # ends the job: its callback goes out
        wait_until(lambda: bool(sim.callbacks_settled))
    [delivery] = receiver.deliveries
    assert delivery.headers["X-Signature"] == hmac.new(b"sim-key", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["Content-Type"] == "application/json"
    assert adapter.callback_task_id(delivery.body) == job


EVERYTHING = Capabilities(modes=frozenset(Mode), durations=frozenset(range(2, 16)))


@pytest.mark.parametrize(
    ("lacking", "request_fields", "message"),
    [
        (
            {"audio": False},
            {"audio_url": "https://in.example/a.mp3"},
            "does not accept driving audio (audio_url)",
        ),
        ({"seed": False}, {"seed": 7}, "takes no seed"),
        ({"min_seed": 1}, {"seed": 0}, "accepts seeds from 1, not 0"),
        ({"negative_prompt": False}, {"negative_prompt": "blur"}, "takes no negative_prompt"),
        (
            {"prompt_extend": False},
            {"prompt_extend": False},
            "has no prompt_extend option (it cannot be turned off)",
        ),
        ({"watermark": False}, {"watermark": True}, "has no watermark option"),
        (
            {"resolutions": frozenset({"720p"})},
            {"resolution": "1080p"},
            "supports resolutions ['720p'], not 1080p",
        ),
        ({"durations": frozenset({5, 10})}, {"duration": 7}, "supports durations 5, 10, not 7"),
        (
            {"modes": frozenset({Mode.FIRST_FRAME})},
            {"last_frame_url": IMAGE},
            "does not support mode first_last_frame",
        ),
        (
            {"last_frame_with_clip": False},
            {"image_url": None, "video_url": "https://in.example/c.mp4", "last_frame_url": IMAGE},
            "takes no last_frame_url with a video_url to continue",
        ),
    ],
)
def test_routing_refuses_an_option_a_host_lacks_naming_it(
    lacking: dict[str, object], request_fields: dict[str, object], message: str
) -> None:
    req = VideoRequest.model_validate({"image_url": IMAGE, **request_fields})
    assert EVERYTHING.refusal(req, req.resolved_mode()) is None
    assert replace(EVERYTHING, **lacking).refusal(req, req.resolved_mode()) == message  # type: ignore[arg-type]


def test_a_host_without_the_prompt_extend_switch_still_serves_the_models_default() -> None:
    req = VideoRequest(image_url=IMAGE)
    assert replace(EVERYTHING, prompt_extend=False).refusal(req, Mode.FIRST_FRAME) is None


def test_a_keyed_result_link_gets_the_key_only_on_the_hosts_own_origin() -> None:
    keyed = replace(local.PROVIDER, keyed_results=True).build("https://host.example/api", "k-1")
    assert keyed.result_headers("https://host.example/v/1/content") == {"Authorization": "Bearer k-1"}
    for elsewhere in ("https://cdn.example/v/1", "http://host.example/v/1", "https://host.example:8443/v/1"):
        assert keyed.result_headers(elsewhere) == {}
    plain = local.PROVIDER.build("https://host.example/api", "k-1")
    assert plain.result_headers("https://host.example/v/1/content") == {}
