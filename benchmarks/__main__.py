"""`make bench` (or `python -m benchmarks p1 p3`): every figure that matters, as ratios against a floor
measured in the same run on the same machine. Each benchmark is a module `pN_*.py` with `run() -> None`.

- p1 cold start: each handler's import as Lambda runs it (the built layer, read-only, the runtime's Python)
- p2 warm create: `POST /v1/videos` against moto and a simulator vs the AWS/HTTP calls it cannot avoid
- p3 sweeper: 1,000 in-flight tasks polled vs 1000 x latency / concurrency; the same at 100,000, modelled
- p4 ingest: a 200 MB result streamed into S3: peak memory growth and throughput vs a raw loopback copy
- p5 detection: provider finished -> task terminal, for callback and poll-only providers
- p6 render: seconds of encoding per second of 720p video (the local provider)
- p7 cost: AWS calls per finished task, priced per 1,000 videos, next to the provider's spend
- p8 burst: a catalogue dropped at once, two capped hosts, a second tenant: caps, 429s, makespan, waits
- p9 probe: the torture corpus's requests, bytes and time per file, now and before; maintained parsers on it
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, str]:
    """`p1` -> `benchmarks.p1_cold`, for every benchmark module here."""
    found = {}
    for module in pkgutil.iter_modules([str(HERE)]):
        key = module.name.split("_", 1)[0]
        if key.startswith("p") and key[1:].isdigit():
            found[key] = f"benchmarks.{module.name}"
    return dict(sorted(found.items(), key=lambda kv: int(kv[0][1:])))


def main(argv: list[str]) -> int:
    modules = available()
    chosen = argv or list(modules)
    unknown = [name for name in chosen if name not in modules]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(modules)}", file=sys.stderr)
        return 2
    for name in chosen:
        importlib.import_module(modules[name]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
