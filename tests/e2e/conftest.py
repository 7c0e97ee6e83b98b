"""The local stack for end-to-end tests: one per module, on the session's moto server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from i2v.runtime import Runtime
from i2v_local.simulator import Capacity, Faults, Simulator
from i2v_local.stack import LocalStack
from tests.support import copy_bus_to_queue


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> Iterator[LocalStack]:
    # A short provider timeout so "the submit's answer never came" tests take seconds, not ten.
    with LocalStack(aws_endpoint=moto_endpoint, sweep_every=0.5, poll_interval=1, http_timeout=2) as running:
        yield running


@pytest.fixture(scope="module")
def events_queue(stack: LocalStack) -> str:
    """Every event the gateway puts on its bus, copied to a queue the tests can read."""
    assert stack.resources is not None
    return copy_bus_to_queue(stack.resources.refs["EventBus"], "test-bus-copy")


@pytest.fixture
def rt(stack: LocalStack) -> Runtime:
    """A runtime like a function's, on the stack's resources (for what a test sets up or inspects)."""
    return stack.runtime()


@pytest.fixture
def sims(stack: LocalStack) -> Iterator[dict[str, Simulator]]:
    """Every provider simulator, with its faults and caps cleared before and after the test; and the
    gateway's view of each host fresh too (no backoff, circuit or lowered cap left by an earlier test's
    faults; the jobs in flight stay counted)."""
    table = stack.runtime().tasks.table.resource
    for name, simulator in stack.simulators.items():
        simulator.faults, simulator.capacity = Faults(), Capacity()
        table.update_item(
            Key={"pk": f"HEALTH#{name}"},
            UpdateExpression="SET consecutive_faults = :zero, consecutive_failures = :zero"
            " REMOVE blocked_until, eff_cap",
            ExpressionAttributeValues={":zero": 0},
        )
    yield stack.simulators
    for simulator in stack.simulators.values():
        simulator.faults = Faults()
    stack.resume()


@pytest.fixture
def sim(sims: dict[str, Simulator]) -> Simulator:
    return sims["local"]


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def image_url(stack: LocalStack, api: httpx.Client) -> str:
    ticket = api.post("/v1/uploads", json={"filename": "sample.png", "content_type": "image/png"}).json()
    with open("assets/sample.png", "rb") as fh:
        httpx.put(
            ticket["put_url"], content=fh.read(), headers={"Content-Type": "image/png"}
        ).raise_for_status()
    return str(ticket["url"])


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # Without these, chromium calls Google's hosts at start, and this machine's closed network refuses them.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed from Debian's archive once per session when missing (as root; the
    package lists are refreshed only if the first try does not find it). A root Debian machine that cannot
    install it fails the tests that need it; elsewhere they are skipped with the command to run."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("no chromium, and this is not a root Debian machine: apt-get install chromium")
    installed = _apt_get("install", "-y", "-q", "chromium")
    if installed.returncode != 0:
        _apt_get("update", "-q")
        installed = _apt_get("install", "-y", "-q", "chromium")
    if installed.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"apt-get install chromium failed: {installed.stderr.strip()[-500:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """Debian's chromium driven by playwright (never `playwright install`: it downloads from a CDN)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
