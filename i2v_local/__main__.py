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
    from i2v_cli.show import console as screen
    from i2v_cli.show import working
    from i2v_local.stack import LocalStack, simulators

    # A spinner on a terminal; in a pipe or a log, plain lines with every URL and key whole on its line.
    console = screen()
    with working(console, "starting the local stack…"):
        # Fixed ports, so events/env.json can point `sam local invoke` containers at them: local is 8700.
        ports = {name: 8700 + i for i, name in enumerate(simulators())}
        stack = LocalStack(port=port, aws_port=5000, simulator_ports=ports).start()
    console.print(
        f"API          [bold]{stack.url}[/]   (docs: {stack.url}/docs, spec: {stack.url}/openapi.json)"
    )
    console.print(f"console      [bold]{stack.url}/console[/]   (paste the API key below)")
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


def invoke(function: str, event_path: str, aws_endpoint: str | None = None) -> int:
    """One handler, one sample event, on a fresh local stack holding what the sample events name
    (i2v_local.samples). A file that is not an event, or an event its function cannot take, is one line on
    stderr and exit 2; a handler that raises, or an SQS batch with failed records, one line and exit 1.
    `aws_endpoint`: a running moto server to use (tests), instead of a new one."""
    import json

    from i2v_local.aws import load_template
    from i2v_local.samples import BadEvent, check, outcome, prepare
    from i2v_local.stack import LocalStack

    def fail(message: str, code: int = 2) -> int:
        print(f"invoke: {message}", file=sys.stderr)
        return code

    functions = sorted(
        name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    )
    if function not in functions:
        return fail(f"unknown function {function!r}; template.yaml has {', '.join(functions)}")
    try:
        event = json.loads(Path(event_path).read_text())
    except OSError as exc:
        return fail(f"cannot read {event_path}: {exc.strerror or exc}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return fail(f"{event_path} is not JSON: {exc}")
    with LocalStack(aws_endpoint=aws_endpoint) as stack:
        try:
            check(stack, function, event)
        except BadEvent as exc:
            return fail(f"{event_path} {exc}")
        event = prepare(stack, function, event)
        try:
            result = stack.invoke(function, event)
        except Exception as exc:  # the handler's own failure, told in one line (its record is in the logs)
            return fail(f"{function} raised {_one_line(exc)}", 1)
        print(json.dumps(result, indent=2, default=str))
        failed = [f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])]
        if failed:  # an SQS batch: these records go back to the queue, their reasons in the handler's log
            records = len(event.get("Records", []))
            return fail(
                f"{function} failed {len(failed)} of {records} record(s) ({', '.join(failed)}): they return"
                " to the queue; its log says why",
                1,
            )
        left = outcome(stack, function)
        if left:
            print(f"invoke: {left}", file=sys.stderr)
    return 0


def _one_line(exc: BaseException) -> str:
    """`Type: message`, first line only."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # its text spans lines: the fields and what is wrong with each
        wrong = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        return f"ValidationError: not {_a(exc.title)}: {wrong}"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'AEIOU' else 'a'} {noun}"


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
