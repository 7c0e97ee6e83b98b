"""P6 render: seconds of encoding per second of 720p video, the local provider's stand-in for the model."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.report import line, section

ROOT = Path(__file__).resolve().parents[1]


def run() -> None:
    from PIL import Image

    from i2v_local.render import RenderJob, render

    section("P6 render (local provider, PyAV/libx264)")
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "in.png"
        Image.open(ROOT / "assets" / "sample.png").save(image)
        start = time.perf_counter()
        # With a prompt, as every task has: the caption band is part of what each frame costs.
        job = RenderJob(duration=5, short_side=720, first_frame=image, prompt="the sun rises over the hills")
        render(job, Path(tmp) / "out.mp4")
        took = time.perf_counter() - start
    line("5 s of 720p first-frame video", took, "s", ratio=took / 5)
    print("  (ratio = encoding seconds per second of video)")
