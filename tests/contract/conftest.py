"""What every provider's contract test shares: the real sending engine, without real waits."""

from __future__ import annotations

import pytest

from i2v.providers.client import ProviderClient


@pytest.fixture
def client() -> ProviderClient:
    return ProviderClient(timeout=5, sleep=lambda s: None)
