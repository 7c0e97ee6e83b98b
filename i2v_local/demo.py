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
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from i2v_local.stack import ROOT, LocalStack

SAMPLE = ROOT / "assets" / "sample.png"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
console = Console()


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


def wait(client: httpx.Client, bars: Progress, jobs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Poll every task until terminal, one progress bar each."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 600
    while len(done) < len(jobs) and time.monotonic() < deadline:
        for task_id, bar in jobs.items():
            if task_id in done:
                continue
            view = client.get(f"/v1/videos/{task_id}").raise_for_status().json()
            bars.update(bar, completed=view["progress"], status=view["status"])
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
    with console.status("starting the local stack (moto, simulators, functions)…"):
        stack = LocalStack().start()
    try:
        console.print(
            f"local stack up: API [bold]{stack.url}[/]  AWS {stack.endpoint}  bucket {stack.bucket}"
        )
        client = httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
        )
        options: dict[str, Any] = {"resolution": resolution, "duration": duration}
        if provider:
            options["provider"] = provider

        # 1. Over HTTP: upload the image with a presigned PUT, then POST /v1/videos.
        ticket = (
            client.post("/v1/uploads", json={"filename": SAMPLE.name, "content_type": "image/png"})
            .raise_for_status()
            .json()
        )
        httpx.put(
            ticket["put_url"], content=SAMPLE.read_bytes(), headers={"Content-Type": "image/png"}
        ).raise_for_status()
        created = client.post(
            "/v1/videos",
            json={"image_url": ticket["url"], "prompt": "the sun sinks slowly behind the hills", **options},
        )
        if created.status_code != 202:
            console.print(f"[red]create failed {created.status_code}: {created.text}")
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

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bars:
            jobs = {
                http_id: bars.add_task(f"HTTP  {http_id}", total=100, status="submitted"),
                s3_id: bars.add_task(f"S3    {s3_id}", total=100, status="submitted"),
            }
            views = wait(client, bars, jobs)

        ok = True
        for label, task_id in (("HTTP", http_id), ("S3", s3_id)):
            view = views.get(task_id) or client.get(f"/v1/videos/{task_id}").json()
            console.print(
                f"[bold]{label}[/] task {task_id}: [bold]{view['status']}[/] via {view['provider']}"
            )
            console.print(f"  prompt   {view['request']['prompt']!r}")
            if view.get("source_key"):
                console.print(f"  input    s3://{stack.bucket}/{view['source_key']}")
            if view["status"] != "succeeded":
                console.print(f"  [red]error    {view.get('error')}[/]")
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
            console.print(
                f"  output   s3://{stack.bucket}/{view['output']['key']} ({view['output']['size']} bytes)"
            )
            verdict = "[green]ok[/]" if good else "[red]WRONG[/]"
            audio = ", audio" if got.audio else ""
            shape = f"{got.codec} {got.width}x{got.height} {got.duration:.2f} s{audio}"
            console.print(f"  file     {path}: {shape} {verdict}")
        console.print("[green]demo ok[/]" if ok else "[red]demo failed[/]")
        return 0 if ok else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
