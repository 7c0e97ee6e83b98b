"""python -m i2v.local up|demo — the embedded local stack from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading


def up(port: int) -> int:
    from rich.console import Console

    from i2v.local.stack import LocalStack

    console = Console()
    with console.status("starting the local stack…"):
        # Fixed ports, so events/env.json can point `sam local invoke` containers at them.
        stack = LocalStack(port=port, aws_port=5000, simulator_ports={"local": 8700}).start()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i2v.local")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("up", help="serve the API on the local stack until stopped")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    demo = sub.add_parser("demo", help="animate the sample image over HTTP and by S3 upload")
    demo.add_argument("--provider", default=os.environ.get("PROVIDER") or None)
    demo.add_argument("--resolution", default=os.environ.get("RESOLUTION", "720p"), choices=["720p", "1080p"])
    demo.add_argument("--duration", type=int, default=int(os.environ.get("DURATION", "5")))
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.port)
    from i2v.local.demo import main as demo_main

    return demo_main(provider=args.provider, resolution=args.resolution, duration=args.duration)


if __name__ == "__main__":
    sys.exit(main())
