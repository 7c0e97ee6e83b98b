"""P1 cold start as Lambda runs it: each handler's import vs a bare `import boto3`, both from the runtime.

What is measured, and why it is close to Lambda:
- the handlers and the layer as `sam build` makes them (`make build`: the layer precompiled for python3.12);
- the runtime's Python (3.12: `python3.12` on PATH, else pyenv's, else I2V_RUNTIME_PYTHON), with boto3 in a
  directory of its own as the runtime ships it (installed once into .bench/, precompiled, like the runtime's);
- sys.path in Lambda's order (function code, the layer, then the runtime's boto3), `python -S` for both sides;
- the layer and the code copied to a read-only directory, and `PYTHONDONTWRITEBYTECODE`: nothing is cached
  between runs except what the build shipped;
- each figure the least of 11 fresh interpreters, every job taking its turn in each round; timed inside
  each around the import alone (Lambda's own start of the interpreter and its bootstrap come before either,
  and a cold start never tears one down);
  the environment the template gives the functions (names only: an import makes no AWS call).

Beside the handlers: the project's required stack at its least (boto3, httpx, one pydantic model, powertools'
logger; for the API, its event handler with `enable_validation`), and the libraries the handlers import,
alone: what no gateway code can go below.

The API's second line adds what its routes import on first use (create, cancel, uploads, webhook signing), so
what laziness moves out of the import stays visible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from benchmarks.report import Goal, line, note, progress, section

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
RUNTIME_SITE = ROOT / ".bench" / "runtime-python3.12"
FUNCTIONS = {
    "ApiFunction": "api",
    "CallbackFunction": "callback",
    "SweeperFunction": "sweeper",
    "PollFunction": "poll",
    "IngestFunction": "ingest",
    "S3TriggerFunction": "s3_trigger",
    "DeliverFunction": "deliver",
}
# The least the project's required stack costs at import, no gateway code: boto3, httpx, one pydantic model
# and powertools' logger; the API adds the event handler with request validation (`enable_validation`).
LEAST = (
    "import boto3, httpx\n"
    "from pydantic import BaseModel\n"
    "class M(BaseModel):\n    a: int = 1\n"
    "M()\n"
    "from aws_lambda_powertools import Logger\n"
    "Logger()"
)
VALIDATION = (
    "\nfrom aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
    "APIGatewayRestResolver(enable_validation=True)"
)
# The libraries every handler imports, alone: the least above, settings read by a pydantic-settings model
# and powertools' metrics.
LIBRARIES = (
    LEAST + "\nimport pydantic_settings\n"
    "class S(pydantic_settings.BaseSettings):\n    name: str = 'x'\n"
    "S()\n"
    "from aws_lambda_powertools import Metrics\n"
    "Metrics()"
)
# What the API's routes import on first use, not at import.
FIRST_CREATE = "import i2v.create, i2v.cancel, i2v.uploads, i2v.delivery"
GOAL = Goal(at_most=1.3)
FLOOR = "floor: import boto3 (runtime)"
RUNS = 11


def runtime_python() -> str | None:
    """A python3.12 that runs (PATH may hold a pyenv shim that does not)."""
    named = [os.environ.get("I2V_RUNTIME_PYTHON"), shutil.which("python3.12")]
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"), reverse=True)
    for candidate in [*named, *map(str, pyenv)]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def ensure_runtime_boto3(python: str) -> None:
    if (RUNTIME_SITE / "boto3").is_dir():
        return
    note(f"installing boto3 for the runtime's Python into {RUNTIME_SITE.relative_to(ROOT)} (once)")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--target", str(RUNTIME_SITE), "boto3"], check=True
    )


def build() -> None:
    note("sam build (make build) ...")
    subprocess.run(["make", "--no-print-directory", "build"], cwd=ROOT, check=True, capture_output=True)


def read_only_copy(tmp: Path) -> Path:
    """The build, copied and made read-only, as Lambda mounts /opt and /var/task."""
    copy = tmp / "build"
    shutil.copytree(BUILD, copy)
    for path in copy.rglob("*"):
        path.chmod(path.stat().st_mode & ~0o222)
    return copy


def least_imports(python: str, jobs: dict[str, tuple[str, str]], env: dict[str, str]) -> dict[str, float]:
    """The least seconds each job's code took in RUNS fresh interpreters after its setup, timed inside the
    child: neither the interpreter's start nor its teardown (which a cold start does not pay) is counted.
    The least, as timeit reports: a shared machine's other work only ever adds time, and a median of 7 moved
    by a tenth between runs here. The jobs take turns, one run each per round, so a slow spell weighs on all
    of them alike."""
    times: dict[str, list[float]] = {label: [] for label in jobs}
    for round_ in range(RUNS):
        progress(round_, RUNS, "rounds")
        for label, (setup, code) in jobs.items():
            timed = f"{setup}import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
            out = subprocess.run(
                [python, "-S", "-c", timed], check=True, env=env, capture_output=True, text=True
            )
            times[label].append(float(out.stdout.strip().splitlines()[-1]))
    progress(RUNS, RUNS, "rounds")
    return {label: min(taken) for label, taken in times.items()}


def lambda_path(code_dir: Path | None, layer: Path) -> str:
    """`sys.path` as Lambda orders it: code, layer, (stdlib), the runtime's own site-packages."""
    front = [str(code_dir)] if code_dir else []
    return f"import sys; sys.path[:0] = {[*front, str(layer)]!r}; sys.path.append({str(RUNTIME_SITE)!r}); "


def layer_size(layer: Path) -> tuple[float, float]:
    """Unzipped and zipped MB of the layer (Lambda's limits: 250 MB unzipped with the code, 50 MB zipped)."""
    unzipped = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in layer.rglob("*"):
                if path.is_file():
                    archive.write(path, path.relative_to(layer.parent))
        zipped = handle.tell()
    return unzipped / 2**20, zipped / 2**20


def run() -> None:
    section("P1 cold start (sam build, python3.12, read-only layer, no bytecode written, least of 11)")
    python = runtime_python()
    if python is None:
        note("needs python3.12 (the Lambda runtime's): put it on PATH or set I2V_RUNTIME_PYTHON; skipped")
        return
    ensure_runtime_boto3(python)
    build()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "I2V_TABLE_NAME": "table",
        "I2V_BUCKET_NAME": "bucket",
        "I2V_INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
        "I2V_DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/deliver",
        "I2V_EVENT_BUS_NAME": "bus",
        "POWERTOOLS_SERVICE_NAME": "i2v-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "I2vGateway",
    }
    with tempfile.TemporaryDirectory() as tmp:
        build_copy = read_only_copy(Path(tmp))
        layer = build_copy / "CommonLayer" / "python"
        bare = lambda_path(None, layer)
        jobs = {
            FLOOR: (bare, "import boto3"),
            "the required stack at its least (workers)": (bare, f"exec({LEAST!r})"),
            "the required stack at its least (API)": (bare, f"exec({LEAST + VALIDATION!r})"),
            "the libraries the workers import, alone": (bare, f"exec({LIBRARIES!r})"),
            "the libraries the API imports, alone": (bare, f"exec({LIBRARIES + VALIDATION!r})"),
            **{
                f"{logical} import handler": (lambda_path(build_copy / logical, layer), "import handler")
                for logical in FUNCTIONS
            },
            "ApiFunction import + every route's imports": (
                lambda_path(build_copy / "ApiFunction", layer),
                f"import handler; {FIRST_CREATE}",
            ),
        }
        took = least_imports(python, jobs, env)
        floor = took.pop(FLOOR)
        line(FLOOR, floor * 1000, "ms")
        handlers = {label: t for label, t in took.items() if label.endswith("import handler")}
        for label, t in took.items():
            line(label, t * 1000, "ms", ratio=t / floor, goal=GOAL if label in handlers else None)
        worst = max(handlers.values())
        line("worst handler", worst * 1000, "ms", ratio=worst / floor, goal=GOAL)
        unzipped, zipped = layer_size(layer)
        note(f"CommonLayer: {unzipped:.1f} MB unzipped, {zipped:.1f} MB zipped (limits: 250 MB / 50 MB)")
        for path in build_copy.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)  # let the temporary directory go
