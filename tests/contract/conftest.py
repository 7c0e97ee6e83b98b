"""What every provider's contract test shares: the real sending engine, without real waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from i2v.providers.client import ProviderClient
from tests.contract.drive import Receiver


@pytest.fixture
def client() -> ProviderClient:
    return ProviderClient(timeout=5, sleep=lambda s: None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback endpoint for a simulator's callbacks."""
    running = Receiver()
    yield running
    running.stop()
