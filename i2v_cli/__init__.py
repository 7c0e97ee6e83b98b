"""The `i2v` command: animate a local image through a gateway (deployed or `make local`) and fetch the MP4.

    i2v generate cat.png --prompt "the cat yawns" --out cat.mp4
    i2v status vid_…   ·   i2v list   ·   i2v cancel vid_…   ·   i2v providers   ·   i2v keys create acme

It talks to the API over HTTP (I2V_API_URL, I2V_API_KEY); only `keys create` needs AWS access to the table.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


class CliError(Exception):
    """A message for the user; the command exits non-zero."""


def api(url: str, key: str) -> httpx.Client:
    if not key:
        raise CliError("set I2V_API_KEY (or pass --api-key); `make local` prints a working one")
    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=60)


def checked(resp: httpx.Response) -> Any:
    """The JSON body, or the API's problem detail as a CliError."""
    if resp.status_code >= 400:
        try:
            problem = resp.json()
            errors = "; ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors", []))
            raise CliError(f"{resp.status_code} {problem.get('title')}: {errors or problem.get('detail')}")
        except (ValueError, AttributeError, KeyError):
            raise CliError(f"HTTP {resp.status_code}: {resp.text[:300]}") from None
    return resp.json()


def upload(client: httpx.Client, path: Path) -> str:
    """Send a local file with a presigned PUT; the s3:// URL the API accepts in its place."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[:200]
    ticket = checked(client.post("/v1/uploads", json={"filename": safe_name, "content_type": content_type}))
    httpx.put(
        ticket["put_url"], content=path.read_bytes(), headers={"Content-Type": content_type}, timeout=300
    ).raise_for_status()
    return str(ticket["url"])


def media_url(client: httpx.Client, value: str | None) -> str | None:
    """A URL as given, or a local file uploaded first."""
    if value is None or value.startswith(("http://", "https://", "s3://")):
        return value
    path = Path(value)
    if not path.is_file():
        raise CliError(f"{value}: no such file")
    return upload(client, path)


def wait(client: httpx.Client, task_id: str, quiet: bool) -> dict[str, Any]:
    """Poll until the task finishes, with a progress bar on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    ) as bars:
        bar = bars.add_task(task_id, total=100, status="submitted")
        while True:
            view: dict[str, Any] = checked(client.get(f"/v1/videos/{task_id}"))
            bars.update(bar, completed=view["progress"], status=view["status"])
            if view["status"] in TERMINAL:
                return view
            time.sleep(1)


def generate(client: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"prompt": args.prompt, "duration": args.duration, "resolution": args.resolution}
    for field, value in (
        ("image_url", args.image),
        ("last_frame_url", args.last_frame),
        ("video_url", args.video),
        ("audio_url", args.audio),
    ):
        url = media_url(client, value)
        if url:
            body[field] = url
    if args.provider:
        body["provider"] = args.provider.split(",") if "," in args.provider else args.provider
    if args.seed is not None:
        body["seed"] = args.seed
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    task = checked(client.post("/v1/videos", json=body, headers=headers))
    print(f"task {task['id']} {task['status']} via {task['provider'] or 'pending'}", file=sys.stderr)
    view = wait(client, task["id"], quiet=args.quiet or not sys.stderr.isatty())
    if view["status"] != "succeeded":
        error = view.get("error") or {}
        raise CliError(f"task {view['id']} {view['status']}: {error.get('code')}: {error.get('message')}")
    out = Path(args.out or f"{task['id']}.mp4")
    with httpx.stream("GET", view["output_url"], timeout=300) as resp, out.open("wb") as fh:
        resp.raise_for_status()
        for chunk in resp.iter_bytes():
            fh.write(chunk)
    print(out)
    return 0


def show_usage(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"group_by": args.group_by, "from": args.start, "to": args.end}
    report = checked(client.get("/v1/usage", params={k: v for k, v in params.items() if v}))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"usage {report['from']} .. {report['to']} ({report['currency']})")
    for heading in (args.group_by, "tasks", "seconds", "provider cost", "charge", "unpriced"):
        table.add_column(heading, justify="left" if heading == args.group_by else "right")
    for row in [*report["groups"], {"key": "total", **report["total"]}]:
        table.add_row(
            row["key"],
            str(row["tasks"]),
            f"{row['billed_seconds']:.2f}",
            f"{row['provider_cost']:.4f}",
            f"{row['client_charge']:.4f}",
            str(row["unpriced_tasks"]),
            end_section=row["key"] == report["groups"][-1]["key"] if report["groups"] else False,
        )
    Console().print(table)
    return 0


def records() -> Any:
    from i2v.dynamo import Table
    from i2v.records import Records

    return Records(Table(os.environ["I2V_TABLE_NAME"]))


def keys_create(tenant: str, budget: float | None = None) -> int:
    """Make an API key for a tenant (stored hashed); needs I2V_TABLE_NAME and AWS credentials."""
    from i2v.layout import check_tenant

    try:
        check_tenant(tenant)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    key = f"i2v_{secrets.token_urlsafe(24)}"
    store = records()
    store.put_api_key(key, tenant)
    if budget is not None:
        store.set_budget(tenant, budget)
    print(key)
    return 0


def keys_budget(tenant: str, amount: str) -> int:
    """Set a tenant's monthly budget in USD (`none` removes it)."""
    try:
        usd = None if amount.lower() == "none" else float(amount)
        records().set_budget(tenant, usd)
    except ValueError as exc:
        raise CliError(f"budget: {exc}") from None
    print(f"{tenant}: {'no budget' if usd is None else f'${usd:.2f} a month'}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="i2v", description="Animate images with Wan 2.7 through i2v-gateway.")
    top.add_argument("--api-url", default=os.environ.get("I2V_API_URL", "http://127.0.0.1:3000"))
    top.add_argument("--api-key", default=os.environ.get("I2V_API_KEY", ""))
    sub = top.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="animate an image and download the MP4")
    gen.add_argument("image", nargs="?", help="first frame: a local file or a URL")
    gen.add_argument("--prompt", default="")
    gen.add_argument("--last-frame")
    gen.add_argument("--video", help="a clip to continue instead of an image")
    gen.add_argument("--audio", help="driving audio")
    gen.add_argument("--duration", type=int, default=5)
    gen.add_argument("--resolution", default="1080p", choices=["720p", "1080p"])
    gen.add_argument("--provider", help="a name or a comma-separated order")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--idempotency-key")
    gen.add_argument("--out", help="where to write the MP4 (default <task id>.mp4)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    for name in ("status", "cancel"):
        one = sub.add_parser(name, help=f"{name} a task")
        one.add_argument("task_id")
    listing = sub.add_parser("list", help="your tasks, newest first")
    listing.add_argument("--limit", type=int, default=20)
    sub.add_parser("providers", help="configured providers and their health")
    use = sub.add_parser("usage", help="your usage: tasks, seconds, cost and charge, as a table")
    use.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (default: 30 days ago)")
    use.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: today, UTC)")
    use.add_argument("--group-by", default="provider", choices=["provider", "day", "status"])
    use.add_argument("--json", action="store_true", help="the API's JSON instead of a table")
    keys = sub.add_parser("keys", help="API keys (needs AWS access to the table)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    make = keys_sub.add_parser("create", help="create a key for a tenant")
    make.add_argument("tenant")
    make.add_argument("--budget", type=float, help="the tenant's monthly budget in USD (default: none)")
    budget = keys_sub.add_parser("budget", help="set a tenant's monthly budget in USD, or 'none'")
    budget.add_argument("tenant")
    budget.add_argument("amount")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "keys":
            if args.keys_command == "budget":
                return keys_budget(args.tenant, args.amount)
            return keys_create(args.tenant, args.budget)
        with api(args.api_url, args.api_key) as client:
            if args.command == "generate":
                if not (args.image or args.video):
                    raise CliError("give an image (or --video to continue a clip)")
                return generate(client, args)
            if args.command == "usage":
                return show_usage(client, args)
            answer = {
                "status": lambda: client.get(f"/v1/videos/{args.task_id}"),
                "cancel": lambda: client.post(f"/v1/videos/{args.task_id}/cancel"),
                "list": lambda: client.get("/v1/videos", params={"limit": args.limit}),
                "providers": lambda: client.get("/v1/providers"),
            }[args.command]()
            print(json.dumps(checked(answer), indent=2))
            return 0
    except CliError as exc:
        print(f"i2v: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"i2v: cannot reach {args.api_url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
