"""Kestrel's own behaviour: the rest is in the shared contract suite (tests/contract/test_engine.py)."""

from __future__ import annotations

import hashlib
import hmac

from i2v.models import Mode, VideoRequest
from i2v.providers.client import ProviderClient
from i2v.providers.kestrel import PROVIDER
from i2v_local.sim_kestrel import KestrelSimulator
from tests.contract.drive import Receiver, wait_until


def test_the_key_goes_in_x_api_key_and_nowhere_else() -> None:
    request = PROVIDER.build("https://api.kestrel.invalid", "k-1").status("clip_1")
    assert request.headers["X-Api-Key"] == "k-1"
    assert "Authorization" not in request.headers


def test_routing_refuses_what_kestrel_cannot_honour_naming_the_option() -> None:
    caps = PROVIDER.capabilities
    image = "https://in.example/a.png"
    last = VideoRequest(image_url=image, last_frame_url=image)
    assert caps.refusal(last, Mode.FIRST_LAST_FRAME) == "does not support mode first_last_frame"
    assert caps.refusal(VideoRequest(image_url=image, duration=12), Mode.FIRST_FRAME) == (
        "supports durations 2-10, not 12"
    )
    unextended = VideoRequest(image_url=image, duration=5, prompt_extend=False)
    assert "prompt_extend" in str(caps.refusal(unextended, Mode.FIRST_FRAME))


def test_a_webhook_is_signed_with_the_account_key_over_its_exact_body(
    receiver: Receiver, sample_url: str, client: ProviderClient
) -> None:
    with KestrelSimulator(render_scale=0.34) as sim:
        sim.faults.stall = True
        adapter = PROVIDER.build(sim.base_url, sim.api_key)
        built = adapter.submit(VideoRequest(image_url=sample_url, duration=2), Mode.FIRST_FRAME, receiver.url)
        job = adapter.parse_submit(client.send(built, is_submit=True))
        sim.cancel_task(sim.tasks[job])  # ends it now: its webhook goes out
        wait_until(lambda: bool(sim.callbacks_settled))
    [hook] = receiver.deliveries
    expected = hmac.new(sim.api_key.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Kestrel-Signature"] == f"sha256={expected}"
    assert adapter.callback_task_id(hook.body) == job
