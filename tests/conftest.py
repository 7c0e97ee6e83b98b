"""Shared fixtures: one moto server per session, reset and re-provisioned from template.yaml per test."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_socket import socket_allow_hosts

from i2v.runtime import Runtime
from i2v_local.aws import LocalResources, moto_server, point_boto3_at, provision, reset
from i2v_local.sim_local import LocalSimulator
from i2v_local.stack import clear_parameter_caches
from tests.support import ROOT, SAMPLE_KEY, Receiver, containers


@pytest.fixture(autouse=True)
def _loopback_only() -> None:
    """Nothing in the suite talks to anything but this machine."""
    socket_allow_hosts(["127.0.0.1", "::1", "localhost"], allow_unix_socket=True)


@pytest.fixture(autouse=True)
def _logs_to_this_tests_output() -> None:
    """Powertools' Logger writes to the sys.stdout of when it was made: under capsys, an earlier test's
    capture, closed once that test ended. Such a handler writes to this test's output instead."""
    for logger in [logging.getLogger(), *logging.getLogger().manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if type(handler) is logging.StreamHandler and getattr(stream, "closed", False):
                handler.stream = sys.stdout  # setStream would flush the closed one first


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def local_sim() -> Iterator[LocalSimulator]:
    with LocalSimulator() as sim:
        yield sim  # type: ignore[misc]


@pytest.fixture
def aws(
    moto_endpoint: str, local_sim: LocalSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalResources]:
    """Fresh AWS resources from template.yaml, the functions' environment, and the local provider."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    reset(moto_endpoint)
    with monkeypatch.context() as env:
        point_boto3_at(moto_endpoint)
        resources = provision(moto_endpoint, "http://127.0.0.1:3000")
        for key, value in resources.function_environment("http://127.0.0.1:3000").items():
            env.setenv(key, value)
        env.setenv("I2V_LOCAL_BASE_URL", local_sim.base_url)
        env.setenv("I2V_LOCAL_API_KEY", local_sim.api_key)
        env.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
        clear_parameter_caches()
        containers.clear()  # handlers loaded from here on are new containers, built on this environment
        yield resources
    clear_parameter_caches()
    containers.clear()


@pytest.fixture
def rt(aws: LocalResources) -> Runtime:
    """A runtime on this test's resources, as a function's new container builds it."""
    return Runtime.from_environment()


@pytest.fixture
def tenant(aws: LocalResources, rt: Runtime) -> str:
    """Tenant `demo` with the API key used by the sample events, and the sample image in its inputs."""
    import boto3

    rt.records.put_api_key(SAMPLE_KEY, "demo")
    image = (ROOT / "assets" / "sample.png").read_bytes()
    boto3.client("s3").put_object(Bucket=aws.refs["Bucket"], Key="inputs/demo/sample.png", Body=image)
    return "demo"


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server for input media: (folder, base URL). Files put in the folder are served."""
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    folder = tmp_path_factory.mktemp("media")

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        path = folder / request.path.lstrip("/")
        if not path.is_file() or folder not in path.resolve().parents:
            return Response("not found", status=404)
        # Range honoured, as file servers, CDNs and S3 do (a 206 with Content-Range).
        response = Response(path.read_bytes(), mimetype="application/octet-stream")
        return response.make_conditional(request, accept_ranges=True)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    make_media(folder)
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def sample_url(media_server: tuple[Path, str]) -> str:
    return f"{media_server[1]}/sample.png"


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback: (url, requests seen, status codes to answer in turn, then 204)."""
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    seen: list[tuple[dict[str, str], bytes]] = []
    answers: list[int] = []

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        seen.append((dict(request.headers), request.get_data()))
        return Response(status=answers.pop(0) if answers else 204)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/video", seen, answers
    server.shutdown()


def make_media(folder: Path) -> None:
    """Inputs within the model's limits (and a few outside them) for tests that send real URLs."""
    import math
    import struct
    import wave

    import av
    import numpy as np
    from PIL import Image

    (folder / "sample.png").write_bytes((ROOT / "assets" / "sample.png").read_bytes())
    Image.new("RGB", (640, 480), (200, 120, 40)).save(folder / "last.png")
    Image.new("RGB", (200, 200), (10, 10, 10)).save(folder / "tiny.png")
    Image.new("RGBA", (640, 480), (10, 200, 10, 128)).save(folder / "alpha.png")
    for name, seconds in (("clip.mp4", 2), ("long.mp4", 11)):
        with av.open(str(folder / name), mode="w") as container:
            stream = container.add_stream("libx264", rate=8, options={"preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for i in range(seconds * 8):
                pixels = np.full((240, 320, 3), (i * 7) % 255, dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            container.mux(stream.encode(None))
    with wave.open(str(folder / "voice.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        tone = (int(8000 * math.sin(2 * math.pi * 440 * t / 16000)) for t in range(3 * 16000))
        out.writeframes(b"".join(struct.pack("<h", v) for v in tone))
