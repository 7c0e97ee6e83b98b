"""Servers a benchmark runs in processes of their own (moto, simulators, files), so what it measures in its
own process is the gateway's work, not theirs: their CPU and memory are elsewhere, as they are in AWS."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

WAIT_SECONDS = 120.0  # for a child to answer
spawn = multiprocessing.get_context("spawn")  # children start clean: no parent memory, no inherited threads


@contextmanager
def server(target: Callable[..., None], *args: Any) -> Iterator[Any]:
    """`target(*args, conn)` in its own process; yields what it sent once ready, and tells it to stop."""
    ours, theirs = spawn.Pipe()
    process = spawn.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(WAIT_SECONDS):
            raise RuntimeError(f"{target.__name__} did not start")
        yield ours.recv()
    finally:
        with suppress(OSError):  # it may have ended already
            ours.send(None)
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join()


def wait_for_word(conn: Connection) -> None:
    with suppress(EOFError):  # the parent went away
        conn.recv()


def serve_moto(conn: Connection) -> None:
    """moto with the template's resources; sends the functions' environment against it; stops on a word."""
    from i2v_local.aws import moto_server, point_boto3_at, provision

    with moto_server() as endpoint:
        point_boto3_at(endpoint)  # this process's environment: the functions' copies of it follow
        env = provision(endpoint).function_environment("http://127.0.0.1:3000")
        env.update(
            {k: v for k, v in os.environ.items() if k.startswith("AWS_")}, POWERTOOLS_LOG_LEVEL="WARNING"
        )
        conn.send(env)
        wait_for_word(conn)


def serve_moto_and_oxen(poll_seconds: float, conn: Connection) -> None:
    """`serve_moto`, plus the Oxen simulator (poll-only) holding every job it takes and answering each status
    query after `poll_seconds`; the environment names it as the only provider."""
    from i2v_local.aws import moto_server, point_boto3_at, provision
    from i2v_local.sim_oxen import OxenSimulator

    with moto_server() as endpoint, OxenSimulator() as sim:
        sim.faults.stall = True
        sim.faults.delay_polls = poll_seconds
        point_boto3_at(endpoint)
        env = provision(endpoint).function_environment("http://127.0.0.1:3000")
        env.update(
            {k: v for k, v in os.environ.items() if k.startswith("AWS_")},
            POWERTOOLS_LOG_LEVEL="ERROR",
            I2V_OXEN_BASE_URL=sim.base_url,
            I2V_OXEN_API_KEY=sim.api_key,
            I2V_DEFAULT_PROVIDERS="oxen",
        )
        conn.send(env)
        wait_for_word(conn)
