"""Every simulator hands the renderer the prompts its own API carried, so each host's video shows them as a
caption (how the caption looks is tested with the renderer, in tests/integration/test_render.py)."""

from __future__ import annotations

import pytest

from i2v.providers.client import ProviderClient
from tests.contract.hosts import HOSTS, Host

PROMPT = "a red fox trots through fresh snow"
NEGATIVE = "blurry, watermark"


@pytest.mark.parametrize("host", HOSTS, ids=lambda host: host.name)
def test_the_simulator_captions_the_prompts_its_api_carried(
    host: Host, client: ProviderClient, sample_url: str
) -> None:
    with host.running(sample_url) as running:
        running.sim.faults.stall = True  # what is handed to the renderer is known at submit
        running.request = running.request.model_copy(update={"prompt": PROMPT, "negative_prompt": NEGATIVE})
        sent = running.adapter.submit(running.request, running.request.resolved_mode(), None).content
        running.submit(client)
        [task] = running.sim.tasks.values()

        # A host whose API has no negative prompt (Oxen) is not sent one, so it has none to show.
        assert running.sim.prompts(task) == (PROMPT, NEGATIVE if NEGATIVE.encode() in sent else "")
