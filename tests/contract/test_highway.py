"""HighwayAPI: Novita's adapter and simulator at its own host, without webhooks. What it shares with Novita
is tested in test_novita.py (parametrised over both) and in the shared suite (test_engine.py)."""

from __future__ import annotations

import json

from i2v.models import VideoRequest
from i2v.providers.base import ProviderState
from i2v.providers.client import ProviderClient
from i2v.providers.highway import DEFAULT_BASE_URL as HIGHWAY_BASE_URL
from i2v.providers.highway import PROVIDER as HIGHWAY
from i2v.providers.novita import DEFAULT_BASE_URL, NovitaProvider
from i2v.providers.novita import PROVIDER as NOVITA
from i2v_local.sim_highway import HighwaySimulator
from tests.contract.drive import Receiver, poll, wait_until

IMAGE, AUDIO = "https://in.example/first.png", "https://in.example/voice.mp3"


def test_highway_is_the_same_adapter_at_its_own_host_without_webhooks() -> None:
    novita, hw = NOVITA.build(DEFAULT_BASE_URL, "k"), HIGHWAY.build(HIGHWAY_BASE_URL, "k")
    assert isinstance(hw, NovitaProvider)
    assert (hw.name, novita.name) == ("highway", "novita")
    assert (hw.capabilities.callback, novita.capabilities.callback) == (False, True)
    assert hw.capabilities.modes == novita.capabilities.modes
    assert hw.capabilities.durations == novita.capabilities.durations == frozenset(range(2, 16))
    req = VideoRequest(image_url=IMAGE, audio_url=AUDIO, seed=7)
    built = hw.submit(req, req.resolved_mode(), "https://gw.example/cb")
    assert str(built.url) == "https://api.highwayapi.ai/v3/async/wan2.7-i2v"
    assert json.loads(built.content) == json.loads(
        novita.submit(req, req.resolved_mode(), None).content
    )  # and no `extra`
    assert str(hw.status("t-1").url) == "https://api.highwayapi.ai/v3/async/task-result?task_id=t-1"


def test_there_is_no_cancel_endpoint() -> None:
    assert HIGHWAY.build(HIGHWAY_BASE_URL, "k").cancel("t-1") is None


def test_highway_sends_no_webhook_even_when_asked(
    client: ProviderClient, receiver: Receiver, sample_url: str
) -> None:
    with HighwaySimulator(render_scale=0.34) as sim:
        adapter = HIGHWAY.build(sim.base_url, sim.api_key)
        sim.faults.fail_render = "refused"
        body = {"image_url": sample_url, "extra": {"webhook": {"url": receiver.url}}}
        raw = adapter.request("POST", "/v3/async/wan2.7-i2v", body)
        task_id = adapter.parse_submit(client.send(raw))
        assert poll(adapter, client, task_id)[-1].state is ProviderState.FAILED
        wait_until(lambda: bool(sim.callbacks_settled))
    assert sim.callbacks_settled == [(task_id, "no callback URL")]
    assert receiver.deliveries == []
    assert sim.callbacks_sent == []
