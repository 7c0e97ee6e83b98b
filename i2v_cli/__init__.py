"""The `i2v` command: animate a local image through a gateway (deployed or `make local`) and fetch the MP4.

    i2v generate cat.png --prompt "the cat yawns" --out cat.mp4
    i2v status vid_…  ·  i2v wait vid_…  ·  i2v list  ·  i2v cancel vid_…  ·  i2v providers  ·  i2v usage
    i2v webhooks secret  ·  i2v keys create acme

It talks to the API over HTTP (I2V_API_URL, I2V_API_KEY); only `keys` needs AWS access to the table.
Modules: api (client, exit codes, problems in the user's words), inputs (checks and the request body),
show (tables, progress, plain output off a terminal).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from time import sleep
from typing import Any

import httpx

from i2v.models import MAX_DURATION, MIN_DURATION, TERMINAL, Mode
from i2v_cli.api import EXIT_CODES_HELP, CliError, Exit, checked, connect
from i2v_cli.inputs import (
    labels,
    local_media,
    metadata_item,
    output_target,
    request_body,
    saved_as,
)
from i2v_cli.show import (
    TaskProgress,
    console,
    print_task,
    providers_table,
    status_word,
    tasks_table,
    usage_table,
    working,
)

FINISHED = {status.value for status in TERMINAL}
POLL_SECONDS = 1.0


def say(text: str) -> None:
    """A note for the user on stderr (stdout is kept for what scripts read: paths, ids, URLs, JSON)."""
    print(text, file=sys.stderr)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def upload(client: httpx.Client, path: Path, content_type: str) -> str:
    """Send a local file with a presigned PUT; the s3:// URL the API accepts in its place."""
    # The name as it is (the API makes a key of it); a very long one keeps its end, where the suffix is.
    body = {"filename": path.name[-200:], "content_type": content_type}
    ticket = checked(client.post("/v1/uploads", json=body))
    httpx.put(
        ticket["put_url"], content=path.read_bytes(), headers={"Content-Type": content_type}, timeout=300
    ).raise_for_status()
    return str(ticket["url"])


def resume_hint(task_id: str, out: str | None) -> str:
    return shlex.join(["i2v", "wait", task_id, *(["--out", out] if out else [])])


def follow(client: httpx.Client, task_id: str, quiet: bool, out: str | None) -> dict[str, Any]:
    """Poll until the task finishes: a progress bar on a terminal, a line per change elsewhere.
    Ctrl-C leaves the task running and says how to pick it up again."""
    try:
        with TaskProgress(console(sys.stderr), quiet) as progress:
            progress.add(task_id, f"task {task_id}")
            while True:
                view: dict[str, Any] = checked(client.get(f"/v1/videos/{task_id}"))
                progress.update(task_id, status_word(view), view["progress"])
                if view["status"] in FINISHED:
                    return view
                sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; task {task_id} goes on: `{resume_hint(task_id, out)}` picks it up again",
            Exit.INTERRUPTED,
        ) from None


def download(url: str, path: Path) -> None:
    """Stream the MP4 next to `path`, then move it into place: no half-written video under the name."""
    part = path.with_name(path.name + ".part")
    try:
        with httpx.stream("GET", url, timeout=300) as resp, part.open("wb") as fh:
            resp.raise_for_status()
            for chunk in resp.iter_bytes():
                fh.write(chunk)
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def finish(client: httpx.Client, task_id: str, target: Path | None, args: argparse.Namespace) -> int:
    """Wait for the task; save its video to `target` (or print its URL). Exit 1 unless it succeeded."""
    view = follow(client, task_id, args.quiet, args.out)
    if args.json:
        print_json(view)
    if view["status"] != "succeeded":
        error = view.get("error") or {}
        reason = f": {error.get('code')}: {error.get('message')}" if error else ""
        raise CliError(f"task {task_id} {view['status']}{reason}", Exit.TASK_FAILED)
    if target is None:
        if not args.json:
            print(view["output_url"])
        return Exit.OK
    path = saved_as(target, task_id)
    try:
        download(view["output_url"], path)
    except KeyboardInterrupt:
        hint = resume_hint(task_id, args.out)
        raise CliError(f"interrupted; the video is kept: `{hint}` downloads it", Exit.INTERRUPTED) from None
    except OSError as exc:
        raise CliError(
            f"task {task_id} succeeded but {path} could not be written ({exc.strerror});"
            f" `{resume_hint(task_id, args.out)}` tries again",
            Exit.TASK_FAILED,
        ) from None
    if not args.json:
        print(path)
    return Exit.OK


def generate(client: httpx.Client, args: argparse.Namespace) -> int:
    if args.no_wait and args.out:
        raise CliError("--out needs the video: drop --no-wait, or fetch it later with `i2v wait <id> --out`")
    if not (args.image or args.video):
        raise CliError("give an image (or --video to continue a clip)")
    # Every local check before anything is uploaded or submitted.
    media = local_media(args)
    target = None if args.no_wait else output_target(args.out)
    args.out = args.out or (None if args.no_wait else ".")  # so a resume hint saves where this would have
    urls = {}
    for item in media:
        with working(console(sys.stderr), f"uploading {item.path}"):
            urls[item.field] = upload(client, item.path, item.content_type)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    try:
        answer = client.post("/v1/videos", json=request_body(args, urls), headers=headers)
    except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError) as exc:
        # Sent, but no answer: the task may exist. Never sent again blindly (that could pay twice).
        raise CliError(
            f"no answer to the create request ({type(exc).__name__}); it may have been accepted:"
            " `i2v list` shows your newest tasks",
            Exit.UNREACHABLE,
        ) from None
    task = checked(answer, labels(args))
    if args.no_wait:
        if args.json:
            print_json(task)
        else:
            print(task["id"])
        return Exit.OK
    say(f"task {task['id']} {task['status']} via {task['provider'] or 'a provider soon'}")
    return finish(client, task["id"], target, args)


def wait(client: httpx.Client, args: argparse.Namespace) -> int:
    target = output_target(args.out) if args.out else None
    return finish(client, args.task_id, target, args)


def status(client: httpx.Client, args: argparse.Namespace) -> int:
    view = checked(client.get(f"/v1/videos/{args.task_id}"))
    if args.json:
        print_json(view)
    else:
        print_task(console(), view)
    return Exit.OK


def cancel(client: httpx.Client, args: argparse.Namespace) -> int:
    view = checked(client.post(f"/v1/videos/{args.task_id}/cancel"))
    if args.json:
        print_json(view)
    else:
        print(f"{view['id']} {view['status']}")
    return Exit.OK


def list_tasks(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"limit": args.limit, **({"cursor": args.cursor} if args.cursor else {})}
    page = checked(client.get("/v1/videos", params=params))
    if args.json:
        print_json(page)
        return Exit.OK
    console().print(tasks_table(page["items"]))
    if page.get("next_cursor"):
        say(f"more: i2v list --cursor {page['next_cursor']}")
    return Exit.OK


def providers(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"resolution": args.resolution, "duration": args.duration, "audio": args.audio}
    rows = checked(client.get("/v1/providers", params=params))
    if args.json:
        print_json(rows)
    else:
        asked = f"{args.duration} s {args.resolution}{' with audio' if args.audio else ''}"
        console().print(providers_table(rows, asked))
    return Exit.OK


def usage(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"group_by": args.group_by, "from": args.start, "to": args.end}
    answer = client.get("/v1/usage", params={k: v for k, v in params.items() if v})
    report = checked(answer, {"group_by": "--group-by"})
    if args.json:
        print_json(report)
    else:
        console().print(usage_table(report))
    return Exit.OK


def webhook_secret(client: httpx.Client, args: argparse.Namespace) -> int:
    answer = checked(client.get("/v1/webhooks/secret"))
    if args.json:
        print_json(answer)
    else:
        print(answer["secret"])
    return Exit.OK


def records() -> Any:
    from i2v.dynamo import Table
    from i2v.records import Records

    return Records(Table(os.environ["I2V_TABLE_NAME"]))


def keys_create(tenant: str, budget: str | None = None) -> int:
    """Make an API key for a tenant (stored hashed); needs I2V_TABLE_NAME and AWS credentials.
    Everything is checked before the first write; the budget is written before the key, so a key is never
    usable by its tenant without the budget asked for."""
    from i2v.layout import check_tenant
    from i2v.records import budget_usd

    try:
        check_tenant(tenant)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        usd = None if budget is None else budget_usd(budget)
    except ValueError as exc:
        raise CliError(f"--budget {exc}") from None
    key = f"i2v_{secrets.token_urlsafe(24)}"
    store = records()
    if usd is not None:
        store.set_budget(tenant, usd)
    store.put_api_key(key, tenant)
    print(key)
    return Exit.OK


def keys_budget(tenant: str, amount: str) -> int:
    """Set a tenant's monthly budget in USD (`none` removes it); all is checked before it is written."""
    from i2v.layout import check_tenant
    from i2v.records import budget_usd

    try:
        check_tenant(tenant)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        usd = None if amount.strip().lower() == "none" else budget_usd(amount)
    except ValueError as exc:
        raise CliError(f"{exc}; `none` removes it") from None
    records().set_budget(tenant, usd)
    print(f"{tenant}: {'no budget' if usd is None else f'${usd:.2f} a month'}")
    return Exit.OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="i2v",
        description="Animate images with Wan 2.7 through i2v-gateway.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--api-url",
        default=os.environ.get("I2V_API_URL", "http://127.0.0.1:3000"),
        help="the gateway (env I2V_API_URL; default: `make local`'s)",
    )
    top.add_argument("--api-key", default=os.environ.get("I2V_API_KEY", ""), help="env I2V_API_KEY")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    sub = top.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        parents=[as_json, waiting],
        help="animate an image and download the MP4",
        description="Upload local files, submit, show progress, download the MP4. Flags left out take the"
        " API's defaults (1080p, 5 s, prompt extension on, no watermark).",
    )
    gen.add_argument("image", nargs="?", help="first frame: a local JPEG/PNG/BMP/WEBP file or a URL")
    gen.add_argument("--prompt", metavar="TEXT", help="what should happen in the video")
    gen.add_argument("--negative-prompt", metavar="TEXT", help="what should not")
    gen.add_argument("--last-frame", metavar="IMAGE", help="last frame: a local image file or a URL")
    gen.add_argument("--video", metavar="CLIP", help="an MP4/MOV clip to continue instead of an image")
    gen.add_argument("--audio", metavar="AUDIO", help="driving audio: a local WAV/MP3 file or a URL")
    gen.add_argument("--mode", choices=[m.value for m in Mode], help="default: what the media given imply")
    gen.add_argument("--resolution", type=str.lower, choices=["720p", "1080p"])
    gen.add_argument(
        "--duration", type=int, metavar="SECONDS", help=f"seconds, {MIN_DURATION}-{MAX_DURATION}"
    )
    gen.add_argument(
        "--prompt-extend", action=argparse.BooleanOptionalAction, help="let the model extend the prompt"
    )
    gen.add_argument(
        "--watermark", action=argparse.BooleanOptionalAction, help="ask for the host's watermark"
    )
    gen.add_argument("--seed", type=int)
    gen.add_argument("--provider", metavar="NAME[,NAME…]", help="a name, or a comma-separated order to try")
    gen.add_argument(
        "--routing", choices=["ordered", "cheapest", "fastest"], help="without --provider: the order"
    )
    gen.add_argument("--webhook-url", metavar="URL", help="gets a signed POST when the task finishes")
    gen.add_argument(
        "--metadata",
        action="append",
        type=metadata_item,
        metavar="KEY=VALUE",
        help="kept with the task and sent in its webhook; repeat it, or give a JSON object",
    )
    gen.add_argument(
        "--idempotency-key", metavar="KEY", help="retrying with the same key never makes a second task"
    )
    gen.add_argument(
        "--out",
        metavar="PATH",
        help="the MP4 to write, or an existing folder to write <task id>.mp4 in (default: ./)",
    )
    gen.add_argument("--no-wait", action="store_true", help="print the task id and exit; see `i2v wait`")

    follow_one = sub.add_parser(
        "wait",
        parents=[as_json, waiting],
        help="wait for a task to finish; print its video's URL, or save it with --out",
    )
    follow_one.add_argument("task_id")
    follow_one.add_argument(
        "--out", metavar="PATH", help="the MP4 to write, or an existing folder for <task id>.mp4"
    )
    for name, text in (("status", "show a task"), ("cancel", "cancel a task that has not finished")):
        one = sub.add_parser(name, parents=[as_json], help=text)
        one.add_argument("task_id")
    listing = sub.add_parser("list", parents=[as_json], help="your tasks, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (1-100)")
    listing.add_argument("--cursor", help="the next page, as printed after the table")
    hosts = sub.add_parser("providers", parents=[as_json], help="providers, what each can do, prices")
    hosts.add_argument("--resolution", type=str.lower, default="1080p", choices=["720p", "1080p"])
    hosts.add_argument("--duration", type=int, default=5, help="seconds, for the price of a request")
    hosts.add_argument("--audio", action="store_true", help="prices with driving audio")
    use = sub.add_parser("usage", parents=[as_json], help="your usage: tasks, seconds, cost and charge")
    use.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (default: 30 days ago)")
    use.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: today, UTC)")
    use.add_argument("--group-by", default="provider", choices=["provider", "day", "status"])
    hooks = sub.add_parser("webhooks", help="webhook signing")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hooks_sub.add_parser("secret", parents=[as_json], help="your secret for verifying webhook signatures")

    keys = sub.add_parser("keys", help="API keys (needs AWS access to the table)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    make = keys_sub.add_parser("create", help="create a key for a tenant")
    make.add_argument("tenant")
    make.add_argument(
        "--budget", metavar="USD", help="the tenant's monthly budget in USD, 0 or more (default: none)"
    )
    budget = keys_sub.add_parser("budget", help="set a tenant's monthly budget in USD, or 'none'")
    budget.add_argument("tenant")
    budget.add_argument("amount")
    return top


COMMANDS = {
    "generate": generate,
    "wait": wait,
    "status": status,
    "cancel": cancel,
    "list": list_tasks,
    "providers": providers,
    "usage": usage,
    "webhooks": webhook_secret,
}


def run(args: argparse.Namespace) -> int:
    if args.command == "keys":
        if args.keys_command == "budget":
            return keys_budget(args.tenant, args.amount)
        return keys_create(args.tenant, args.budget)
    with connect(args.api_url, args.api_key) as client:
        return COMMANDS[args.command](client, args)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error argparse has explained (2)
        return exc.code if isinstance(exc.code, int) else Exit.USAGE
    try:
        return run(args)
    except CliError as exc:
        say(f"i2v: {exc}")
        return exc.code
    except httpx.HTTPStatusError as exc:  # a presigned upload or download refused
        refused = exc.response.status_code < 500
        say(f"i2v: {exc.request.url.host} answered HTTP {exc.response.status_code}")
        return Exit.REFUSED if refused else Exit.UNREACHABLE
    except httpx.RequestError as exc:
        say(f"i2v: cannot reach {exc.request.url.scheme}://{exc.request.url.netloc.decode()}: {exc}")
        return Exit.UNREACHABLE
    except KeyboardInterrupt:
        say("i2v: interrupted")
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
