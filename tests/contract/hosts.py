"""The table the engine suite runs over: each host's simulator, the adapter that talks to it, and a job id
the host never issued. Everything else a test needs (what to send, which behaviours exist) follows from the
adapter's capabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from i2v.models import VideoRequest
from i2v.providers.base import Capabilities, Declaration, Provider, ProviderStatus
from i2v.providers.client import ProviderClient
from i2v.providers.registry import PROVIDERS
from i2v_local.simulator import Simulator, simulator_for


@dataclass(frozen=True)
class Host:
    declared: Declaration
    simulator: type[Simulator]  # started by `running`

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def capabilities(self) -> Capabilities:
        return self.declared.capabilities

    @property
    def never_issued(self) -> str:
        """A job id in the host's own format that it never gave out (its simulator knows the format)."""
        return self.simulator.never_issued

    @property
    def unknown_job_answer(self) -> str | None:
        """None: the host refuses a query for a job it never issued with a 404. Otherwise how it answers."""
        return self.simulator.unknown_job_answer

    def request(self, image_url: str) -> VideoRequest:
        """The smallest request the host serves: a first frame, its shortest clip, 720p."""
        return VideoRequest(image_url=image_url, duration=min(self.capabilities.durations), resolution="720p")

    @contextmanager
    def running(self, image_url: str) -> Iterator[Running]:
        """The host's simulator on loopback, rendering small frames, and its adapter pointed at it."""
        with self.simulator(render_scale=0.34) as sim:
            yield Running(sim, self.declared.build(sim.base_url, sim.api_key), self.request(image_url))


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


# Every provider the registry declares, with its simulator: a new host is in every test of the suite.
HOSTS = tuple(Host(declared, simulator_for(name)) for name, declared in PROVIDERS.items())
