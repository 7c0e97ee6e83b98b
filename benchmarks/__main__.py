"""`make bench`: speed as ratios against a floor measured in the same run, on the same machine.

- cold start: importing each handler in a fresh interpreter vs a bare `import boto3` (the floor every
  Python Lambda pays). Median of several runs.
- hot path: validating a create request and deriving its mode vs `json.loads` of the same body.
- renderer: seconds of encoding per second of 720p video (the local stack's stand-in for the model).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ["api", "callback", "sweeper", "ingest", "s3_trigger", "deliver"]


def cold_import(code: str, runs: int = 7) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers/common'}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Each handler builds its runtime at import (its cold start): the settings it cannot start without.
        "I2V_TABLE_NAME": "bench-table",
        "I2V_BUCKET_NAME": "bench-bucket",
    }
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call(fn: Callable[[], object], seconds: float = 0.5) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def main() -> int:
    print("cold start (fresh interpreter, median of 7)")
    floor = cold_import("import boto3")
    print(f"  floor  import boto3                 {floor * 1000:7.1f} ms")
    for name in HANDLERS:
        path = ROOT / "functions" / name
        code = f"import sys; sys.path.insert(0, {str(path)!r}); import handler"
        took = cold_import(code)
        print(f"  {name:<10} import handler            {took * 1000:7.1f} ms  = {took / floor:4.2f}x floor")

    from i2v.models import VideoRequest

    body = json.dumps(
        {"image_url": "https://m.example/a.png", "prompt": "a" * 400, "duration": 5, "resolution": "720P"}
    )
    floor_call = per_call(lambda: json.loads(body))
    check = per_call(lambda: VideoRequest.model_validate_json(body).resolved_mode())
    print("hot path")
    print(f"  floor  json.loads(body)             {floor_call * 1e6:7.1f} us")
    print(f"  validate + derive mode              {check * 1e6:7.1f} us  = {check / floor_call:4.2f}x floor")

    from PIL import Image

    from i2v_local.render import RenderJob, render

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "in.png"
        Image.open(ROOT / "assets" / "sample.png").save(image)
        start = time.perf_counter()
        render(RenderJob(duration=5, short_side=720, first_frame=image), Path(tmp) / "out.mp4")
        took = time.perf_counter() - start
    print("renderer")
    print(f"  5 s of 720p first-frame video       {took:7.2f} s   = {took / 5:4.2f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
