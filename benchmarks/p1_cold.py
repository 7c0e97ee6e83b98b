"""P1 cold start (placeholder: the development venv; being rewritten for the built layer)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
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


def run() -> None:
    print("cold start (fresh interpreter, median of 7)")
    floor = cold_import("import boto3")
    print(f"  floor  import boto3                 {floor * 1000:7.1f} ms")
    for name in HANDLERS:
        path = ROOT / "functions" / name
        code = f"import sys; sys.path.insert(0, {str(path)!r}); import handler"
        took = cold_import(code)
        print(f"  {name:<10} import handler            {took * 1000:7.1f} ms  = {took / floor:4.2f}x floor")
