"""`make demo`: animate the sample image twice on the local stack, over HTTP and by an S3 upload.

Prints task ids, statuses and S3 keys, writes both MP4s to ./out, and checks each one really is an H.264
video of the requested duration and size. Exits non-zero if anything is off.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import boto3
import httpx
from rich.markup import escape

from i2v_cli import upload
from i2v_cli.show import TaskProgress, console, working
from i2v_local.stack import ROOT, LocalStack

SAMPLE = ROOT / "assets" / "sample.png"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@dataclass
class Check:
    codec: str
    duration: float
    width: int
    height: int
    audio: bool


def probe(path: Path) -> Check:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        rate = float(video.average_rate or 24)
        return Check(
            video.codec_context.name, frames / rate, video.width, video.height, bool(container.streams.audio)
        )


def wait(client: httpx.Client, progress: TaskProgress, jobs: list[str]) -> dict[str, dict[str, Any]]:
    """Poll every task until terminal, showing each one's progress."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 600
    while len(done) < len(jobs) and time.monotonic() < deadline:
        for task_id in jobs:
            if task_id in done:
                continue
            view = client.get(f"/v1/videos/{task_id}").raise_for_status().json()
            progress.update(task_id, view["status"], view["progress"])
            if view["status"] in TERMINAL:
                done[task_id] = view
        time.sleep(0.5)
    return done


def find_upload_task(client: httpx.Client, key: str) -> str:
    """The task the S3 trigger made for `key` (it appears once the upload's notification is handled)."""
    for _ in range(120):
        for item in client.get("/v1/videos", params={"limit": 20}).raise_for_status().json()["items"]:
            if item["source_key"] == key:
                return str(item["id"])
        time.sleep(0.5)
    raise RuntimeError(f"no task appeared for s3 upload {key}")


def main(
    provider: str | None = None, resolution: str = "720p", duration: int = 5, out: Path = Path("out")
) -> int:
    out.mkdir(exist_ok=True)
    # Bars and a spinner on a terminal; plain, unwrapped lines in a pipe or CI log (URLs stay whole).
    screen = console()
    with working(screen, "starting the local stack (moto, simulators, functions)…"):
        stack = LocalStack().start()
    try:
        screen.print(f"local stack up: API [bold]{stack.url}[/]  AWS {stack.endpoint}  bucket {stack.bucket}")
        client = httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
        )
        options: dict[str, Any] = {"resolution": resolution, "duration": duration}
        if provider:
            options["provider"] = provider

        # 1. Over HTTP: upload the image with a presigned PUT, then POST /v1/videos.
        image_url = upload(client, SAMPLE, "image/png")  # as `i2v generate` sends a local file
        created = client.post(
            "/v1/videos",
            json={"image_url": image_url, "prompt": "the sun sinks slowly behind the hills", **options},
        )
        if created.status_code != 202:
            screen.print(f"[red]create failed {created.status_code}: {escape(created.text)}")
            return 1
        http_id = created.json()["id"]

        # 2. By S3: drop the image under uploads/<tenant>/ with the prompt in its metadata.
        key = f"uploads/{stack.tenant}/sample.png"
        metadata = {
            "prompt": "a warm evening breeze over the valley",
            **{k: str(v) for k, v in options.items()},
        }
        boto3.client("s3").put_object(
            Bucket=stack.bucket, Key=key, Body=SAMPLE.read_bytes(), Metadata=metadata
        )
        s3_id = find_upload_task(client, key)

        with TaskProgress(screen) as progress:
            progress.add(http_id, f"HTTP  {http_id}")
            progress.add(s3_id, f"S3    {s3_id}")
            views = wait(client, progress, [http_id, s3_id])

        ok = True
        for label, task_id in (("HTTP", http_id), ("S3", s3_id)):
            view = views.get(task_id) or client.get(f"/v1/videos/{task_id}").json()
            screen.print(f"[bold]{label}[/] task {task_id}: [bold]{view['status']}[/] via {view['provider']}")
            screen.print(f"  prompt   {view['request']['prompt']!r}")
            if view.get("source_key"):
                screen.print(f"  input    s3://{stack.bucket}/{view['source_key']}")
            if view["status"] != "succeeded":
                screen.print(f"  [red]error    {escape(str(view.get('error')))}[/]")
                ok = False
                continue
            path = out / f"{label.lower()}-{task_id}.mp4"
            path.write_bytes(httpx.get(view["output_url"]).raise_for_status().content)
            got = probe(path)
            good = (
                got.codec == "h264"
                and abs(got.duration - duration) <= 0.2
                and min(got.width, got.height) == int(resolution[:-1])
            )
            ok = ok and good
            screen.print(
                f"  output   s3://{stack.bucket}/{view['output']['key']} ({view['output']['size']} bytes)"
            )
            verdict = "[green]ok[/]" if good else "[red]WRONG[/]"
            audio = ", audio" if got.audio else ""
            shape = f"{got.codec} {got.width}x{got.height} {got.duration:.2f} s{audio}"
            screen.print(f"  file     {path}: {shape} {verdict}")
        screen.print("[green]demo ok[/]" if ok else "[red]demo failed[/]")
        return 0 if ok else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
