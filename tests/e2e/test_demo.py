"""`make demo` as a user runs it: a separate process, its own local stack, two real MP4s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("provider", ["local", "evolink"])
def test_demo_animates_the_sample_over_http_and_by_s3_upload(provider: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "i2v_local",
            "demo",
            "--provider",
            provider,
            "--duration",
            "3",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "demo ok" in run.stdout
    videos = sorted(tmp_path.glob("*.mp4"))
    assert [p.name.split("-")[0] for p in videos] == ["http", "s3"]
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert min(stream.width, stream.height) == 720
    assert "a warm evening breeze over the valley" in run.stdout  # the S3 task's prompt, from object metadata
    assert f"via {provider}" in run.stdout
