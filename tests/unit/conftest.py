"""Unit tests touch no socket at all: anything that needs one is an integration or e2e test."""

import pytest
from pytest_socket import disable_socket


@pytest.fixture(autouse=True)
def _no_sockets(_loopback_only: None) -> None:
    disable_socket(allow_unix_socket=True)
