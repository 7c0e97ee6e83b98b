"""python -m i2v_local up|demo|invoke — the embedded local stack from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path


def up(port: int) -> int:
    from rich.console import Console

    from i2v_local.stack import SIMULATORS, LocalStack

    console = Console()
    with console.status("starting the local stack…"):
        # Fixed ports, so events/env.json can point `sam local invoke` containers at them.
        ports = {name: 8700 + i for i, name in enumerate(SIMULATORS)}  # local is 8700
        stack = LocalStack(port=port, aws_port=5000, simulator_ports=ports).start()
    console.print(
        f"API          [bold]{stack.url}[/]   (docs: {stack.url}/docs, spec: {stack.url}/openapi.json)"
    )
    console.print(
        f"AWS endpoint {stack.endpoint}   (export AWS_ENDPOINT_URL={stack.endpoint} for the aws CLI / boto3)"
    )
    console.print(f"bucket       {stack.bucket}   (drop images under uploads/{stack.tenant}/)")
    console.print(f"API key      {stack.api_key}   (tenant {stack.tenant})")
    for name, sim in stack.simulators.items():
        console.print(f"provider     {name} simulator at {sim.base_url}")
    console.print("serving until Ctrl-C")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    stack.stop()
    return 0


def invoke(function: str, event_path: str) -> int:
    """One handler, one sample event, on a fresh local stack seeded with what the sample events name."""
    import json
    from pathlib import Path

    import boto3

    from i2v_local.stack import ROOT, LocalStack

    event = json.loads(Path(event_path).read_text())
    with LocalStack(api_key="i2v_sample_key_0123456789") as stack:
        if function not in stack.functions:
            print(f"unknown function {function}; template.yaml has {', '.join(sorted(stack.functions))}")
            return 2
        sample = (ROOT / "assets" / "sample.png").read_bytes()
        for key in ("inputs/demo/sample.png", "uploads/demo/sample.png"):
            boto3.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=sample)
        result = stack.invoke(function, event)
        print(json.dumps(result, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i2v_local")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("up", help="serve the API on the local stack until stopped")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    demo = sub.add_parser("demo", help="animate the sample image over HTTP and by S3 upload")
    demo.add_argument("--provider", default=os.environ.get("PROVIDER") or None)
    demo.add_argument("--resolution", default=os.environ.get("RESOLUTION", "720p"), choices=["720p", "1080p"])
    demo.add_argument("--duration", type=int, default=int(os.environ.get("DURATION", "5")))
    demo.add_argument("--out", default="out", help="folder for the MP4s (default ./out)")
    one = sub.add_parser("invoke", help="run one function's handler with one event on the local stack")
    one.add_argument("function", help="logical id from template.yaml, e.g. ApiFunction")
    one.add_argument("event", help="path to an event file, e.g. events/api_create.json")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.port)
    if args.command == "invoke":
        return invoke(args.function, args.event)
    from i2v_local.demo import main as demo_main

    return demo_main(
        provider=args.provider, resolution=args.resolution, duration=args.duration, out=Path(args.out)
    )


if __name__ == "__main__":
    sys.exit(main())
