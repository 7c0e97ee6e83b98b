"""The table the engine suite runs over: each host's simulator, the adapter that talks to it, and a job id
the host never issued. Everything else a test needs (what to send, which behaviours exist) follows from the
adapter's capabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from i2v.models import VideoRequest
from i2v.providers.aimlapi import AimlapiProvider
from i2v.providers.base import Capabilities, Provider, ProviderStatus
from i2v.providers.client import ProviderClient
from i2v.providers.dashscope import DashscopeProvider
from i2v.providers.evolink import EvolinkProvider
from i2v.providers.local import LocalProvider
from i2v.providers.novita import NovitaProvider, highway
from i2v.providers.oxen import OxenProvider
from i2v_local.sim_aimlapi import AimlapiSimulator
from i2v_local.sim_dashscope import DashscopeSimulator
from i2v_local.sim_evolink import EvolinkSimulator
from i2v_local.sim_local import LocalSimulator
from i2v_local.sim_novita import NovitaSimulator, highway_simulator
from i2v_local.sim_oxen import OxenSimulator
from i2v_local.simulator import Simulator

NEVER_ISSUED_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Host:
    name: str
    simulator: Callable[..., Simulator]  # takes render_scale=; started by `running`
    adapter: Callable[[str, str], Provider]  # (base_url, api_key)
    never_issued: str  # a job id in the host's own format that it never gave out
    # None: the host refuses a query for that id with a 404. Otherwise how it answers instead.
    unknown_job_answer: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self.adapter("https://host.invalid", "key").capabilities

    def request(self, image_url: str) -> VideoRequest:
        """The smallest request the host serves: a first frame, its shortest clip, 720p."""
        return VideoRequest(image_url=image_url, duration=min(self.capabilities.durations), resolution="720p")

    @contextmanager
    def running(self, image_url: str) -> Iterator[Running]:
        """The host's simulator on loopback, rendering small frames, and its adapter pointed at it."""
        with self.simulator(render_scale=0.34) as sim:
            yield Running(sim, self.adapter(sim.base_url, sim.api_key), self.request(image_url))


@dataclass
class Running:
    sim: Simulator
    adapter: Provider
    request: VideoRequest

    def submit(self, client: ProviderClient, deadline: float | None = None) -> str:
        """Submit the request as the gateway does (with the host's own "not created" answers); its job id."""
        built = self.adapter.submit(self.request, self.request.resolved_mode(), None)
        not_created = self.adapter.capabilities.submit_not_created
        return self.adapter.parse_submit(
            client.send(built, is_submit=True, not_created=not_created, deadline=deadline)
        )

    def status(self, client: ProviderClient, job: str) -> ProviderStatus:
        return self.adapter.parse_status(client.send(self.adapter.status(job)))


HOSTS = (
    Host("local", LocalSimulator, lambda url, key: LocalProvider(base_url=url, api_key=key), "no-such-task"),
    Host("oxen", OxenSimulator, lambda url, key: OxenProvider(base_url=url, api_key=key), NEVER_ISSUED_UUID),
    Host(
        "novita",
        NovitaSimulator,
        lambda url, key: NovitaProvider(base_url=url, api_key=key),
        NEVER_ISSUED_UUID,
    ),
    Host("highway", highway_simulator, highway, NEVER_ISSUED_UUID),
    Host(
        "evolink",
        EvolinkSimulator,
        lambda url, key: EvolinkProvider(base_url=url, api_key=key),
        "task-unified-1757169743-zzzzzzzz",
    ),
    Host(
        "aimlapi",
        AimlapiSimulator,
        lambda url, key: AimlapiProvider(base_url=url, api_key=key),
        "AAAAAAAAAAAAAAAAAAAAA",  # 21 characters of nanoid's alphabet, like the ids it issues
    ),
    Host(
        "dashscope",
        DashscopeSimulator,
        lambda url, key: DashscopeProvider(base_url=url, api_key=key),
        NEVER_ISSUED_UUID,
        unknown_job_answer="a 200 whose task_status is UNKNOWN (documented; see test_dashscope.py)",
    ),
)
